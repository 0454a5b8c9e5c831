"""Reading, redriving and purging an object's dead-letter queue, and reading the failed-runs queue.

An object's DLQ holds two kinds of messages:
* dead letters billsync wrote (`DeadLetter`: the change, the error, the attempts);
* changes SQS moved there itself after `maxReceiveCount` receives — the worker crashed or timed out
  before it could record why, so they carry no reason.
Anything else is shown as unreadable and never moved.

Reading a queue receives its messages, holding them invisible for a short while, and makes them visible
again when done. A redrive sends each chosen change back to the object's queue with `cause="redrive"`
(so the appliers apply it even if its version was dead-lettered before) and deletes it from the DLQ only
after the send succeeded. Its deduplication id is derived from the DLQ message's id, so a redrive that
is interrupted and run again within SQS's five-minute deduplication window never sends a change twice;
messages held by an interrupted run become visible again (at once on a clean stop, after the hold time
otherwise).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from billsync.domain.models import Change, DeadLetter, ErrorInfo
from billsync.domain.redaction import redact
from billsync.ports import Envelope, QueuePort, dedup_id
from billsync.usecases.ops_ports import DeadLetterQueuePort, QueueMessage

EXHAUSTED_CODE = "EXHAUSTED_RETRIES"
EXHAUSTED_MESSAGE = "exhausted retries without a recorded reason (the function crashed or timed out)"
UNREADABLE_CODE = "UNREADABLE"
DEFAULT_HOLD_SECONDS = 60  # well inside SQS's five-minute deduplication window
RECEIVE_BATCH = 10
# The queue of scheduled pulls and asynchronous runs that failed after their retries; the DLQ port
# reaches it under this name, next to the objects' DLQs.
FAILED_RUNS = "failed-runs"


@dataclass(frozen=True)
class Letter:
    """One DLQ message as an operator reads it."""

    object: str
    message: QueueMessage
    kind: str  # dead_letter | exhausted | unreadable
    change: Change | None
    error: ErrorInfo
    attempts: int | None
    first_seen_at: datetime | None
    failed_at: datetime | None

    @property
    def id(self) -> str:
        return self.message.message_id

    @property
    def record_id(self) -> str | None:
        return self.change.id if self.change else None

    def age(self, now: datetime) -> timedelta | None:
        return now - self.failed_at if self.failed_at else None

    def summary(self) -> dict[str, Any]:
        """What `dlq list` shows of it (record payloads left out)."""
        change = self.change
        return {
            "id": self.id,
            "object": self.object,
            "kind": self.kind,
            "source": change.source if change else None,
            "direction": change.direction.value if change else None,
            "record_id": change.id if change else None,
            "cause": change.cause if change else None,
            "code": self.error.code,
            "message": redact(self.error.message),
            "fields": list(self.error.fields),
            "retryable": self.error.retryable,
            "attempts": self.attempts,
            "first_seen_at": self.first_seen_at.isoformat() if self.first_seen_at else None,
            "failed_at": self.failed_at.isoformat() if self.failed_at else None,
        }

    def detail(self) -> dict[str, Any]:
        """The whole message, secrets and payment data masked (`dlq show`)."""
        try:
            body: Any = json.loads(self.message.body)
        except ValueError:
            body = self.message.body
        return {
            **self.summary(),
            "sent_at": self.message.sent_at.isoformat() if self.message.sent_at else None,
            "group": self.message.group,
            "body": redact(body),
        }


def read_letter(object_name: str, message: QueueMessage) -> Letter:
    """A DLQ message as a dead letter, a change that ran out of retries, or an unreadable message."""
    try:
        letter = DeadLetter.model_validate_json(message.body)
    except ValidationError:
        pass
    else:
        return Letter(
            object_name,
            message,
            "dead_letter",
            letter.change,
            letter.error,
            letter.attempts,
            letter.first_seen_at,
            letter.failed_at,
        )
    try:
        change = Change.model_validate_json(message.body)
    except ValidationError:
        error = ErrorInfo(code=UNREADABLE_CODE, message="not a billsync change or dead letter")
        return Letter(object_name, message, "unreadable", None, error, None, None, message.sent_at)
    error = ErrorInfo(code=EXHAUSTED_CODE, message=EXHAUSTED_MESSAGE, retryable=True)
    return Letter(object_name, message, "exhausted", change, error, None, None, message.sent_at)


def unwrap_redriven(body: str) -> str:
    """A dead letter moved back into its object's queue by SQS (a message move task) is its change,
    redriven; any other body is returned as it is."""
    try:
        letter = DeadLetter.model_validate_json(body)
    except ValidationError:
        return body
    return letter.change.model_copy(update={"cause": "redrive"}).model_dump_json(exclude_none=True)


@dataclass(frozen=True)
class LetterFilter:
    """Which letters an operation concerns; an empty filter takes them all."""

    ids: frozenset[str] = frozenset()  # DLQ message ids
    records: frozenset[str] = frozenset()  # record ids
    codes: frozenset[str] = frozenset()  # error codes
    sources: frozenset[str] = frozenset()
    older_than: timedelta | None = None
    newer_than: timedelta | None = None

    @property
    def empty(self) -> bool:
        return not (
            self.ids or self.records or self.codes or self.sources or self.older_than or self.newer_than
        )

    def matches(self, letter: Letter, now: datetime) -> bool:
        if self.ids and letter.id not in self.ids:
            return False
        if self.records and letter.record_id not in self.records:
            return False
        if self.codes and letter.error.code.upper() not in {c.upper() for c in self.codes}:
            return False
        if self.sources and (letter.change is None or letter.change.source not in self.sources):
            return False
        age = letter.age(now)
        if self.older_than is not None and (age is None or age < self.older_than):
            return False
        return not (self.newer_than is not None and (age is None or age > self.newer_than))


class _Scan:
    """Receives a queue's messages batch by batch, holding each; whatever is still held when the scan
    ends (normally or not) is made visible again."""

    def __init__(self, dlq: DeadLetterQueuePort, object_name: str, hold_seconds: int) -> None:
        self._dlq = dlq
        self._object = object_name
        self._hold = hold_seconds
        self._held: dict[str, QueueMessage] = {}
        self._seen: set[str] = set()

    def batches(self) -> Iterator[list[QueueMessage]]:
        while True:
            batch = self._dlq.receive(self._object, max_messages=RECEIVE_BATCH, hold_seconds=self._hold)
            if not batch:
                return
            fresh = []
            for message in batch:
                self._held[message.message_id] = message  # the newest receipt handle is the valid one
                if message.message_id not in self._seen:
                    self._seen.add(message.message_id)
                    fresh.append(message)
            if fresh:
                yield fresh

    def done(self, messages: Sequence[QueueMessage]) -> None:
        for message in messages:
            self._held.pop(message.message_id, None)

    def release(self) -> None:
        held, self._held = list(self._held.values()), {}
        for start in range(0, len(held), RECEIVE_BATCH):
            self._dlq.release(self._object, held[start : start + RECEIVE_BATCH])


def list_letters(
    dlq: DeadLetterQueuePort,
    object_name: str,
    *,
    now: datetime,
    select: LetterFilter | None = None,
    limit: int | None = None,
    hold_seconds: int = DEFAULT_HOLD_SECONDS,
) -> list[Letter]:
    """The letters in an object's DLQ that match `select`, oldest failure first; the queue is unchanged."""
    select = select or LetterFilter()
    found: list[Letter] = []
    scan = _Scan(dlq, object_name, hold_seconds)
    try:
        for batch in scan.batches():
            for message in batch:
                letter = read_letter(object_name, message)
                if select.matches(letter, now):
                    found.append(letter)
            if limit is not None and len(found) >= limit:
                break
    finally:
        scan.release()
    found.sort(key=lambda letter: (letter.failed_at is None, letter.failed_at or now))
    return found[:limit] if limit is not None else found


