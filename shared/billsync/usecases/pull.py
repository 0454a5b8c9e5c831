"""Scheduled pulls: read the changes of one object since its checkpoint and apply them.

For each source and direction a pull:
* takes the stream's lease, so two runs of one stream never overlap; a run that takes over the lease
  of a run that died writes its first page even where the cross-references say Salesforce holds it
  (the dead run may have written an older state over a newer one after its last checkpoint);
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
from billsync.ports import BudgetReserveReached, OrgMismatch, SalesforceCallError
from billsync.usecases.context import SyncContext
from billsync.usecases.ops_ports import CountsChanges, StreamProgressPort, StreamState
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
    status: str = "done"  # done | paused | busy | skipped | budget | waiting | org_mismatch
    window_start: datetime | None = None
    window_end: datetime | None = None
    records: int = 0
    pages: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    detail: str | None = None


@dataclass
class PullOptions:
    # Read from here instead of the checkpoint (sync now --since); where an operator stream restarts.
    since: datetime | None = None
    advance_checkpoint: bool = True
    # An operator stream (`backfill`): its own checkpoint and lease, so it never disturbs the scheduled
    # pulls. It resumes where it stopped unless told to restart.
    stream: str | None = None
    restart: bool = False  # an operator stream starts over from `since` (None: from the beginning)
    # Records per batch instead of `sync.page_size`; batches above `salesforce.bulk_threshold` are
    # written to Salesforce through Bulk API 2.0.
    batch_size: int | None = None
    # Where an operator stream records what it was asked for and how far it got (`billsync backfill`),
    # and the id of the request that started it over.
    progress: StreamProgressPort | None = None
    run_id: str | None = None
    # Read billing history by listing the records and keeping those changed since the stream's `since`,
    # instead of through the billing system's change feed, which does not reach back through history
    # (Invoiced keeps events for a limited time; imported records have none). For backfills.
    list_history: bool = False


def stream_object(object_name: str, stream: str | None) -> str:
    """The name an object's stream is kept under: the object's own for the scheduled pulls."""
    return object_name if stream is None else f"{object_name}@{stream}"


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
        lease = f"{source.key}#{stream_object(object_name, options.stream)}#{direction.value}"
        owner = uuid.uuid4().hex
        # A run cannot outlive its function's timeout: the lease covers the time left and a margin,
        # so a crashed run blocks the stream only briefly.
        grant = ctx.state.acquire_lease(lease, owner, seconds=int(seconds_left()) + LEASE_MARGIN_SECONDS)
        if grant is None:
            report.status, report.detail = "busy", "another run of this stream holds its lease"
            continue
        try:
            _pull_stream(ctx, sink, support, source.key, report, seconds_left, options, grant.after_crash)
        except BudgetReserveReached as exc:
            report.status, report.detail = "budget", str(exc)
        except OrgMismatch as exc:
            report.status, report.detail = "org_mismatch", str(exc)
        except SalesforceCallError as exc:
            if not exc.error.retryable:
                raise
            report.status = "paused"
            report.detail = f"Salesforce did not answer ({exc}); the next run resumes here"
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
    after_crash: bool,
) -> None:
    direction = report.direction
    settings = ctx.config.sync
    name = stream_object(support.name, options.stream)
    checkpoint = ctx.state.get_checkpoint(source_key, name, direction)
    rev = checkpoint.rev if checkpoint else 0
    cursor = checkpoint.cursor if checkpoint else None
    resume_end, position = ctx.state.resume_point(source_key, name, direction)
    lookback = timedelta(seconds=settings.lookback_seconds)
    listing = options.list_history and options.stream is not None and direction is Direction.TO_SALESFORCE
    started = None if options.restart else _stream_started(options, source_key, name, direction)
    changed_since = options.since if options.restart else started.since if started else None
    if options.stream is not None and options.restart:
        # An operator stream starting over: its cursor becomes `since` (none for a listing, which reads
        # everything and keeps what changed since then), its resume point is dropped.
        cursor, resume_end, position = None if listing else options.since, None, None
        rev = ctx.state.save_checkpoint(source_key, name, direction, cursor=cursor, expected_rev=rev)
        if options.progress is not None:
            total = _estimate_total(ctx, support, source_key, direction, options.since)
            options.progress.start_stream(
                source_key,
                name,
                direction,
                since=options.since,
                total=total,
                at=ctx.clock(),
                run_id=options.run_id,
                batch_size=options.batch_size,
            )
    # The scheduled pulls start at `sync.initial_since`; an operator stream where it was told to.
    initial_since = settings.initial_since if options.stream is None else None
    window: Window | None
    if options.since is not None and options.stream is None:
        window = Window(start=options.since, end=ctx.clock() - timedelta(seconds=settings.safety_lag_seconds))
        position = None
    elif resume_end is not None:
        window = Window(start=cursor - lookback if cursor else initial_since, end=resume_end)
    else:
        window = pull_window(
            cursor,
            ctx.clock(),
            lookback=lookback,
            safety_lag=timedelta(seconds=settings.safety_lag_seconds),
            initial_since=initial_since,
        )
    if window is None:
        report.detail = "nothing to read yet"
        return
    scheduled_first_read = (
        cursor is None
        and options.since is None
        and options.stream is None
        and direction is Direction.TO_SALESFORCE
    )
    unread = _unread_first(ctx, support, source_key) if scheduled_first_read else []
    if unread:
        report.status = "waiting"
        report.detail = f"its first read starts after the first read of {', '.join(unread)}"
        return
    report.window_start, report.window_end = window.start, window.end
    saving = options.advance_checkpoint and (options.since is None or options.stream is not None)
    # A listing's position counts pages: a resumed stream reads pages of the size it started with.
    size = (started.batch_size if started else None) or options.batch_size or settings.page_size
    if listing:
        window = Window(start=None, end=window.end)
    pages = _pages(
        ctx, support, source_key, direction, window, position, size, changed_since if listing else None
    )
    for changes, page_position in pages:
        # The page the dead run was applying when it died, where it wrote without checkpointing.
        reassert = {c.key for c in changes} if after_crash and report.pages == 0 else set()
        results = _apply(ctx, source_key, support.name, direction, changes, reassert)
        _settle(ctx, sink, support, changes, results, report)
        sink.flush()
        report.pages += 1
        if saving:
            rev = ctx.state.save_checkpoint(
                source_key,
                name,
                direction,
                cursor=cursor,
                expected_rev=rev,
                window_end=window.end,
                position=page_position,
            )
        if options.progress is not None:
            options.progress.add_stream_progress(source_key, name, direction, len(changes))
        if seconds_left() < SECONDS_KEPT_FOR_CHECKPOINT:
            report.status, report.detail = "paused", "the run's time is up; the next run resumes here"
            return
    if saving:
        ctx.state.save_checkpoint(source_key, name, direction, cursor=window.end, expected_rev=rev)
    if options.progress is not None:
        options.progress.finish_stream(source_key, name, direction, ctx.clock())
    ctx.state.mark_synced(source_key, support.name, direction, ctx.clock())


def _unread_first(ctx: SyncContext, support: ObjectSupport, source_key: str) -> list[str]:
    """The objects this one's first read from billing waits for whose first read is not done yet."""
    direction = Direction.TO_SALESFORCE
    waiting = []
    for name in support.first_read_after:
        other = ctx.support(source_key, name)
        if other is None or not other.syncs(direction) or not ctx.config.object_enabled(name):
            continue
        checkpoint = ctx.state.get_checkpoint(source_key, name, direction)
        if checkpoint is None or checkpoint.cursor is None:
            waiting.append(name)
    return waiting


