"""The Invoiced connector: Invoiced's REST API and webhooks on billsync's connector contract.

Reads:
* incremental pulls read Invoiced's events feed for the window (`GET /events?type=…&start_date=…`):
  events are immutable, so a closed window pages stably, and deletions are in it too;
* first pulls (no cursor yet) read the object's list sorted by id (an order edits cannot shift); if a
  record was deleted while the list was being read — which could shift a page — the list is read again.
Writes use an `Idempotency-Key`, so a retried create never makes a second record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import requests

from billsync.connectors.base import (
    BillingApiError,
    ChangePage,
    ConnectorContext,
    MalformedWebhook,
    ObjectSupport,
    WebhookEvent,
)
from billsync.connectors.http import HttpClient, hmac_hex_matches, link_header_pages, parse_json
from billsync.domain.models import Direction, RecordState, SourceRecord
from billsync.domain.redaction import MASK
from billsync.domain.rules import Ownership, Window

PRODUCTION_URL = "https://api.invoiced.com"
SANDBOX_URL = "https://api.sandbox.invoiced.com"
MAX_PER_PAGE = 100
SIGNATURE_HEADER = "x-invoiced-signature"

BOTH = frozenset({Direction.TO_SALESFORCE, Direction.TO_BILLING})
TO_SALESFORCE = frozenset({Direction.TO_SALESFORCE})
TO_BILLING = frozenset({Direction.TO_BILLING})


@dataclass(frozen=True)
class _Resource:
    """How one billsync object is reached in Invoiced's API."""

    support: ObjectSupport
    collection: str  # list/create path; "{parent}" is the parent's id for nested resources
    event_object: str  # the object type of its events: `GET /events?type=<event_object>`
    parent_key: str | None = None  # payload key holding the parent's id
    include: str | None = None
    void_path: str | None = None
    # Where one record lives when that is not under `collection` (payment sources are created under
    # /payment_sources but deleted as /cards/:id or /bank_accounts/:id).
    item_collection: str | None = None
    # Invoiced's DELETE cancels subscriptions and voids payments: their `<object>.deleted` event carries
    # a record that still exists, in its new state.
    delete_is_state_change: bool = False
    # The body Invoiced needs to create one (payment sources: the kind of source the token is for).
    create_defaults: tuple[tuple[str, Any], ...] = ()
    reshape: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # payload → the mapped shape
    updated_after: bool = True  # its list takes `updated_after` (notes' does not)

    @property
    def name(self) -> str:
        return self.support.name

    @property
    def deleted_event(self) -> str:
        return f"{self.event_object}.deleted"

    def is_deletion(self, event_type: str) -> bool:
        return event_type == self.deleted_event and not self.delete_is_state_change


