"""Scheduled pulls: read the changes of one object since its checkpoint and apply them.

For each source and direction a pull:
* takes the stream's lease, so two runs of one stream never overlap;
* reads the half-open window [cursor - lookback, now - safety lag), page by page, never the whole;
* applies each page at once (sObject Collections for Salesforce), sends transient failures back to the
  object's queue for retry and permanent ones to its dead-letter queue;
* saves its position after every page with a conditional write, so an interrupted pull resumes where
  it stopped, and moves the cursor to the window's end only when the whole window is done;
* stops cleanly — checkpointed, nothing half-written — when Salesforce's API budget reaches the
  configured reserve or the function is about to time out, and carries on at the next run;
* pauses, checkpointed, when the billing system keeps answering 429 or 5xx after the client's retries;
* stops before it writes anything when the Salesforce credentials log in to another org than the
  pinned one (status `org_mismatch`): the checkpoint stays where it was.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from billsync.connectors.base import BillingApiError, ObjectSupport
from billsync.domain.models import Change, DeadLetter, Direction, Outcome, RecordResult
from billsync.domain.rules import Window, pull_window
from billsync.ports import BudgetReserveReached, OrgMismatch
from billsync.usecases.context import SyncContext
from billsync.usecases.outcomes import OutcomeSink, envelope
from billsync.usecases.process import entry_for
from billsync.usecases.salesforce_reads import SalesforceReads, position_of
from billsync.usecases.to_billing import apply_to_billing
from billsync.usecases.to_salesforce import apply_to_salesforce

SECONDS_KEPT_FOR_CHECKPOINT = 10.0
LEASE_MARGIN_SECONDS = 10


@dataclass
class StreamReport:
    source: str
    object: str
    direction: Direction
    status: str = "done"  # done | paused | busy | skipped | budget | org_mismatch
    window_start: datetime | None = None
    window_end: datetime | None = None
    records: int = 0
    pages: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    detail: str | None = None


@dataclass
class PullOptions:
    since: datetime | None = None  # read from here instead of the checkpoint (sync now --since)
    advance_checkpoint: bool = True


def pull(
    ctx: SyncContext,
    sink: OutcomeSink,
    object_name: str,
    direction: Direction,
    *,
    seconds_left: Callable[[], float],
    options: PullOptions | None = None,
) -> list[StreamReport]:
    options = options or PullOptions()
    reports = []
    for source in ctx.config.sources:
        support = ctx.support(source.key, object_name)
        if support is None or not support.syncs(direction):
            continue
        report = StreamReport(source.key, object_name, direction)
        reports.append(report)
        if not ctx.config.object_enabled(object_name):
            report.status, report.detail = "skipped", f"{object_name} sync is switched off"
            continue
        lease = f"{source.key}#{object_name}#{direction.value}"
        owner = uuid.uuid4().hex
        # A run cannot outlive its function's timeout: the lease covers the time left and a margin,
        # so a crashed run blocks the stream only briefly.
        if not ctx.state.acquire_lease(lease, owner, seconds=int(seconds_left()) + LEASE_MARGIN_SECONDS):
            report.status, report.detail = "busy", "another run of this stream holds its lease"
            continue
        try:
            _pull_stream(ctx, sink, support, source.key, report, seconds_left, options)
        except BudgetReserveReached as exc:
            report.status, report.detail = "budget", str(exc)
        except OrgMismatch as exc:
            report.status, report.detail = "org_mismatch", str(exc)
        except BillingApiError as exc:
            if not exc.retryable:
                raise
            # Rate-limited or unavailable after the client's own retries: resume from here next run.
            report.status = "paused"
            report.detail = (
                f"the billing system did not answer ({exc.code}: {exc}); the next run resumes here"
            )
        finally:
            try:
                sink.flush()
            finally:
                ctx.state.release_lease(lease, owner)
    return reports


def _pull_stream(
    ctx: SyncContext,
    sink: OutcomeSink,
    support: ObjectSupport,
    source_key: str,
    report: StreamReport,
    seconds_left: Callable[[], float],
    options: PullOptions,
) -> None:
    direction = report.direction
    settings = ctx.config.sync
    checkpoint = ctx.state.get_checkpoint(source_key, support.name, direction)
    rev = checkpoint.rev if checkpoint else 0
    cursor = checkpoint.cursor if checkpoint else None
    resume_end, position = ctx.state.resume_point(source_key, support.name, direction)
    lookback = timedelta(seconds=settings.lookback_seconds)
    if options.since is not None:
        window: Window | None = Window(
            start=options.since, end=ctx.clock() - timedelta(seconds=settings.safety_lag_seconds)
        )
        position = None
    elif resume_end is not None:
        window = Window(start=cursor - lookback if cursor else settings.initial_since, end=resume_end)
    else:
        window = pull_window(
            cursor,
            ctx.clock(),
            lookback=lookback,
            safety_lag=timedelta(seconds=settings.safety_lag_seconds),
            initial_since=settings.initial_since,
        )
    if window is None:
        report.detail = "nothing to read yet"
        return
    report.window_start, report.window_end = window.start, window.end
    saving = options.advance_checkpoint and options.since is None
    pages = _pages(ctx, support, source_key, direction, window, position)
    for changes, page_position in pages:
        results = _apply(ctx, source_key, support.name, direction, changes)
        _settle(ctx, sink, support, changes, results, report)
        sink.flush()
        report.pages += 1
        if saving:
            rev = ctx.state.save_checkpoint(
                source_key,
                support.name,
                direction,
                cursor=cursor,
                expected_rev=rev,
                window_end=window.end,
                position=page_position,
            )
        if seconds_left() < SECONDS_KEPT_FOR_CHECKPOINT:
            report.status, report.detail = "paused", "the run's time is up; the next run resumes here"
            return
    if saving:
        ctx.state.save_checkpoint(source_key, support.name, direction, cursor=window.end, expected_rev=rev)
    ctx.state.mark_synced(source_key, support.name, direction, ctx.clock())


def _pages(
    ctx: SyncContext,
    support: ObjectSupport,
    source_key: str,
    direction: Direction,
    window: Window,
    position: str | None,
) -> Iterator[tuple[list[Change], str]]:
    """The window's changes as batches of `Change`, each with the position to resume after it."""
    if direction is Direction.TO_SALESFORCE:
        return _billing_pages(ctx, support, source_key, window, position)
    return _salesforce_pages(ctx, support, source_key, window, position)


