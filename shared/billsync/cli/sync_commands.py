"""`billsync sync now`, `billsync backfill`, `billsync status` and `billsync log`."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from billsync.cli.target import Target, ago, parse_when, target_command
from billsync.domain.models import Direction, Outcome, SyncLogEntry
from billsync.domain.redaction import redact, redact_text
from billsync.usecases.backfill import BACKFILL_STREAM, BackfillProgress, run_backfill
from billsync.usecases.pull import stream_object
from billsync.usecases.sync_now import SyncNowRequest, run_pulls_now, sync_now

_DIRECTIONS = click.Choice([d.value for d in Direction])
_SKIPPED = (
    Outcome.SKIPPED_STALE,
    Outcome.SKIPPED_UNCHANGED,
    Outcome.SKIPPED_NOT_OWNED,
    Outcome.SKIPPED_DISABLED,
)


# ------------------------------------------------------------------------------------ sync now


@click.group("sync")
def sync_group() -> None:
    """Sync records or objects now, outside their schedule."""


@sync_group.command("now")
@click.argument("object_name", metavar="OBJECT")
@click.option("--id", "ids", multiple=True, help="A record to sync now (repeatable): its id on its side.")
@click.option("--all", "everything", is_flag=True, help="Run the object's pull now, from its checkpoint.")
@click.option("--since", help="Read the object's changes again since this time (2024-05-01, 2h).")
@click.option("--direction", type=_DIRECTIONS, help="Only this direction (default: every one it syncs).")
@click.option("--source", help="The billing source of the ids (default: the default source).")
@click.option(
    "--wait/--no-wait", default=True, help="Wait for the pulls to finish (default) or only start them."
)
@target_command
def sync_now_command(
    target: Target,
    object_name: str,
    ids: tuple[str, ...],
    everything: bool,
    since: str | None,
    direction: str | None,
    source: str | None,
    wait: bool,
) -> None:
    """Queue records (--id) for their worker, or run the object's pull now (--all, --since)."""
    target.info(object_name)
    request = SyncNowRequest(
        object=object_name,
        ids=ids,
        direction=Direction(direction) if direction else None,
        all=everything,
        since=parse_when(since, "--since") if since else None,
        source=source,
    )
    names = list(target.catalog)
    functions = target.stack.functions(names)
    if ids or not wait:
        result = sync_now(request, target.catalog, queues=target.stack.queues(names), functions=functions)
    else:
        with Console(stderr=True).status(f"pulling {object_name}"):
            result = run_pulls_now(request, target.catalog, functions)
    if target.as_json:
        target.emit(result.to_json())
        return
    console = Console()
    for note in result.notes:
        console.print(f"note: {note}")
    if result.queued:
        click.echo(
            f"Queued {len(result.queued)} {object_name} record(s): "
            + ", ".join(q["id"] for q in result.queued)
        )
    if result.pulls:
        table = Table("Direction", "Since", "Status", "Outcomes", "Detail")
        for pull in result.pulls:
            outcomes = ", ".join(f"{k} {v}" for k, v in (pull.get("outcomes") or {}).items())
            table.add_row(
                pull["direction"],
                pull["since"] or "checkpoint",
                pull["status"],
                outcomes,
                pull.get("detail") or "",
            )
        console.print(table)
    if any(p["status"] in ("budget", "busy") for p in result.pulls):
        raise click.ClickException("a pull did not finish: see its status; run the same command again later")


# ------------------------------------------------------------------------------------ backfill