def _resources() -> dict[str, _Resource]:
    def document(
        name: str,
        directions: frozenset[Direction],
        delete: Literal["ignore", "void"],
        after: tuple[str, ...] = (),
    ) -> _Resource:
        """Invoices, credit notes and estimates: customer documents with line items and a void action."""
        support = ObjectSupport(
            name,
            directions,
            Ownership.ORIGIN,
            parent="customer",
            billing_parent_fields=("customer",),
            on_salesforce_delete=delete,
            first_read_after=after,
        )
        return _Resource(support, f"/{name}s", name, parent_key="customer", void_path=f"/{name}s/{{id}}/void")

    def payment_source(name: str, method: str) -> _Resource:
        """Cards and bank accounts: created on a customer from a gateway token, never read back."""
        support = ObjectSupport(
            name,
            TO_BILLING,
            Ownership.SALESFORCE,
            parent="customer",
            billing_parent_fields=("customer",),
            sensitive=True,
            on_salesforce_delete="delete",
        )
        return _Resource(
            support,
            "/customers/{parent}/payment_sources",
            "payment_source",
            parent_key="customer",
            item_collection=f"/customers/{{parent}}/{name}s",
            create_defaults=(("method", method),),
        )

    def to_salesforce_only(name: str, after: tuple[str, ...] = (), **options: Any) -> _Resource:
        support = ObjectSupport(
            name, TO_SALESFORCE, Ownership.BILLING, parent="customer", first_read_after=after
        )
        return _Resource(support, f"/{name}s", name, parent_key="customer", **options)

    resources = [
        _Resource(
            ObjectSupport("customer", BOTH, Ownership.ORIGIN, creates_in_salesforce=False),
            "/customers",
            "customer",
        ),
        _Resource(
            ObjectSupport(
                "contact",
                TO_BILLING,
                Ownership.ORIGIN,
                parent="customer",
                billing_parent_fields=("customer",),
                on_salesforce_delete="delete",
            ),
            "/customers/{parent}/contacts",
            "contact",
            parent_key="customer",
        ),
        document("invoice", BOTH, "void"),
        _Resource(
            ObjectSupport(
                "note",
                BOTH,
                Ownership.ORIGIN,
                parent="customer",
                billing_parent_fields=("customer_id", "invoice_id"),
                on_salesforce_delete="delete",
            ),
            "/notes",
            "note",
            parent_key="customer",
            updated_after=False,
        ),
        to_salesforce_only("credit_note", void_path="/credit_notes/{id}/void"),
        document("estimate", BOTH, "void", after=("invoice",)),  # linked to the invoice it became
        to_salesforce_only("subscription", delete_is_state_change=True, reshape=_subscription_items),
        to_salesforce_only(  # applied to invoices, credit notes and estimates
            "payment",
            after=("invoice", "credit_note", "estimate"),
            include="applied_to",
            delete_is_state_change=True,
        ),
        payment_source("card", "credit_card"),
        payment_source("bank_account", "ach"),
    ]
    return {r.name: r for r in resources}


def _subscription_items(payload: dict[str, Any]) -> dict[str, Any]:
    """A subscription's plan and add-ons as one list of items (`items`), the plan first.

    The plan is not a list entry in Invoiced; its item takes the id `<subscription id>-plan`.
    """
    plan = {
        "id": f"{payload['id']}-plan",
        "type": "plan",
        "plan": payload.get("plan"),
        "quantity": payload.get("quantity"),
        "description": None,
    }
    addons = [{**addon, "type": "addon"} for addon in payload.get("addons") or [] if isinstance(addon, dict)]
    return {**payload, "items": [plan, *addons]}


def _unix(value: Any) -> datetime | None:
    if value is None or isinstance(value, bool):
        return None
    return datetime.fromtimestamp(int(value), UTC)


def _error(response: requests.Response) -> BillingApiError:
    """Invoiced's error body: {"type", "message", "param"?}; proxies may answer with HTML instead."""
    status = response.status_code
    codes = {
        400: "INVALID_REQUEST",
        401: "AUTHENTICATION_FAILED",
        402: "ACCOUNT_INACTIVE",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RATE_LIMITED",
    }
    code = codes.get(status, "API_ERROR")
    try:
        body = parse_json(response.content)
        message = str(body.get("message") or f"HTTP {status}")
        param = body.get("param")
    except (ValueError, AttributeError):
        message, param = f"HTTP {status} with a body that is not Invoiced's JSON error", None
    return BillingApiError(
        message, status=status, code=code, field=param, retryable=status == 429 or status >= 500
    )


