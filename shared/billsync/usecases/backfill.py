"""Backfill: load an object's history since a date, resumable, with progress.

A backfill is an operator stream (`backfill`) of the object's pull: it has its own checkpoint and lease,
so the scheduled pulls carry on undisturbed. Its function runs until its time is nearly up, saving its
position after every batch, and this driver invokes it again until the window is done. Progress
(records done, and the total when the source can count it) is kept on the stream's checkpoint and read
while a run is under way. An interrupted backfill — the driver stopped, or a run killed — resumes from
its last saved position when asked again: nothing is skipped and batches are applied idempotently.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from billsync.domain.models import Direction
from billsync.usecases.catalog import ObjectInfo
from billsync.usecases.ops_ports import FunctionsPort, InvocationResult, StreamProgressPort, StreamState
from billsync.usecases.pull import stream_object
from billsync.usecases.sync_now import SyncNowError

BACKFILL_STREAM = "backfill"
MAX_BATCH_SIZE = 10_000
BUSY_WAIT_SECONDS = 2.0
MAX_FAILED_RUNS = 3


class BackfillError(RuntimeError):
    """A backfill stopped on a failure (its position is saved: it resumes when asked again)."""


@dataclass
class BackfillProgress:
    object: str
    direction: Direction
    since: datetime | None
    records_done: int = 0
    total: int | None = None
    runs: int = 0
    status: str = "running"  # running | done | budget | skipped
    resumed: bool = False
    detail: str | None = None
    outcomes: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "object": self.object,
            "direction": self.direction.value,
            "since": self.since.isoformat() if self.since else None,
            "records_done": self.records_done,
            "total": self.total,
            "runs": self.runs,
            "status": self.status,
            "resumed": self.resumed,
            "detail": self.detail,
            "outcomes": self.outcomes,
        }


def backfill_event(
    direction: Direction,
    *,
    since: datetime | None,
    restart: bool,
    batch_size: int | None,
    run_id: str | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "action": "pull",
        "direction": direction.value,
        "trigger": "backfill",
        "stream": BACKFILL_STREAM,
    }
    if restart:
        event["restart"] = True
        event["run_id"] = run_id
        if since is not None:
            event["since"] = since.isoformat()
    if batch_size is not None:
        event["batch_size"] = batch_size
    return event


def plan_backfill(
    info: ObjectInfo,
    direction: Direction,
    states: Mapping[str, StreamState | None],
    *,
    since: datetime | None,
    resume: bool,
    restart: bool,
) -> tuple[bool, datetime | None]:
    """Whether the backfill starts over, and from when: an unfinished backfill of the same start resumes."""
    if not info.enabled:
        raise SyncNowError(f"{info.name} sync is switched off; switch it on first", status=409)
    if direction not in info.directions:
        raise SyncNowError(f"{info.name} does not sync {direction.value}")
    unfinished = [s for s in states.values() if s is not None and s.unfinished]
    started = next((s.since for s in unfinished if s.since is not None), None)
    if restart:
        if since is None:
            raise SyncNowError("--restart needs --since: where the backfill starts over")
        return True, since
    if unfinished:
        if since is not None and started is not None and since != started:
            raise SyncNowError(
                f"a {info.name} {direction.value} backfill since {started.isoformat()} is unfinished: "
                "resume it (--resume, or the same --since) or start over (--restart --since …)"
            )
        return False, started
    if resume:
        raise SyncNowError(f"no unfinished {info.name} {direction.value} backfill to resume")
    if since is None:
        raise SyncNowError("--since is required: where the backfill starts")
    return True, since


def stream_states(
    state: StreamProgressPort, info: ObjectInfo, direction: Direction
) -> dict[str, StreamState | None]:
    name = stream_object(info.name, BACKFILL_STREAM)
    return {source: state.stream_state(source, name, direction) for source in info.sources}


def run_backfill(
    functions: FunctionsPort,
    state: StreamProgressPort,
    info: ObjectInfo,
    direction: Direction,
    *,
    since: datetime | None,
    resume: bool = False,
    restart: bool = False,
    batch_size: int | None = None,
    on_progress: Callable[[BackfillProgress], None] | None = None,
    poll_seconds: float = 1.0,
    busy_timeout: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> BackfillProgress:
    """Drive the backfill's runs until its window is done (or the API budget reserve stops it)."""
    if batch_size is not None and not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise SyncNowError(f"the batch size must be between 1 and {MAX_BATCH_SIZE}")
    fresh, start = plan_backfill(
        info, direction, stream_states(state, info, direction), since=since, resume=resume, restart=restart
    )
    progress = BackfillProgress(info.name, direction, start, resumed=not fresh)
    # A fresh backfill starts its streams over with an id of its own; until a run has done so (a run
    # may find the stream busy, or die first), every run is asked to start over.
    run_id = uuid.uuid4().hex if fresh else None
    if not fresh:
        _read_progress(state, info, direction, progress, run_id)
    failures = 0
    busy_since: float | None = None
    while True:
        restarted = run_id is None or _restarted(state, info, direction, run_id)
        event = backfill_event(
            direction, since=start, restart=not restarted, batch_size=batch_size, run_id=run_id
        )
        answer = _invoke_watching(
            functions, state, info, direction, event, progress, on_progress, poll_seconds, run_id
        )
        progress.runs += 1
        _read_progress(state, info, direction, progress, run_id)
        if not answer.ok:
            failures += 1
            if failures >= MAX_FAILED_RUNS:
                raise BackfillError(
                    f"the {info.name} function failed {failures} times in a row: {answer.error}; "
                    "the backfill's position is saved — fix the cause and resume it"
                )
            continue
        failures = 0
        payload = answer.payload if isinstance(answer.payload, dict) else {}
        streams: Sequence[Mapping[str, Any]] = payload.get("streams") or []
        for stream in streams:
            for outcome, count in (stream.get("outcomes") or {}).items():
                progress.outcomes[outcome] = progress.outcomes.get(outcome, 0) + int(count)
        statuses = {str(s.get("status")) for s in streams}
        if payload.get("skipped") or not streams or "skipped" in statuses:
            progress.status = "skipped"
            progress.detail = payload.get("skipped") or next(
                (str(s.get("detail")) for s in streams if s.get("detail")), "nothing to backfill"
            )
        elif "budget" in statuses:
            progress.status = "budget"
            progress.detail = next(str(s.get("detail")) for s in streams if s.get("status") == "budget")
        elif statuses == {"done"}:
            progress.status = "done"
        if on_progress is not None:
            on_progress(progress)
        if progress.status != "running":
            return progress
        if "busy" in statuses:
            # Another run holds the stream (one killed mid-run keeps its lease until its time is up).
            busy_since = busy_since or time.monotonic()
            if time.monotonic() - busy_since > busy_timeout:
                raise BackfillError(
                    f"another run has held the {info.name} backfill for over {busy_timeout:g} s; try again later"
                )
            sleep(BUSY_WAIT_SECONDS)
        else:
            busy_since = None