@click.command("backfill")
@click.argument("object_name", metavar="OBJECT")
@click.option("--since", help="Load history changed since this date or time (2023-01-01).")
@click.option("--direction", type=_DIRECTIONS, help="Default: to_salesforce when the object syncs that way.")
@click.option(
    "--resume", is_flag=True, help="Continue the unfinished backfill (the default when one exists)."
)
@click.option("--restart", is_flag=True, help="Start over from --since, dropping the unfinished backfill.")
@click.option(
    "--batch-size", type=click.IntRange(1, 10_000), help="Records per batch (default: sync.page_size)."
)
@target_command
def backfill_command(
    target: Target,
    object_name: str,
    since: str | None,
    direction: str | None,
    resume: bool,
    restart: bool,
    batch_size: int | None,
) -> None:
    """Load an object's history, resumably, with its progress: records, rate and time left."""
    info = target.info(object_name)
    chosen = (
        Direction(direction)
        if direction
        else Direction.TO_SALESFORCE
        if Direction.TO_SALESFORCE in info.directions
        else info.directions[0]
    )
    start = parse_when(since, "--since") if since else None
    state = target.stack.state()
    functions = target.stack.functions(target.catalog)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} records/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    begun = datetime.now(UTC)
    with Progress(*columns, console=Console(stderr=True), disable=target.as_json) as bar:
        task = bar.add_task(f"{object_name} {chosen.value}", total=None, rate=0.0)
        first: list[int] = []

        def show(progress: BackfillProgress) -> None:
            first.append(progress.records_done) if not first else None
            seconds = max((datetime.now(UTC) - begun).total_seconds(), 0.001)
            rate = (progress.records_done - first[0]) / seconds
            bar.update(task, completed=progress.records_done, total=progress.total, rate=rate)

        progress = run_backfill(
            functions,
            state,
            info,
            chosen,
            since=start,
            resume=resume,
            restart=restart,
            batch_size=batch_size,
            on_progress=show,
        )
    if target.as_json:
        target.emit(progress.to_json())
    else:
        outcomes = ", ".join(f"{k} {v}" for k, v in progress.outcomes.items()) or "none"
        click.echo(
            f"{object_name} backfill {progress.status}: {progress.records_done} records in {progress.runs} run(s)"
            f"{' (resumed)' if progress.resumed else ''}; outcomes: {outcomes}"
            + (f"; {progress.detail}" if progress.detail else "")
        )
    if progress.status == "budget":
        raise click.ClickException(
            "stopped at the Salesforce API budget reserve; its position is saved: run the same command later"
        )


# ------------------------------------------------------------------------------------ status


@click.command("status")
@click.option("--object", "objects", multiple=True, help="Only this object (repeatable).")
@target_command
def status_command(target: Target, objects: tuple[str, ...]) -> None:
    """Per object and direction: mode, last synced, lag, checkpoint, the last 24 hours, DLQ depth."""
    names = target.objects(objects)
    now = datetime.now(UTC)
    state = target.stack.state()
    dlq = target.stack.dead_letters(names)
    rows: list[dict[str, Any]] = []
    for name in names:
        info = target.catalog[name]
        depth = dlq.depth(name).total
        for direction in info.directions:
            streams = [state.stream_state(source, name, direction) for source in info.sources]
            cursors = [s.cursor for s in streams if s is not None and s.cursor is not None]
            synced = [s.last_synced_at for s in streams if s is not None and s.last_synced_at is not None]
            checkpoint = min(cursors) if cursors else None
            counts = state.outcome_counts(name, direction, now - timedelta(hours=24))
            backfills = [
                state.stream_state(source, stream_object(name, BACKFILL_STREAM), direction)
                for source in info.sources
            ]
            unfinished = [b for b in backfills if b is not None and b.unfinished]
            rows.append(
                {
                    "object": name,
                    "direction": direction.value,
                    "enabled": info.enabled,
                    "mode": info.mode,
                    "last_synced_at": max(synced) if synced else None,
                    "checkpoint": checkpoint,
                    "lag_seconds": int((now - checkpoint).total_seconds()) if checkpoint else None,
                    "applied_24h": counts.get(Outcome.APPLIED, 0),
                    "skipped_24h": {o.value: counts[o] for o in _SKIPPED if counts.get(o)},
                    "waiting_24h": counts.get(Outcome.WAITING_FOR_PARENT, 0),
                    "failed_24h": counts.get(Outcome.FAILED, 0),
                    "dlq_depth": depth,
                    "backfill": (
                        {
                            "records_done": sum(b.records_done for b in unfinished),
                            "since": unfinished[0].since,
                        }
                        if unfinished
                        else None
                    ),
                }
            )
    usage = state.api_usage()
    budget = (
        {
            "used": usage.used,
            "limit": usage.limit,
            "left": usage.left,
            "left_percent": round(usage.left_percent, 1),
            "seen_at": usage.at,
        }
        if usage
        else None
    )
    if target.as_json:
        target.emit({"objects": rows, "salesforce_api": budget})
        return
    table = Table(
        "Object",
        "Direction",
        "Mode",
        "Last synced",
        "Lag",
        "Applied 24h",
        "Skipped 24h (why)",
        "Failed 24h",
        "DLQ",
    )
    for row in rows:
        skipped = row["skipped_24h"]
        why = ", ".join(f"{k.removeprefix('skipped_').replace('_', ' ')} {v}" for k, v in skipped.items())
        table.add_row(
            row["object"],
            row["direction"],
            row["mode"] + (" (backfilling)" if row["backfill"] else ""),
            ago(row["last_synced_at"], now),
            _lag(row["lag_seconds"]),
            str(row["applied_24h"]),
            f"{sum(skipped.values())}" + (f" ({why})" if why else ""),
            str(row["failed_24h"]),
            str(row["dlq_depth"]),
        )
    console = Console()
    console.print(table)
    if budget:
        console.print(
            f"Salesforce API: {budget['used']:,} of {budget['limit']:,} used today, {budget['left']:,} left "
            f"({budget['left_percent']}%), seen {ago(usage.at if usage else None, now)}"
        )
    else:
        console.print("Salesforce API: no usage seen yet")


