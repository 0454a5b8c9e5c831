"""Process a batch of queued changes for one object, and decide each message's fate.

* applied or skipped (with its reason) → the message is done;
* a transient failure or a parent not there yet → the message comes back after an exponential,
  jittered backoff (its visibility is extended); on its last attempt it is dead-lettered instead;
* a permanent failure → dead-lettered at once, with the error code, message, fields and attempts;
* Salesforce credentials that log in to another org than the pinned one → every change of the batch
  is dead-lettered with ORG_MISMATCH before anything is written (redrive once the pin or secret is fixed).
A message received again may follow a worker that died after its Salesforce write: its records are
written as the billing system holds them now, never skipped as already there (see `apply_to_salesforce`).
Every outcome is written to the sync log.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from billsync.domain.models import (
    Change,
    DeadLetter,
    Direction,
    ErrorInfo,
    Outcome,
    RecordResult,
    SyncLogEntry,
)
from billsync.domain.rules import backoff_seconds
from billsync.ports import BudgetReserveReached, OrgMismatch, QueuedChange
from billsync.usecases.context import SyncContext
from billsync.usecases.outcomes import OutcomeSink
from billsync.usecases.to_billing import apply_to_billing
from billsync.usecases.to_salesforce import apply_to_salesforce

PARENT_WAIT_FACTOR = 4


@dataclass
class BatchReport:
    failed_message_ids: list[str] = field(default_factory=list)
    results: list[RecordResult] = field(default_factory=list)
    dead_lettered: int = 0
    delayed: int = 0


def process_batch(
    ctx: SyncContext,
    sink: OutcomeSink,
    object_name: str,
    messages: Sequence[QueuedChange],
    *,
    max_receive_count: int,
    rng: random.Random | None = None,
) -> BatchReport:
    report = BatchReport()
    groups: dict[tuple[str, Direction], list[QueuedChange]] = {}
    for message in messages:
        groups.setdefault((message.change.source, message.change.direction), []).append(message)
    for (source_key, direction), group in groups.items():
        changes = [m.change for m in group]
        received_again = {m.change.key for m in group if m.receive_count > 1}
        try:
            results = _apply(ctx, source_key, object_name, direction, changes, received_again)
        except BudgetReserveReached as exc:
            error = ErrorInfo(code="API_BUDGET_RESERVE", message=str(exc), retryable=True)
            results = [RecordResult(change_key=c.key, outcome=Outcome.FAILED, error=error) for c in changes]
        except OrgMismatch as exc:
            error = ErrorInfo(code="ORG_MISMATCH", message=str(exc), retryable=False)
            results = [RecordResult(change_key=c.key, outcome=Outcome.FAILED, error=error) for c in changes]
        for message, result in zip(group, results, strict=True):
            _settle(ctx, sink, object_name, message, result, max_receive_count, report, rng)
    sink.flush()
    return report


def _apply(
    ctx: SyncContext,
    source_key: str,
    object_name: str,
    direction: Direction,
    changes: list[Change],
    received_again: set[str],
) -> list[RecordResult]:
    if not ctx.config.object_enabled(object_name):
        return [
            RecordResult(
                change_key=c.key,
                outcome=Outcome.SKIPPED_DISABLED,
                detail=f"{object_name} sync is switched off",
            )
            for c in changes
        ]
    support = ctx.support(source_key, object_name)
    if support is None or not support.syncs(direction):
        error = ErrorInfo(
            code="NOT_SYNCED", message=f"{source_key} does not sync {object_name} {direction.value}"
        )
        return [RecordResult(change_key=c.key, outcome=Outcome.FAILED, error=error) for c in changes]
    if direction is Direction.TO_SALESFORCE:
        return apply_to_salesforce(ctx, source_key, object_name, changes, reassert=received_again)
    return apply_to_billing(ctx, source_key, object_name, changes)


def _settle(
    ctx: SyncContext,
    sink: OutcomeSink,
    object_name: str,
    message: QueuedChange,
    result: RecordResult,
    max_receive_count: int,
    report: BatchReport,
    rng: random.Random | None,
) -> None:
    change = message.change
    now = ctx.clock()
    report.results.append(result)
    attempts = message.receive_count
    if result.retry and attempts < max_receive_count:
        settings = ctx.config.sync
        # A parent usually arrives with the next pull of its own object: wait longer than for a glitch.
        factor = PARENT_WAIT_FACTOR if result.outcome is Outcome.WAITING_FOR_PARENT else 1
        base = settings.retry_base_seconds * factor
        delay = backoff_seconds(attempts, base=base, cap=settings.retry_cap_seconds, rng=rng)
        sink.delay(object_name, message.receipt_handle, delay)
        report.failed_message_ids.append(message.message_id)
        report.delayed += 1
    elif result.outcome in {Outcome.FAILED, Outcome.WAITING_FOR_PARENT}:
        assert result.error is not None
        sink.dead_letter(
            object_name,
            DeadLetter(
                change=change,
                error=result.error,
                attempts=attempts,
                first_seen_at=message.first_received_at,
                failed_at=now,
                message_id=message.message_id or None,
            ),
        )
        report.dead_lettered += 1
    if result.logged:
        sink.log(entry_for(change, result, now, attempts))


def entry_for(change: Change, result: RecordResult, at: datetime, attempts: int) -> SyncLogEntry:
    return SyncLogEntry(
        at=at,
        source=change.source,
        object=change.object,
        direction=change.direction,
        record_id=change.id,
        outcome=result.outcome,
        salesforce_id=result.salesforce_id,
        billing_id=result.billing_id,
        code=result.error.code if result.error else None,
        message=(result.error.message if result.error else result.detail),
        attempts=attempts,
        cause=change.cause,
    )
