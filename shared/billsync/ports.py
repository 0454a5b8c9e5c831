"""The ports the use cases depend on. Adapters (DynamoDB, SQS, Salesforce) implement them; tests may fake them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from billsync.domain.models import (
    Change,
    Checkpoint,
    DeadLetter,
    Direction,
    ErrorInfo,
    SyncLogEntry,
    XrefState,
)

# --------------------------------------------------------------------------------------- Salesforce


@dataclass(frozen=True)
class SfUpsert:
    """Create or update one record by its external id."""

    key: str  # the caller's correlation key; results come back under it
    object: str
    external_id_field: str
    fields: dict[str, Any]  # includes the external id's value


@dataclass(frozen=True)
class SfUpdate:
    key: str
    object: str
    id: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class SfDelete:
    key: str
    object: str
    id: str


SfWrite = SfUpsert | SfUpdate | SfDelete


@dataclass(frozen=True)
class SfWriteResult:
    key: str
    ok: bool
    id: str | None = None
    created: bool = False
    error: ErrorInfo | None = None


@dataclass
class WritePlan:
    """Writes in stages: a stage runs after the one before it (parents before their children)."""

    stages: list[list[SfWrite]] = field(default_factory=list)

    def add_stage(self, writes: Sequence[SfWrite]) -> None:
        if writes:
            self.stages.append(list(writes))

    def __len__(self) -> int:
        return sum(len(stage) for stage in self.stages)


class SalesforceCallError(Exception):
    """A whole Salesforce request failed; `error` says whether trying again can help."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error


class BudgetReserveReached(Exception):
    """Salesforce's daily API budget is down to the configured reserve: stop cleanly and resume later."""

    def __init__(self, used: int, limit: int, reserve: int) -> None:
        super().__init__(
            f"Salesforce API budget reserve reached: {used} of {limit} requests used today; "
            f"billsync keeps the last {reserve} for the org's other integrations"
        )
        self.used, self.limit, self.reserve = used, limit, reserve


class OrgMismatch(Exception):
    """The connected Salesforce org is not the one this deployment is pinned to."""


class SalesforcePort(Protocol):
    def write(self, plan: WritePlan) -> dict[str, SfWriteResult]: ...

    def query(self, soql: str, *, include_deleted: bool = False) -> Iterator[dict[str, Any]]: ...

    def org_id(self) -> str: ...

    def field_names(self, sobject: str) -> set[str]: ...

    def api_usage(self) -> tuple[int, int] | None: ...


# --------------------------------------------------------------------------------------- state


@dataclass(frozen=True)
class XrefKey:
    """Look a cross-reference up by one side's id."""

    source: str
    object: str
    billing_id: str | None = None
    salesforce_id: str | None = None


@dataclass(frozen=True)
class XrefWrite:
    state: XrefState
    expected_rev: int  # the revision read; 0 for a record not seen before


@dataclass(frozen=True)
class LeaseGrant:
    """A stream's lease, taken. `after_crash`: the previous holder's lease ran out unreleased, so that
    run died, perhaps between a Salesforce write and the cross-reference that records it."""

    after_crash: bool = False


class StatePort(Protocol):
    def get_xrefs(self, keys: Sequence[XrefKey]) -> dict[XrefKey, XrefState]: ...

    def put_xrefs(self, writes: Sequence[XrefWrite]) -> list[XrefWrite]:
        """Write each state unless its revision moved on; return the writes that lost the race."""

    def get_checkpoint(self, source: str, object_name: str, direction: Direction) -> Checkpoint | None: ...

    def save_checkpoint(
        self,
        source: str,
        object_name: str,
        direction: Direction,
        *,
        cursor: datetime | None,
        expected_rev: int,
        window_end: datetime | None = None,
        position: str | None = None,
    ) -> int:
        """Save progress with a conditional write on the revision read; returns the new revision."""

    def resume_point(
        self, source: str, object_name: str, direction: Direction
    ) -> tuple[datetime | None, str | None]:
        """The window end and position of an interrupted pull, if any."""

    def acquire_lease(self, name: str, owner: str, seconds: int) -> LeaseGrant | None:
        """The lease for `seconds`, or None while another owner holds it."""

    def release_lease(self, name: str, owner: str) -> None: ...

    def write_log(self, entries: Sequence[SyncLogEntry]) -> None: ...

    def mark_synced(self, source: str, object_name: str, direction: Direction, at: datetime) -> None: ...


# --------------------------------------------------------------------------------------- queues


@dataclass(frozen=True)
class QueuedChange:
    """A change as received from the object's queue."""

    change: Change
    message_id: str
    receipt_handle: str
    receive_count: int
    group: str | None
    first_received_at: datetime | None


@dataclass(frozen=True)
class Envelope:
    """A change on its way into an object queue, with its group and deduplication id."""

    change: Change
    group: str
    dedup_id: str


def dedup_id(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:64]


class QueuePort(Protocol):
    def send(self, object_name: str, envelopes: Sequence[Envelope]) -> None: ...

    def dead_letter(self, object_name: str, letters: Sequence[DeadLetter]) -> None: ...

    def delay(self, object_name: str, receipt_handle: str, seconds: int) -> bool: ...


class SecretsPort(Protocol):
    def get_json(self, name: str) -> Mapping[str, Any]: ...
