"""The connector contract: what a billing system must provide for billsync's engine to sync it.

A connector knows one billing system's HTTP API, its webhooks and its vendor ⇄ canonical
translation. It knows nothing about AWS or Salesforce. The engine needs from it:

* `objects`: which billsync objects it syncs, in which directions, and who owns them;
* `to_record`: a vendor payload → a `SourceRecord` (id, version as aware UTC, state, parents);
* `changes`: the records changed in a time window, streamed page by page in version order —
  however the vendor paginates (page numbers with Link headers, offsets, cursors) and however it
  exposes changes (an `updated_after` filter, an events feed, a query language);
* `fetch`: the latest state of given records (to re-read before writing, or for a reference-only change);
* `create` / `update` / `delete`: writes, for the directions that write back;
* `webhooks`: signature verification and parsing, or None for systems that can only be polled
  (NetSuite, Magento Open Source).

Shared building blocks live next to this contract (`billsync.connectors.http`), so two connectors
never solve the same problem twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from billsync.domain.models import Direction, SourceRecord
from billsync.domain.rules import Ownership, Window


@dataclass(frozen=True)
class ObjectSupport:
    """What a connector does for one billsync object."""

    name: str
    directions: frozenset[Direction]
    ownership: Ownership = Ownership.ORIGIN
    # The billing object this one hangs off ("customer" for an invoice). Changes of one parent are
    # processed in order and together, which also keeps concurrent workers off the same parent rows.
    parent: str | None = None
    # Paths in a to_billing payload of which one must hold a parent's billing id; when all are empty
    # the parent has not reached the billing system yet and the change waits.
    billing_parent_fields: tuple[str, ...] = ()
    # False when billing records never create Salesforce records: only their billing-computed facts
    # (ids, numbers) are written, onto Salesforce records that exist (customer ← account).
    creates_in_salesforce: bool = True
    # Payment sources and the like: changes travel as references only, never with their payload.
    sensitive: bool = False
    # What a Salesforce deletion of a Salesforce-owned record does in the billing system.
    on_salesforce_delete: Literal["ignore", "delete", "void"] = "ignore"
    # Billing objects this one links to in Salesforce (payments → invoices): its first full read from
    # the billing system starts only once theirs is done, so a backfill does not park every record
    # waiting for a parent that is simply further down another object's list.
    first_read_after: tuple[str, ...] = ()

    def syncs(self, direction: Direction) -> bool:
        return direction in self.directions


@dataclass(frozen=True)
class ChangePage:
    """One page of changed records and the position to resume after it."""

    records: list[SourceRecord]
    position: str


@dataclass(frozen=True)
class WebhookEvent:
    """One change announced by a webhook."""

    id: str  # the vendor's event id: deliveries of the same event share it
    type: str  # the vendor's event type, e.g. "invoice.paid"
    object: str | None  # the billsync object it concerns, None when billsync does not sync it
    record: SourceRecord | None
    occurred_at: datetime | None = None  # when the vendor says the event happened (for the replay window)


class MalformedWebhook(ValueError):
    """The request is not a webhook billsync can understand; the message says why (answered with 400)."""


class BillingApiError(Exception):
    """A billing API refused or failed a request."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "BILLING_API_ERROR",
        field: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field
        self.retryable = retryable


class WebhookSupport(Protocol):
    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str]) -> bool:
        """True when the request is signed with one of `secrets` (several while a secret rotates).

        Implementations compare in constant time and never raise on a forged request.
        """

    def parse(self, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        """The events in a verified request; raises MalformedWebhook with the reason."""


class BillingConnector(Protocol):
    name: str
    objects: Mapping[str, ObjectSupport]
    webhooks: WebhookSupport | None

    def to_record(
        self, object_name: str, payload: Mapping[str, Any], *, deleted: bool = False
    ) -> SourceRecord:
        """A vendor payload as a `SourceRecord`; `deleted` when it comes from a deletion."""

    def changes(
        self, object_name: str, window: Window, *, page_size: int, position: str | None = None
    ) -> Iterator[ChangePage]:
        """Records changed in `window` (deletions included), page by page.

        A window with no start is a first full read. `position` resumes an interrupted read of the same
        window after the page that returned it.
        """

    def fetch(
        self, object_name: str, ids: Sequence[str], *, parents: Mapping[str, str] | None = None
    ) -> dict[str, SourceRecord | None]:
        """The latest state of each id (None when the record no longer exists); `parents` maps an id to
        its parent's id where the API needs it."""

    def create(
        self, object_name: str, payload: Mapping[str, Any], *, idempotency_key: str
    ) -> SourceRecord: ...

    def update(
        self, object_name: str, record_id: str, payload: Mapping[str, Any], *, parent_id: str | None = None
    ) -> SourceRecord: ...

    def delete(
        self,
        object_name: str,
        record_id: str,
        *,
        mode: Literal["delete", "void"],
        parent_id: str | None = None,
    ) -> None: ...

    def close(self) -> None: ...


@dataclass
class ConnectorContext:
    """What the engine hands a connector when it builds one for a source."""

    source_key: str
    settings: Mapping[str, Any]
    secret: Mapping[str, Any]
    ca_file: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ConnectorFactory(Protocol):
    def __call__(self, context: ConnectorContext) -> BillingConnector: ...