def _lag(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# ------------------------------------------------------------------------------------ sync log


@click.command("log")
@click.option("--object", "objects", multiple=True, help="Only this object (repeatable).")
@click.option("--record", help="One record's history (needs --object): its billing or Salesforce id.")
@click.option("--source", help="The record's billing source (default: the default source).")
@click.option("--since", default="24h", show_default=True, help="From this time (2024-05-01, 2h ago as 2h).")
@click.option("--until", "until", help="Up to this time (default: now).")
@click.option("--outcome", "outcomes", multiple=True, type=click.Choice([o.value for o in Outcome]))
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@target_command
def log_command(
    target: Target,
    objects: tuple[str, ...],
    record: str | None,
    source: str | None,
    since: str,
    until: str | None,
    outcomes: tuple[str, ...],
    limit: int,
) -> None:
    """The sync log: every record's outcome, newest first."""
    now = datetime.now(UTC)
    start = parse_when(since, "--since", now=now)
    end = parse_when(until, "--until", now=now) if until else now + timedelta(seconds=1)
    if end <= start:
        raise click.BadParameter("--until must be after --since", param_hint="--until")
    names = target.objects(objects)
    state = target.stack.state()
    entries: list[SyncLogEntry] = []
    if record is not None:
        if len(objects) != 1:
            raise click.UsageError("--record needs the record's object: --object NAME")
        info = target.info(objects[0])
        key = source or target.config.default_source.key
        if key not in info.sources:
            raise click.UsageError(
                f"unknown source {key!r} for {info.name}; known: {', '.join(info.sources)}"
            )
        entries = [e for e in state.record_log(key, info.name, record, limit=limit) if start <= e.at < end]
    else:
        for name in names:
            entries.extend(state.query_log(name, start=start, end=end, limit=limit))
    wanted = set(outcomes)
    entries = [e for e in entries if not wanted or e.outcome.value in wanted]
    entries.sort(key=lambda e: e.at, reverse=True)
    entries = entries[:limit]
    if target.as_json:
        target.emit([redact(e.model_dump(mode="json", exclude_none=True)) for e in entries])
        return
    if not entries:
        click.echo("No sync-log entries match.")
        return
    table = Table("When", "Object", "Direction", "Record", "Outcome", "Code", "Message")
    for entry in entries:
        table.add_row(
            entry.at.isoformat(timespec="seconds"),
            entry.object,
            entry.direction.value,
            f"{entry.source}:{entry.record_id}",
            entry.outcome.value,
            entry.code or "",
            redact_text(entry.message or ""),
        )
    Console().print(table)
    summary = Counter(e.outcome.value for e in entries)
    click.echo(", ".join(f"{k} {v}" for k, v in summary.most_common()))