def find_letter(
    dlq: DeadLetterQueuePort, object_names: Sequence[str], letter_id: str, *, now: datetime
) -> Letter | None:
    """A letter by its DLQ message id, in whichever of the objects' DLQs holds it."""
    select = LetterFilter(ids=frozenset({letter_id}))
    for object_name in object_names:
        found = list_letters(dlq, object_name, now=now, select=select, limit=1)
        if found:
            return found[0]
    return None


@dataclass
class RedriveReport:
    object: str
    redriven: int = 0
    unreadable: int = 0  # left in the DLQ: nothing billsync can send back
    not_deleted: int = 0  # sent, but still in the DLQ (their redrive is deduplicated if run again)
    ids: list[str] = field(default_factory=list)


def redrive_envelope(letter: Letter, *, reread: bool) -> Envelope:
    """The change of a letter on its way back to its object's queue."""
    assert letter.change is not None
    change = letter.change.model_copy(
        update={"cause": "redrive", "record": None if reread else letter.change.record}
    )
    group = letter.message.group if letter.kind == "exhausted" and letter.message.group else None
    return Envelope(
        change,
        group or f"{change.source}:{change.object}:{change.id}",
        dedup_id("redrive", letter.object, letter.id),
    )


def redrive(
    dlq: DeadLetterQueuePort,
    queues: QueuePort,
    object_name: str,
    *,
    now: datetime,
    select: LetterFilter | None = None,
    reread: bool = False,
    limit: int | None = None,
    hold_seconds: int = DEFAULT_HOLD_SECONDS,
    on_progress: Callable[[RedriveReport], None] | None = None,
) -> RedriveReport:
    """Send the chosen letters' changes back to the object's queue, then delete them from its DLQ.

    `reread` sends references only, so the worker reads each record from its source first (the record
    was fixed there). Sensitive objects' changes are references already.
    """
    select = select or LetterFilter()
    report = RedriveReport(object_name)
    scan = _Scan(dlq, object_name, hold_seconds)
    try:
        for batch in scan.batches():
            chosen: list[Letter] = []
            for message in batch:
                letter = read_letter(object_name, message)
                if not select.matches(letter, now):
                    continue
                if letter.change is None:
                    report.unreadable += 1
                    continue
                if limit is not None and report.redriven + len(chosen) >= limit:
                    break
                chosen.append(letter)
            if chosen:
                queues.send(object_name, [redrive_envelope(letter, reread=reread) for letter in chosen])
                kept = {m.message_id for m in dlq.delete(object_name, [letter.message for letter in chosen])}
                scan.done([letter.message for letter in chosen if letter.id not in kept])
                report.redriven += len(chosen) - len(kept)
                report.not_deleted += len(kept)
                report.ids.extend(letter.id for letter in chosen if letter.id not in kept)
                if on_progress is not None:
                    on_progress(report)
            if limit is not None and report.redriven >= limit:
                break
    finally:
        scan.release()
    return report


