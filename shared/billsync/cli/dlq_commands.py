"""`billsync dlq list|show|redrive|purge`: read and empty the objects' dead-letter queues."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from billsync.cli.target import Target, ago, parse_duration, target_command
from billsync.usecases.dlq import (
    LetterFilter,
    RedriveReport,
    find_letter,
    list_failed_runs,
    list_letters,
    purge,
    redrive,
)

MOVE_TASK_POLL_SECONDS = 2.0
_FINISHED_TASKS = {"COMPLETED", "CANCELLED", "FAILED"}


@click.group("dlq")
def dlq_group() -> None:
    """Read, redrive and purge the objects' dead-letter queues."""


def _filter_options(command: Any) -> Any:
    for option in reversed(
        [
            click.option("--object", "objects", multiple=True, help="Only this object (repeatable)."),
            click.option("--id", "ids", multiple=True, help="Only this DLQ message (repeatable)."),
            click.option("--record", "records", multiple=True, help="Only this record id (repeatable)."),
            click.option("--code", "codes", multiple=True, help="Only this error code (repeatable)."),
            click.option("--source", "sources", multiple=True, help="Only this billing source."),
            click.option("--older-than", help="Only letters that failed longer ago than this (2h, 3d)."),
            click.option("--newer-than", help="Only letters that failed more recently than this (30m)."),
        ]
    ):
        command = option(command)
    return command


def _letter_filter(
    ids: Sequence[str],
    records: Sequence[str],
    codes: Sequence[str],
    sources: Sequence[str],
    older_than: str | None,
    newer_than: str | None,
) -> LetterFilter:
    return LetterFilter(
        ids=frozenset(ids),
        records=frozenset(records),
        codes=frozenset(codes),
        sources=frozenset(sources),
        older_than=parse_duration(older_than, "--older-than") if older_than else None,
        newer_than=parse_duration(newer_than, "--newer-than") if newer_than else None,
    )


@dlq_group.command("list")
@_filter_options
@click.option("--limit", type=click.IntRange(min=1), help="At most this many letters per object.")
@click.option("--failed-runs", is_flag=True, help="List the failed scheduled and asynchronous runs instead.")
@target_command
def list_command(
    target: Target,
    objects: tuple[str, ...],
    limit: int | None,
    failed_runs: bool,
    **filters: Any,
) -> None:
    """Every letter waiting in the DLQs: when, which record, the error code and message, attempts."""
    names = target.objects(objects)
    select = _letter_filter(**filters)
    dlq = target.stack.dead_letters(names)
    if failed_runs:
        runs = [run.to_json() for run in list_failed_runs(dlq, limit=limit)]
        if target.as_json:
            target.emit(runs)
            return
        table = Table("When", "Function", "Error", "Attempts", "Event", title="Failed runs")
        for run in runs:
            table.add_row(
                run["at"], run["function"], run["error"], str(run["attempts"] or ""), str(run["event"])
            )
        Console().print(table if runs else "No failed runs.")
        return
    now = datetime.now(UTC)
    letters = [
        letter for name in names for letter in list_letters(dlq, name, now=now, select=select, limit=limit)
    ]
    if target.as_json:
        target.emit([letter.summary() for letter in letters])
        return
    if not letters:
        Console().print("No dead letters" + (" match." if not select.empty else "."))
        return
    table = Table("Object", "Id", "Failed", "Record", "Code", "Message", "Attempts")
    for letter in letters:
        summary = letter.summary()
        table.add_row(
            letter.object,
            letter.id,
            ago(letter.failed_at, now),
            f"{summary['source'] or ''}:{summary['record_id'] or '?'} ({summary['direction'] or '?'})",
            letter.error.code,
            _shorten(
                summary["message"] + (f" [{', '.join(letter.error.fields)}]" if letter.error.fields else "")
            ),
            str(letter.attempts or ""),
        )
    Console().print(table)
    click.echo(f"{len(letters)} dead letter(s). Details: billsync dlq show ID")


@dlq_group.command("show")
@click.argument("letter_id")
@click.option("--object", "objects", multiple=True, help="Look only in this object's DLQ.")
@target_command
def show_command(target: Target, letter_id: str, objects: tuple[str, ...]) -> None:
    """One letter, whole, with secrets and payment data masked."""
    names = target.objects(objects)
    letter = find_letter(target.stack.dead_letters(names), names, letter_id, now=datetime.now(UTC))
    if letter is None:
        raise click.ClickException(f"no dead letter {letter_id!r} in the DLQ of {', '.join(names)}")
    if target.as_json:
        target.emit(letter.detail())
    else:
        Console().print_json(data=letter.detail(), default=str)


@dlq_group.command("redrive")
@_filter_options
@click.option(
    "--reread",
    is_flag=True,
    help="Send references only: each record is read again from its source before it is applied.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Redrive at most this many letters per object.")
