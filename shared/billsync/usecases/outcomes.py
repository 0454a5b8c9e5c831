"""Where record outcomes go: the sync log, the dead-letter queue, retries, metrics, last-synced times,
hourly outcome counters and — when the deployment asks for it — a mirror of the log in Salesforce.

The Salesforce mirror (`sync.mirror_log_to_salesforce`) upserts dead letters and ignored edits
(`skipped_not_owned`) into `Billing_Sync_Log__c` by `Log_Id__c`, so Salesforce admins see what needs
them where they work. Applied and unchanged records are not mirrored: they need nobody, and one row per
synced record would cost Salesforce data storage and API requests by the thousand every day. The mirror
is written in the same way as any other Salesforce batch (one write plan, sObject Collections) and is
best effort: a mirror that cannot be written never fails the batch it reports on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from billsync.connectors.base import ObjectSupport
from billsync.domain.models import Change, DeadLetter, Direction, Outcome, SyncLogEntry
from billsync.domain.redaction import redact_text
from billsync.ports import Envelope, QueuePort, SalesforcePort, SfUpsert, StatePort, WritePlan, dedup_id
from billsync.usecases.ops_ports import OutcomeStatsPort

MetricsCallback = Callable[[str, Direction, Outcome, int], None]
WarningCallback = Callable[[str, Exception | None], None]
MIRROR_OBJECT = "Billing_Sync_Log__c"
MESSAGE_LIMIT = 32_768  # Message__c, a long text area
MIRROR_EXTERNAL_ID = "Log_Id__c"
_DIRECTION_LABELS = {Direction.TO_SALESFORCE: "To Salesforce", Direction.TO_BILLING: "To Billing"}


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
        self,
        state: StatePort,
        queues: QueuePort,
        *,
        metrics: MetricsCallback | None = None,
        stats: OutcomeStatsPort | None = None,
        mirror: SalesforcePort | None = None,
        warn: WarningCallback | None = None,
    ) -> None:
        self._state = state
        self._queues = queues
        self._metrics = metrics
        self._stats = stats
        self._mirror = mirror
        self._warn = warn
        self._log: list[SyncLogEntry] = []
        self._letters: dict[str, list[DeadLetter]] = {}
        self._requeued: dict[str, list[Envelope]] = {}
        self.counts: Counter[tuple[str, Direction, Outcome]] = Counter()

    def log(self, entry: SyncLogEntry) -> None:
        # Error messages quote what a system refused, which may be a secret or a card number.
        if entry.message:
            entry = entry.model_copy(update={"message": redact_text(entry.message)})
        self._log.append(entry)
        self.counts[(entry.object, entry.direction, entry.outcome)] += 1

    def dead_letter(self, object_name: str, letter: DeadLetter) -> None:
        error = letter.error.model_copy(update={"message": redact_text(letter.error.message)})
        self._letters.setdefault(object_name, []).append(letter.model_copy(update={"error": error}))

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
        self._count_hourly()
        self._write_mirror()
        self._log, self._letters, self._requeued = [], {}, {}
        self.counts = Counter()

    def _count_hourly(self) -> None:
        if self._stats is None or not self._log:
            return
        hours: dict[tuple[str, Direction, datetime], Counter[Outcome]] = {}
        for entry in self._log:
            hour = entry.at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            hours.setdefault((entry.object, entry.direction, hour), Counter())[entry.outcome] += 1
        try:
            self._stats.add_outcome_counts(hours)
        except Exception as exc:  # counters are for the status page: never fail a batch for them
            self._report("the hourly outcome counters could not be updated", exc)

    def _write_mirror(self) -> None:
        if self._mirror is None:
            return
        letters = [letter for group in self._letters.values() for letter in group]
        ignored = [entry for entry in self._log if entry.outcome is Outcome.SKIPPED_NOT_OWNED]
        writes = mirror_writes(letters, ignored)
        if not writes:
            return
        plan = WritePlan()
        plan.add_stage(writes)
        try:
            results = self._mirror.write(plan)
        except Exception as exc:  # the mirror is a courtesy copy: the batch it reports on stands
            self._report(f"{len(writes)} sync-log entries could not be mirrored to Salesforce", exc)
            return
        refused = [r for r in results.values() if not r.ok]
        if refused:
            first = refused[0].error
            detail = f"{first.code}: {first.message}" if first else "no reason given"
            self._report(f"Salesforce refused {len(refused)} mirrored sync-log entries ({detail})", None)

    def _report(self, message: str, exc: Exception | None) -> None:
        if self._warn is not None:
            self._warn(message, exc)


def mirror_writes(letters: Sequence[DeadLetter], ignored: Sequence[SyncLogEntry]) -> list[SfUpsert]:
    """`Billing_Sync_Log__c` upserts for dead letters and ignored edits; ids make a retried flush idempotent."""
    writes: list[SfUpsert] = []
    for letter in letters:
        change, error = letter.change, letter.error
        fields_named = f" (fields: {', '.join(error.fields)})" if error.fields else ""
        log_id = dedup_id("dead-letter", change.key, letter.failed_at.isoformat())
        fields = _mirror_fields(
            log_id, change.source, change.object, change.direction, change.key, "Failed", letter.failed_at
        )
        fields.update(
            Error_Code__c=error.code[:80],
            Message__c=_message(error.message, fields_named),
            Attempts__c=letter.attempts,
            Salesforce_Record_Id__c=change.id if change.direction is Direction.TO_BILLING else None,
        )
        writes.append(SfUpsert(log_id, MIRROR_OBJECT, MIRROR_EXTERNAL_ID, fields))
    for entry in ignored:
        side = "B" if entry.direction is Direction.TO_SALESFORCE else "S"
        key = f"{entry.source}:{entry.object}:{side}:{entry.record_id}"
        log_id = dedup_id("not-owned", key, entry.at.isoformat())
        fields = _mirror_fields(
            log_id, entry.source, entry.object, entry.direction, key, "Skipped Not Owned", entry.at
        )
        fields.update(
            Message__c=_message(entry.message or "") or None,
            Attempts__c=entry.attempts,
            Salesforce_Record_Id__c=entry.salesforce_id
            or (entry.record_id if entry.direction is Direction.TO_BILLING else None),
        )
        writes.append(SfUpsert(log_id, MIRROR_OBJECT, MIRROR_EXTERNAL_ID, fields))
    return writes


def _message(text: str, suffix: str = "") -> str:
    """Masked, cut to what `Message__c` holds, keeping its end (the fields named) whole."""
    text = redact_text(text)
    room = MESSAGE_LIMIT - len(suffix)
    return (text if len(text) <= room else text[: room - 1] + "…") + suffix


def _mirror_fields(
    log_id: str, source: str, object_name: str, direction: Direction, key: str, outcome: str, at: datetime
) -> dict[str, object]:
    return {
        MIRROR_EXTERNAL_ID: log_id,
        "Record_Key__c": key[:255],
        "Object__c": object_name[:40],
        "Billing_Source__c": source[:40],
        "Direction__c": _DIRECTION_LABELS[direction],
        "Outcome__c": outcome,
        "Occurred_At__c": at,
    }