def _stream_started(
    options: PullOptions, source_key: str, name: str, direction: Direction
) -> StreamState | None:
    """What an operator stream was started with (`since`, batch size), kept with its progress."""
    if options.stream is None or options.progress is None:
        return None
    return options.progress.stream_state(source_key, name, direction)


def _estimate_total(
    ctx: SyncContext, support: ObjectSupport, source_key: str, direction: Direction, since: datetime | None
) -> int | None:
    """How many records a stream from `since` will read, when the source can say so cheaply."""
    if direction is not Direction.TO_SALESFORCE:
        return None
    connector = ctx.connector(source_key)
    if not isinstance(connector, CountsChanges):
        return None
    end = ctx.clock() - timedelta(seconds=ctx.config.sync.safety_lag_seconds)
    return connector.count_changes(support.name, Window(start=since, end=end))


def _pages(
    ctx: SyncContext,
    support: ObjectSupport,
    source_key: str,
    direction: Direction,
    window: Window,
    position: str | None,
    size: int,
    changed_since: datetime | None = None,
) -> Iterator[tuple[list[Change], str]]:
    """The window's changes as batches of `Change`, each with the position to resume after it."""
    if direction is Direction.TO_SALESFORCE:
        return _billing_pages(ctx, support, source_key, window, position, size, changed_since)
    return _salesforce_pages(ctx, support, source_key, window, position, size)


def _billing_pages(
    ctx: SyncContext,
    support: ObjectSupport,
    source_key: str,
    window: Window,
    position: str | None,
    size: int,
    changed_since: datetime | None = None,
) -> Iterator[tuple[list[Change], str]]:
    # Billing APIs page smaller than a Salesforce collection (Invoiced: 100): gather pages up to a full
    # batch, so that each Salesforce request carries as many records as it can.
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
            if changed_since is None or r.version >= changed_since
        )
        position = page.position
        if len(batch) >= size:
            yield batch, position
            batch = []
    if batch:
        yield batch, position or ""


def _salesforce_pages(
    ctx: SyncContext,
    support: ObjectSupport,
    source_key: str,
    window: Window,
    position: str | None,
    size: int,
) -> Iterator[tuple[list[Change], str]]:
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
    ctx: SyncContext,
    source_key: str,
    object_name: str,
    direction: Direction,
    changes: list[Change],
    reassert: set[str],
) -> list[RecordResult]:
    if not changes:
        return []
    if direction is Direction.TO_SALESFORCE:
        return apply_to_salesforce(ctx, source_key, object_name, changes, reassert=reassert)
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
            # A Salesforce row is re-read when retried: what it waits for (its parent's billing id)
            # arrives on the row itself or on its parent, never in the snapshot taken now.
            keep = change.direction is Direction.TO_SALESFORCE and not support.sensitive
            retry = change.model_copy(update={"cause": "retry", "record": change.record if keep else None})
            sink.requeue(support.name, envelope(retry, support))
        elif result.outcome is Outcome.FAILED:
            assert result.error is not None
            sink.dead_letter(
                support.name,
                DeadLetter(change=change, error=result.error, attempts=1, first_seen_at=now, failed_at=now),
            )
        if result.logged:
            sink.log(entry_for(change, result, now, 1))