@dataclass
class PurgeReport:
    object: str
    deleted: int = 0
    whole_queue: bool = False


def purge(
    dlq: DeadLetterQueuePort,
    object_name: str,
    *,
    now: datetime,
    select: LetterFilter | None = None,
    hold_seconds: int = DEFAULT_HOLD_SECONDS,
) -> PurgeReport:
    """Delete the chosen letters (all of them: SQS's PurgeQueue)."""
    select = select or LetterFilter()
    report = PurgeReport(object_name)
    if select.empty:
        report.deleted = dlq.depth(object_name).total
        dlq.purge(object_name)
        report.whole_queue = True
        return report
    scan = _Scan(dlq, object_name, hold_seconds)
    try:
        for batch in scan.batches():
            chosen = [m for m in batch if select.matches(read_letter(object_name, m), now)]
            if chosen:
                kept = {m.message_id for m in dlq.delete(object_name, chosen)}
                scan.done([m for m in chosen if m.message_id not in kept])
                report.deleted += len(chosen) - len(kept)
    finally:
        scan.release()
    return report


# ------------------------------------------------------------------------------------ failed runs


@dataclass(frozen=True)
class FailedRun:
    """A scheduled pull or an asynchronous run that failed after its retries (the failed-runs queue)."""

    id: str
    function: str | None
    event: Any
    error_type: str | None
    error: str | None
    at: str | None
    attempts: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "function": self.function,
            "event": redact(self.event),
            "error_type": self.error_type,
            "error": redact(self.error) if self.error else None,
            "at": self.at,
            "attempts": self.attempts,
        }


def read_failed_run(message: QueueMessage) -> FailedRun:
    """Lambda's invocation record (asynchronous invocations), or Scheduler's dead-lettered input."""
    try:
        body: Any = json.loads(message.body)
    except ValueError:
        body = message.body
    if isinstance(body, dict) and "requestContext" in body and "requestPayload" in body:
        context = body.get("requestContext") or {}
        response = body.get("responsePayload")
        response = response if isinstance(response, dict) else {}
        arn = str(context.get("functionArn") or "")
        return FailedRun(
            id=message.message_id,
            function=arn.split(":")[6] if arn.count(":") >= 6 else arn or None,
            event=body.get("requestPayload"),
            error_type=response.get("errorType") or context.get("condition"),
            error=response.get("errorMessage"),
            at=body.get("timestamp"),
            attempts=context.get("approximateInvokeCount"),
        )
    attributes = message.attributes
    target = attributes.get("TARGET_ARN", "")
    return FailedRun(
        id=message.message_id,
        function=target.split(":")[6] if target.count(":") >= 6 else target or None,
        event=body,
        error_type=attributes.get("ERROR_CODE"),
        error=attributes.get("ERROR_MESSAGE"),
        at=attributes.get("SCHEDULED_TIME") or (message.sent_at.isoformat() if message.sent_at else None),
        attempts=int(attributes["RETRY_ATTEMPTS"]) + 1 if attributes.get("RETRY_ATTEMPTS") else None,
    )


def list_failed_runs(
    dlq: DeadLetterQueuePort, *, limit: int | None = None, hold_seconds: int = 30
) -> list[FailedRun]:
    runs: list[FailedRun] = []
    scan = _Scan(dlq, FAILED_RUNS, hold_seconds)
    try:
        for batch in scan.batches():
            runs.extend(read_failed_run(message) for message in batch)
            if limit is not None and len(runs) >= limit:
                break
    finally:
        scan.release()
    return runs[:limit] if limit is not None else runs
