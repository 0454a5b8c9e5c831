"""The ports of billsync's operator use cases (DLQ, sync now, backfill, status, sync log), and the values
they exchange. The DynamoDB, SQS and Lambda adapters in `billsync.aws` implement them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from billsync.domain.models import Direction, Outcome, SyncLogEntry
from billsync.domain.rules import Window

# --------------------------------------------------------------------------------------- state


@dataclass(frozen=True)
class ApiUsage:
    """The Salesforce API usage a function last saw in `Sforce-Limit-Info`."""

    used: int
    limit: int
    at: datetime

    @property
    def left(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def left_percent(self) -> float:
        return 100.0 * self.left / self.limit if self.limit else 0.0


@dataclass(frozen=True)
class StreamState:
    """A pull stream's checkpoint as an operator sees it."""

    cursor: datetime | None = None
    last_synced_at: datetime | None = None
    last_run_at: datetime | None = None
    window_end: datetime | None = None  # set while a window is read: the run resumes from `position`
    position: str | None = None
    # Operator streams (a backfill) only:
    since: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    records_done: int = 0
    total: int | None = None
    run_id: str | None = None  # names the request that last started the stream over
    batch_size: int | None = None  # a listing's positions count pages of this size: a resume keeps it

    @property
    def unfinished(self) -> bool:
        return self.window_end is not None


OutcomeCounts = Mapping[tuple[str, Direction, datetime], Mapping[Outcome, int]]


class OutcomeStatsPort(Protocol):
    def add_outcome_counts(self, counts: OutcomeCounts) -> None:
        """Add record outcomes to hourly counters, keyed by (object, direction, hour)."""


class StreamProgressPort(Protocol):
    def start_stream(
        self,
        source: str,
        stream_object: str,
        direction: Direction,
        *,
        since: datetime | None,
        total: int | None,
        at: datetime,
        run_id: str | None = None,
        batch_size: int | None = None,
    ) -> None: ...

    def add_stream_progress(
        self, source: str, stream_object: str, direction: Direction, records: int
    ) -> None: ...

    def finish_stream(self, source: str, stream_object: str, direction: Direction, at: datetime) -> None: ...

    def stream_state(self, source: str, stream_object: str, direction: Direction) -> StreamState | None: ...


class OpsStatePort(StreamProgressPort, Protocol):
    """What the status and sync-log commands read."""

    def outcome_counts(
        self, object_name: str, direction: Direction, since: datetime
    ) -> dict[Outcome, int]: ...

    def api_usage(self) -> ApiUsage | None: ...

    def query_log(
        self, object_name: str, *, start: datetime, end: datetime, limit: int
    ) -> list[SyncLogEntry]: ...

    def record_log(
        self, source: str, object_name: str, record_id: str, *, limit: int
    ) -> list[SyncLogEntry]: ...


@runtime_checkable
class CountsChanges(Protocol):
    """A connector that can tell cheaply how many changes a window holds (a list's total count), so a
    backfill can show its ETA. Optional: without it a backfill shows its records and rate only."""

    def count_changes(self, object_name: str, window: Window) -> int | None: ...


# --------------------------------------------------------------------------------------- queues


@dataclass(frozen=True)
class QueueMessage:
    """A message read from a queue, held invisible until it is deleted or released."""

    message_id: str
    receipt_handle: str
    body: str
    sent_at: datetime | None = None
    receive_count: int = 1
    group: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


class DeadLetterQueuePort(Protocol):
    def receive(self, object_name: str, *, max_messages: int, hold_seconds: int) -> list[QueueMessage]:
        """Up to 10 messages, invisible to others for `hold_seconds`."""

    def release(self, object_name: str, messages: Sequence[QueueMessage]) -> None:
        """Make held messages visible again at once."""

    def delete(self, object_name: str, messages: Sequence[QueueMessage]) -> list[QueueMessage]:
        """Delete messages; returns those SQS did not delete."""

    def purge(self, object_name: str) -> None: ...

    def depth(self, object_name: str) -> QueueDepth: ...


@dataclass(frozen=True)
class QueueDepth:
    visible: int
    in_flight: int
    delayed: int = 0

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed


# --------------------------------------------------------------------------------------- functions


@dataclass(frozen=True)
class InvocationResult:
    ok: bool
    payload: Any = None
    error: str | None = None


class FunctionsPort(Protocol):
    def invoke(self, object_name: str, event: Mapping[str, Any]) -> InvocationResult:
        """Run the object's function and wait for its answer."""

    def invoke_async(self, object_name: str, event: Mapping[str, Any]) -> None:
        """Hand an event to the object's function (Lambda's asynchronous invocation: retried, and
        sent to the failed-runs queue if it keeps failing)."""