def _restarted(state: StreamProgressPort, info: ObjectInfo, direction: Direction, run_id: str) -> bool:
    states = stream_states(state, info, direction).values()
    return all(s is not None and s.run_id == run_id for s in states)


def _invoke_watching(
    functions: FunctionsPort,
    state: StreamProgressPort,
    info: ObjectInfo,
    direction: Direction,
    event: Mapping[str, Any],
    progress: BackfillProgress,
    on_progress: Callable[[BackfillProgress], None] | None,
    poll_seconds: float,
    run_id: str | None,
) -> InvocationResult:
    """One run, reporting its progress from the stream's checkpoint while it works."""
    outcome: list[InvocationResult] = []
    failure: list[BaseException] = []

    def invoke() -> None:
        try:
            outcome.append(functions.invoke(info.name, event))
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=invoke, name=f"backfill-{info.name}", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(poll_seconds)
        if on_progress is not None and worker.is_alive():
            _read_progress(state, info, direction, progress, run_id)
            on_progress(progress)
    if failure:
        raise failure[0]
    return outcome[0]


def _read_progress(
    state: StreamProgressPort,
    info: ObjectInfo,
    direction: Direction,
    progress: BackfillProgress,
    run_id: str | None,
) -> None:
    """The streams' progress; a fresh backfill's only once its run has started them over."""
    states = [s for s in stream_states(state, info, direction).values() if s is not None]
    if run_id is not None:
        states = [s for s in states if s.run_id == run_id]
    progress.records_done = sum(s.records_done for s in states)
    totals = [s.total for s in states]
    progress.total = sum(t for t in totals if t is not None) if totals and None not in totals else None