class InvoicedWebhooks:
    """`X-Invoiced-Signature`: lower-case hex HMAC-SHA256 of the raw body under the webhook secret."""

    def __init__(self, connector: InvoicedConnector) -> None:
        self._connector = connector

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str]) -> bool:
        return hmac_hex_matches(body, _header(headers, SIGNATURE_HEADER), secrets)

    def parse(self, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        try:
            event = parse_json(body)
        except ValueError:
            raise MalformedWebhook("the body is not JSON") from None
        if not isinstance(event, dict):
            raise MalformedWebhook("the body is not a JSON object")
        event_id, event_type = event.get("id"), event.get("type")
        if not isinstance(event_id, int | str) or isinstance(event_id, bool) or not str(event_id):
            raise MalformedWebhook("the event has no id")
        if not isinstance(event_type, str) or "." not in event_type:
            raise MalformedWebhook("the event has no type")
        data = event.get("data")
        payload = data.get("object") if isinstance(data, dict) else None
        if not isinstance(payload, dict) or "id" not in payload:
            raise MalformedWebhook("the event has no data.object with an id")
        try:
            occurred_at = _unix(event.get("timestamp"))
        except (TypeError, ValueError):
            raise MalformedWebhook("the event timestamp is not a Unix time") from None
        resource = self._connector.resource_for_event(event_type)
        if resource is None or not resource.support.syncs(Direction.TO_SALESFORCE):
            return [WebhookEvent(str(event_id), event_type, None, None, occurred_at)]
        try:
            record = self._connector.record_from_event(resource, event_type, payload, occurred_at)
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedWebhook(f"data.object is not a valid {resource.name}: {exc}") from None
        return [WebhookEvent(str(event_id), event_type, resource.name, record, occurred_at)]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


class InvoicedConnector:
    name = "invoiced"

    def __init__(self, context: ConnectorContext) -> None:
        settings = context.settings
        environment = settings.get("environment", "production")
        if environment not in {"production", "sandbox"}:
            raise ValueError(f"invoiced: environment must be production or sandbox, not {environment!r}")
        base_url = settings.get("base_url") or (SANDBOX_URL if environment == "sandbox" else PRODUCTION_URL)
        api_key = context.secret.get("api_key")
        if not api_key:
            raise ValueError(f"invoiced: the secret of source {context.source_key!r} has no api_key")
        self.source_key = context.source_key
        self._resources = _resources()
        self.objects = {name: r.support for name, r in self._resources.items()}
        self.webhooks = InvoicedWebhooks(self)
        self.client = HttpClient(
            base_url,
            auth=(api_key, ""),
            headers={"User-Agent": "billsync"},
            ca_file=context.ca_file,
            timeout=float(settings.get("timeout_seconds", 30)),
            error_parser=_error,
        )

    # ----------------------------------------------------------------------------- translation

    def resource(self, object_name: str) -> _Resource:
        try:
            return self._resources[object_name]
        except KeyError:
            raise ValueError(f"invoiced does not sync {object_name!r}") from None

    def resource_for_event(self, event_type: str) -> _Resource | None:
        object_type = event_type.partition(".")[0]
        return next((r for r in self._resources.values() if r.event_object == object_type), None)

    def to_record(
        self, object_name: str, payload: Mapping[str, Any], *, deleted: bool = False
    ) -> SourceRecord:
        resource = self.resource(object_name)
        payload = _collapse_expanded(payload)
        if resource.reshape is not None:
            payload = resource.reshape(payload)
        version = _unix(payload.get("updated_at")) or _unix(payload.get("created_at"))
        if version is None:
            raise ValueError("no updated_at or created_at")
        state = RecordState.DELETED if deleted else RecordState.ACTIVE
        if not deleted and (payload.get("status") == "voided" or payload.get("voided") is True):
            state = RecordState.VOIDED
        metadata = payload.get("metadata") or {}
        parents = {
            key: str(payload[key]) for key in ("customer", "invoice") if payload.get(key) not in (None, "")
        }
        return SourceRecord(
            object=resource.name,
            id=str(payload["id"]),
            version=version,
            state=state,
            data=dict(payload),
            salesforce_id=metadata.get("salesforce_id") if isinstance(metadata, dict) else None,
            parents=parents,
        )

    def record_from_event(
        self, resource: _Resource, event_type: str, payload: Mapping[str, Any], occurred_at: datetime | None
    ) -> SourceRecord:
        deleted = resource.is_deletion(event_type)
        record = self.to_record(resource.name, payload, deleted=deleted)
        if deleted and occurred_at is not None and occurred_at > record.version:
            record = record.model_copy(update={"version": occurred_at})
        return record

    # ----------------------------------------------------------------------------- reads

    def changes(
        self, object_name: str, window: Window, *, page_size: int, position: str | None = None
    ) -> Iterator[ChangePage]:
        resource = self.resource(object_name)
        per_page = max(1, min(page_size, MAX_PER_PAGE))
        if window.start is None:
            yield from self._snapshot(resource, per_page, position)
        else:
            yield from self._events(resource, window, per_page, position)

    def count_changes(self, object_name: str, window: Window) -> int | None:
        """The records changed since the window's start (all of them without one): the list's
        `X-Total-Count`, read with one small request. None where Invoiced cannot filter the list by time
        or lists the object per customer only."""
        resource = self.resource(object_name)
        if "{parent}" in resource.collection or (window.start is not None and not resource.updated_after):
            return None
        params: dict[str, Any] = {"per_page": 1}
        if window.start is not None:
            params["updated_after"] = math.floor(window.start.timestamp()) - 1
        total = self.client.request("GET", resource.collection, params=params).headers.get("X-Total-Count")
        return int(total) if total and total.isdigit() else None

    def _snapshot(self, resource: _Resource, per_page: int, position: str | None) -> Iterator[ChangePage]:
        if "{parent}" in resource.collection:
            raise ValueError(
                f"invoiced lists {resource.name} per customer only; it is pulled from Salesforce"
            )
        rounds = 0
        start_page = int(position.removeprefix("snapshot:")) + 1 if position else 1
        while True:
            scan_started = datetime.now(UTC)
            params: dict[str, Any] = {"sort": "id asc", "per_page": per_page, "page": start_page}
            if resource.include:
                params["include"] = resource.include
            page_number = start_page
            for items in link_header_pages(self.client, resource.collection, params):
                records = [self.to_record(resource.name, item) for item in items]
                yield ChangePage(records, f"snapshot:{page_number}")
                page_number += 1
            rounds += 1
            # A deletion during the read may have shifted a page: read the list once more.
            if rounds >= 2 or not self._deleted_since(resource, scan_started):
                return
            start_page = 1

    def _deleted_since(self, resource: _Resource, since: datetime) -> bool:
        params = {
            "filter[type]": resource.deleted_event,
            "start_date": math.floor(since.timestamp()) - 1,
            "per_page": 1,
        }
        return bool(self.client.get_json("/events", params))

    def _events(
        self, resource: _Resource, window: Window, per_page: int, position: str | None
    ) -> Iterator[ChangePage]:
        assert window.start is not None
        page = int(position.removeprefix("events:")) + 1 if position else 1
        params = {
            "type": resource.event_object,
            "start_date": math.floor(window.start.timestamp()),
            "end_date": math.ceil(window.end.timestamp()) - 1,
            "per_page": per_page,
            "page": page,
        }
        for events in link_header_pages(self.client, "/events", params):
            # Events are listed newest first; of one record's events keep the newest (event ids break
            # ties between events stamped in the same second).
            latest: dict[str, tuple[SourceRecord, int]] = {}
            for event in events:
                payload = (event.get("data") or {}).get("object")
                if not isinstance(payload, dict):
                    continue
                record = self.record_from_event(
                    resource, str(event.get("type")), payload, _unix(event.get("timestamp"))
                )
                order = int(event.get("id") or 0)
                kept = latest.get(record.id)
                if kept is None or (record.version, order) > (kept[0].version, kept[1]):
                    latest[record.id] = (record, order)
            yield ChangePage([record for record, _ in latest.values()], f"events:{page}")
            page += 1

    def fetch(
        self, object_name: str, ids: Sequence[str], *, parents: Mapping[str, str] | None = None
    ) -> dict[str, SourceRecord | None]:
        resource = self.resource(object_name)
        found: dict[str, SourceRecord | None] = {}
        for record_id in ids:
            parent = (parents or {}).get(record_id)
            found[record_id] = self._fetch_one(resource, record_id, parent)
        return found

    def _fetch_one(self, resource: _Resource, record_id: str, parent: str | None) -> SourceRecord | None:
        if resource.name == "note":
            # Invoiced has no endpoint for one note: read the notes of its parent (or all notes).
            return self._find_in_list(
                resource, f"/customers/{parent}/notes" if parent else "/notes", record_id
            )
        if resource.item_collection is not None:  # payment sources: listed per customer only
            return self._find_in_list(resource, self._collection(resource, parent), record_id)
        path = f"{self._collection(resource, parent)}/{record_id}"
        params = {"include": resource.include} if resource.include else None
        try:
            payload = self.client.get_json(path, params)
        except BillingApiError as exc:
            if exc.status == 404:
                return None
            raise
        return self.to_record(resource.name, payload)

    def _find_in_list(self, resource: _Resource, path: str, record_id: str) -> SourceRecord | None:
        try:
            for page in link_header_pages(self.client, path, {"per_page": MAX_PER_PAGE}):
                for item in page:
                    if (
                        str(item.get("id")) == record_id
                        and item.get("object", resource.name) == resource.name
                    ):
                        return self.to_record(resource.name, item)
        except BillingApiError as exc:
            if exc.status == 404:
                return None
            raise
        return None

    def _collection(self, resource: _Resource, parent: str | None, *, item: bool = False) -> str:
        path = (resource.item_collection if item else None) or resource.collection
        if "{parent}" in path:
            if not parent:
                raise BillingApiError(
                    f"the {resource.name} needs its parent's id", code="PARENT_NOT_SYNCED", retryable=True
                )
            return path.replace("{parent}", parent)
        return path

    # ----------------------------------------------------------------------------- writes

    def create(self, object_name: str, payload: Mapping[str, Any], *, idempotency_key: str) -> SourceRecord:
        resource = self.resource(object_name)
        body = {**dict(resource.create_defaults), **payload}
        parent = (
            str(body.pop(resource.parent_key))
            if "{parent}" in resource.collection and resource.parent_key in body
            else None
        )
        try:
            response = self.client.request(
                "POST",
                self._collection(resource, parent),
                json_body=body,
                headers={"Idempotency-Key": idempotency_key},
            )
        except BillingApiError as exc:
            if resource.support.sensitive:  # Invoiced echoes a token it does not know: keep it out
                exc.message = _without_values(exc.message, body)
                exc.args = (exc.message,)
            raise
        return self.to_record(resource.name, parse_json(response.content))

    def update(
        self, object_name: str, record_id: str, payload: Mapping[str, Any], *, parent_id: str | None = None
    ) -> SourceRecord:
        resource = self.resource(object_name)
        if resource.item_collection is not None:
            raise BillingApiError(
                f"Invoiced cannot change a saved {resource.name.replace('_', ' ')}: to replace it, create a "
                "new one in Salesforce with the new token and delete this one",
                code="PAYMENT_SOURCE_IMMUTABLE",
            )
        body = dict(payload)
        if "{parent}" in resource.collection and resource.parent_key:
            parent_id = str(body.pop(resource.parent_key, None) or parent_id or "") or None
        response = self.client.request(
            "PATCH", f"{self._collection(resource, parent_id)}/{record_id}", json_body=body
        )
        return self.to_record(resource.name, parse_json(response.content))

    def delete(
        self,
        object_name: str,
        record_id: str,
        *,
        mode: Literal["delete", "void"],
        parent_id: str | None = None,
    ) -> None:
        resource = self.resource(object_name)
        try:
            if mode == "void" and resource.void_path:
                self.client.request("POST", resource.void_path.format(id=record_id))
            else:
                path = self._collection(resource, parent_id, item=True)
                self.client.request("DELETE", f"{path}/{record_id}")
        except BillingApiError as exc:
            if exc.status != 404:  # already gone
                raise

    def close(self) -> None:
        self.client.close()


def _without_values(message: str, body: Mapping[str, Any]) -> str:
    """`message` with every text value of `body` replaced by a placeholder."""
    for value in body.values():
        if isinstance(value, str) and len(value) >= 4:
            message = message.replace(value, MASK)
    return message


def _collapse_expanded(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Events carry expanded parents (`customer` as an object); records carry their ids, as lists do."""
    data = dict(payload)
    for key in ("customer", "invoice"):
        value = data.get(key)
        if isinstance(value, dict) and "id" in value:
            data[key] = value["id"]
    return data
