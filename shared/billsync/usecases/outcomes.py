"""Where record outcomes go: the sync log, the dead-letter queue, retries, metrics, last-synced times."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime

from billsync.connectors.base import ObjectSupport
from billsync.domain.models import Change, DeadLetter, Direction, Outcome, SyncLogEntry
from billsync.ports import Envelope, QueuePort, StatePort, dedup_id

MetricsCallback = Callable[[str, Direction, Outcome, int], None]


def group_of(change: Change, support: ObjectSupport | None) -> str:
    """The queue group of a change: its parent record (so a parent's family is processed in order,
    one worker at a time, which also keeps concurrent workers off the same parent rows)."""
    if (
        support is not None
        and support.parent
        and change.parent
        and change.direction is Direction.TO_SALESFORCE
    ):
        return f"{change.source}:{support.parent}:{change.parent}"
    return f"{change.source}:{change.object}:{change.id}"


def envelope(change: Change, support: ObjectSupport | None, *, nonce: str = "") -> Envelope:
    """Repeated deliveries of one webhook event share a deduplication id; everything else is distinct."""
    if change.event_id and change.cause == "webhook":
        dedup = dedup_id(change.source, "event", change.event_id)
    else:
        dedup = dedup_id(change.key, change.version, change.cause, nonce)
    return Envelope(change, group_of(change, support), dedup)


class OutcomeSink:
    def __init__(
        self, state: StatePort, queues: QueuePort, *, metrics: MetricsCallback | None = None
    ) -> None:
        self._state = state
        self._queues = queues
        self._metrics = metrics
        self._log: list[SyncLogEntry] = []
        self._letters: dict[str, list[DeadLetter]] = {}
        self._requeued: dict[str, list[Envelope]] = {}
        self.counts: Counter[tuple[str, Direction, Outcome]] = Counter()

    def log(self, entry: SyncLogEntry) -> None:
        self._log.append(entry)
        self.counts[(entry.object, entry.direction, entry.outcome)] += 1

    def dead_letter(self, object_name: str, letter: DeadLetter) -> None:
        self._letters.setdefault(object_name, []).append(letter)

    def delay(self, object_name: str, receipt_handle: str, seconds: int) -> None:
        self._queues.delay(object_name, receipt_handle, seconds)

    def requeue(self, object_name: str, item: Envelope) -> None:
        self._requeued.setdefault(object_name, []).append(item)

    def flush(self) -> None:
        """Make everything durable: retries and dead letters first, then the log and last-synced times."""
        for object_name, items in self._requeued.items():
            self._queues.send(object_name, items)
        for object_name, letters in self._letters.items():
            self._queues.dead_letter(object_name, letters)
        if self._log:
            self._state.write_log(self._log)
        latest: dict[tuple[str, str, Direction], datetime] = {}
        for entry in self._log:
            if entry.outcome in {Outcome.APPLIED, Outcome.SKIPPED_UNCHANGED, Outcome.SKIPPED_STALE}:
                key = (entry.source, entry.object, entry.direction)
                latest[key] = max(latest.get(key, entry.at), entry.at)
        for (source, object_name, direction), at in latest.items():
            self._state.mark_synced(source, object_name, direction, at)
        if self._metrics is not None:
            for (object_name, direction, outcome), count in self.counts.items():
                self._metrics(object_name, direction, outcome, count)
        self._log, self._letters, self._requeued = [], {}, {}
        self.counts = Counter()
