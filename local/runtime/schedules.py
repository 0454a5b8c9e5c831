"""Schedules from ``ScheduleV2`` (EventBridge Scheduler) and ``Schedule`` (EventBridge rule) events.

A firing delivers the target's ``Input`` verbatim as the event (Scheduler's context attributes such as
``<aws.scheduler.execution-id>`` are substituted first, as Scheduler does); a ``Schedule`` event without
``Input`` delivers EventBridge's "Scheduled Event" envelope, a ``ScheduleV2`` event without one ``{}``.
In timer mode each enabled schedule fires on its own cadence (rates count from the stack's start), or
every ``interval`` seconds when an interval override is given; a firing that is due while the timer is
late happens once, not once per missed time.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from local.runtime.cron import At, Cron, Rate, ScheduleExpression
from local.runtime.template import ACCOUNT_ID

log = logging.getLogger("local.runtime")

SCHEDULER_DEFAULT_RETRY_ATTEMPTS = 185


def iso_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ScheduleSpec:
    """One schedule event of one function, resolved."""

    function_id: str
    event_name: str
    kind: Literal["ScheduleV2", "Schedule"]
    expression_text: str
    expression: ScheduleExpression
    input: Any
    enabled: bool
    name: str
    arn: str
    target_arn: str
    retry_attempts: int
    dead_letter_arn: str | None
    region: str

    def input_text(self, scheduled: datetime, execution_id: str, attempt: int) -> str:
        """The payload Scheduler (or the rule) hands to the target for this attempt."""
        if self.input is None:
            if self.kind == "ScheduleV2":
                return "{}"
            envelope = {
                "version": "0",
                "id": execution_id,
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": ACCOUNT_ID,
                "time": iso_time(scheduled),
                "region": self.region,
                "resources": [self.arn],
                "detail": {},
            }
            return json.dumps(envelope)
        text = self.input if isinstance(self.input, str) else json.dumps(self.input)
        if self.kind == "ScheduleV2":
            for name, value in (
                ("schedule-arn", self.arn),
                ("scheduled-time", iso_time(scheduled)),
                ("execution-id", execution_id),
                ("attempt-number", str(attempt)),
            ):
                text = text.replace(f"<aws.scheduler.{name}>", value)
        return text

    def event(self, scheduled: datetime, execution_id: str, attempt: int) -> Any:
        return json.loads(self.input_text(scheduled, execution_id, attempt))

    def describe(self) -> dict[str, Any]:
        return {
            "function": self.function_id,
            "event": self.event_name,
            "type": self.kind,
            "expression": self.expression_text,
            "enabled": self.enabled,
            "schedule_arn": self.arn,
        }


def new_execution_id() -> str:
    return str(uuid.uuid4())


class ScheduleTimer:
    """Fires schedules on their cadence (or on a fixed interval) until stopped."""

    def __init__(
        self,
        schedules: list[ScheduleSpec],
        fire: Callable[[ScheduleSpec, datetime], object],
        *,
        interval: float | None,
    ) -> None:
        self._schedules = [spec for spec in schedules if spec.enabled]
        self._fire = fire
        self._interval = interval
        self._running: dict[int, object] = {}  # schedule index -> its last invocation
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="schedule-timer", daemon=True)
        self._started = datetime.now(UTC)

    def start(self) -> None:
        self._started = datetime.now(UTC)
        if self._schedules:
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def next_fire(self, spec: ScheduleSpec, after: datetime) -> datetime | None:
        if self._interval is not None:
            return after + timedelta(seconds=self._interval)
        expression = spec.expression
        if isinstance(expression, Rate):
            return expression.next_after(after, self._started)
        if isinstance(expression, (Cron, At)):
            return expression.next_after(after)
        raise TypeError(f"unknown schedule expression {expression!r}")

    def _still_running(self, index: int) -> bool:
        """With a fixed local interval (seconds, where the deployed cadence is minutes), a tick that
        finds the schedule's previous run unfinished is skipped: a slow machine would otherwise pile up
        runs that the pull's lease turns away anyway, each costing a cold worker."""
        if self._interval is None:
            return False
        previous = self._running.get(index)
        final = getattr(previous, "final", None)
        return final is not None and not final.done()

    def _run(self) -> None:
        upcoming = {index: self.next_fire(spec, self._started) for index, spec in enumerate(self._schedules)}
        while not self._stopping.is_set():
            pending = [(moment, index) for index, moment in upcoming.items() if moment is not None]
            if not pending:
                return
            moment, index = min(pending)
            delay = (moment - datetime.now(UTC)).total_seconds()
            if self._stopping.wait(max(0.0, delay)):
                return
            spec = self._schedules[index]
            if not self._still_running(index):
                try:
                    self._running[index] = self._fire(spec, moment)
                except Exception:
                    log.exception("schedule %s/%s failed to fire", spec.function_id, spec.event_name)
            # Fire times missed while busy are skipped, not made up in a burst.
            upcoming[index] = self.next_fire(spec, max(moment, datetime.now(UTC)))