def _billing_pages(
    ctx: SyncContext, support: ObjectSupport, source_key: str, window: Window, position: str | None
) -> Iterator[tuple[list[Change], str]]:
    # Billing APIs page smaller than a Salesforce collection (Invoiced: 100): gather pages up to a full
    # batch, so that each Salesforce request carries as many records as it can.
    size = ctx.config.sync.page_size
    batch: list[Change] = []
    for page in ctx.connector(source_key).changes(support.name, window, page_size=size, position=position):
        batch.extend(
            Change(
                source=source_key,
                object=support.name,
                direction=Direction.TO_SALESFORCE,
                id=r.id,
                parent=r.parents.get(support.parent) if support.parent else None,
                version=r.version,
                deleted=r.state.value == "deleted",
                record=None if support.sensitive else r.data,
                cause="pull",
            )
            for r in page.records
        )
        position = page.position
        if len(batch) >= size:
            yield batch, position
            batch = []
    if batch:
        yield batch, position or ""


def _salesforce_pages(
    ctx: SyncContext, support: ObjectSupport, source_key: str, window: Window, position: str | None
) -> Iterator[tuple[list[Change], str]]:
    size = ctx.config.sync.page_size
    connector = ctx.connector(source_key)
    reads = SalesforceReads(
        ctx.mappings.require(connector.name, support.name, Direction.TO_BILLING),
        ctx.mappings.get(connector.name, support.name, Direction.TO_SALESFORCE),
    )
    default = ctx.config.default_source.key == source_key
    soql = reads.pull_query(window, source_key=source_key, default_source=default, after=position)
    batch: list[Change] = []
    last = position or ""
    for record in ctx.salesforce.query(soql, include_deleted=True):
        batch.append(
            Change(
                source=source_key,
                object=support.name,
                direction=Direction.TO_BILLING,
                id=record["Id"],
                record=None if support.sensitive else record,
                cause="pull",
            )
        )
        last = position_of(record)
        if len(batch) >= size:
            yield batch, last
            batch = []
    if batch:
        yield batch, last


def _apply(
    ctx: SyncContext, source_key: str, object_name: str, direction: Direction, changes: list[Change]
) -> list[RecordResult]:
    if not changes:
        return []
    if direction is Direction.TO_SALESFORCE:
        return apply_to_salesforce(ctx, source_key, object_name, changes)
    return apply_to_billing(ctx, source_key, object_name, changes)


def _settle(
    ctx: SyncContext,
    sink: OutcomeSink,
    support: ObjectSupport,
    changes: list[Change],
    results: list[RecordResult],
    report: StreamReport,
) -> None:
    now = ctx.clock()
    for change, result in zip(changes, results, strict=True):
        report.records += 1
        report.outcomes[result.outcome.value] = report.outcomes.get(result.outcome.value, 0) + 1
        if result.retry:
            # Durable before the checkpoint moves: the object's queue retries it with backoff.
            retry = change.model_copy(
                update={"cause": "retry", "record": None if support.sensitive else change.record}
            )
            sink.requeue(support.name, envelope(retry, support))
        elif result.outcome is Outcome.FAILED:
            assert result.error is not None
            sink.dead_letter(
                support.name,
                DeadLetter(change=change, error=result.error, attempts=1, first_seen_at=now, failed_at=now),
            )
        if result.logged:
            sink.log(entry_for(change, result, now, 1))