@click.option(
    "--move-task/--no-move-task",
    default=None,
    help="Use SQS's message move task (default: on AWS when a whole DLQ is redriven as it is).",
)
@target_command
def redrive_command(
    target: Target,
    objects: tuple[str, ...],
    reread: bool,
    limit: int | None,
    move_task: bool | None,
    **filters: Any,
) -> None:
    """Send letters back to their object's queue; each leaves the DLQ once it is back in its queue.

    A record that syncs leaves for good; one that fails again comes back with its new reason.
    Interrupted, it is run again: no letter is lost or sent twice.
    """
    names = target.objects(objects)
    select = _letter_filter(**filters)
    dlq = target.stack.dead_letters(names)
    whole = select.empty and not reread and limit is None
    if move_task and not whole:
        raise click.UsageError("a move task redrives whole DLQs as they are: drop the filters and --reread")
    use_task = whole and (move_task if move_task is not None else not target.stack.local)
    results: list[dict[str, Any]] = []
    console = Console(stderr=True)
    for name in names:
        if dlq.depth(name).total == 0:
            results.append({"object": name, "redriven": 0, "method": "none"})
            continue
        if use_task:
            task = _redrive_with_move_task(dlq, name, console, quiet=target.as_json)
            if task is not None:
                results.append(task)
                continue
        with console.status(f"redriving the {name} DLQ") as status:

            def show(report: RedriveReport, status: Any = status, name: str = name) -> None:
                status.update(f"redriving the {name} DLQ: {report.redriven} sent back")

            report = redrive(
                dlq,
                target.stack.queues(names),
                name,
                now=datetime.now(UTC),
                select=select,
                reread=reread,
                limit=limit,
                on_progress=show,
            )
        results.append(
            {
                "object": name,
                "redriven": report.redriven,
                "unreadable_left": report.unreadable,
                "not_deleted": report.not_deleted,
                "ids": report.ids,
                "method": "billsync",
            }
        )
    if target.as_json:
        target.emit(results)
        return
    table = Table("Object", "Redriven", "Left (unreadable)", "How")
    for row in results:
        if row["method"] == "none":
            continue
        table.add_row(row["object"], str(row["redriven"]), str(row.get("unreadable_left", 0)), row["method"])
    Console().print(table if table.row_count else "Nothing to redrive.")
    if any(row.get("not_deleted") for row in results):
        raise click.ClickException(
            "some letters were sent back but could not be deleted from the DLQ; run the same redrive "
            "again within five minutes (their resend is deduplicated)"
        )


def _redrive_with_move_task(dlq: Any, name: str, console: Console, *, quiet: bool) -> dict[str, Any] | None:
    """Redrive a whole DLQ inside SQS and wait for the task; None when SQS cannot (billsync moves them)."""
    from botocore.exceptions import ClientError

    try:
        handle = dlq.start_move_task(name)
    except ClientError as exc:
        if not quiet:
            console.print(f"SQS cannot move the {name} DLQ ({exc.response.get('Error', {}).get('Code')}); ")
        return None
    task = dlq.move_task(name, handle)
    with console.status(f"SQS is moving the {name} DLQ back to its queue") as status:
        while task is not None and task.status not in _FINISHED_TASKS:
            status.update(f"SQS is moving the {name} DLQ: {task.moved}/{task.to_move or '?'} moved")
            time.sleep(MOVE_TASK_POLL_SECONDS)
            task = dlq.move_task(name, handle)
    if task is not None and task.status != "COMPLETED":
        raise click.ClickException(
            f"the {name} move task ended {task.status}: {task.failure or 'no reason given'}; what was not "
            "moved is still in the DLQ"
        )
    return {"object": name, "redriven": task.moved if task else None, "method": "sqs-move-task"}


@dlq_group.command("purge")
@_filter_options
@click.option("--yes", is_flag=True, help="Do not ask before deleting.")
@target_command
def purge_command(target: Target, objects: tuple[str, ...], yes: bool, **filters: Any) -> None:
    """Delete letters for good (all of the chosen DLQs, or those that match the filters)."""
    names = target.objects(objects)
    select = _letter_filter(**filters)
    dlq = target.stack.dead_letters(names)
    now = datetime.now(UTC)
    counts = {
        name: dlq.depth(name).total if select.empty else len(list_letters(dlq, name, now=now, select=select))
        for name in names
    }
    chosen = [name for name in names if counts[name]]
    if not chosen:
        if target.as_json:
            target.emit([])
        else:
            click.echo("Nothing to purge.")
        return
    described = ", ".join(f"{counts[name]} from {name}" for name in chosen)
    if not yes and not click.confirm(f"Delete {described}? They cannot be redriven afterwards", err=True):
        raise click.ClickException("nothing was deleted")
    results = []
    for name in chosen:
        report = purge(dlq, name, now=now, select=select)
        results.append({"object": name, "deleted": report.deleted, "whole_queue": report.whole_queue})
    if target.as_json:
        target.emit(results)
    else:
        click.echo("Deleted " + ", ".join(f"{r['deleted']} from {r['object']}" for r in results) + ".")


def _shorten(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
