"""Lambda's asynchronous invocation path, with EventBridge Scheduler in front of it when a schedule fires.

Scheduler (or the EventBridge rule) hands the event to Lambda; when that hand-over itself fails (locally:
the function's worker cannot be started) it retries per the schedule's ``RetryPolicy`` and then sends
the payload to the schedule's ``DeadLetterConfig`` queue with Scheduler's error attributes. Once Lambda
has the event, a function error is retried ``EventInvokeConfig.MaximumRetryAttempts`` times (default 2)
with the same request id; the outcome then goes to ``DestinationConfig.OnSuccess`` / ``OnFailure`` as an
invocation record, and a failed event also to the function's ``DeadLetterQueue``. Retries run after
``retry_delay`` seconds instead of Lambda's minutes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from local.runtime.schedules import ScheduleSpec, iso_time, new_execution_id

log = logging.getLogger("local.runtime")


class Result(Protocol):
    @property
    def ok(self) -> bool: ...

    @property
    def payload(self) -> Any: ...

    @property
    def error(self) -> dict[str, Any] | None: ...

    @property
    def invoke_error(self) -> bool: ...


@dataclass(frozen=True)
class Destination:
    type: str
    arn: str


@dataclass(frozen=True)
class AsyncConfig:
    """A function's ``EventInvokeConfig`` and ``DeadLetterQueue``."""

    function_arn: str
    maximum_retry_attempts: int = 2
    on_success: Destination | None = None
    on_failure: Destination | None = None
    dead_letter: Destination | None = None


@dataclass
class AsyncInvocation:
    """The first attempt's result (available at once) and the final one (after retries)."""

    request_id: str
    first: Future[Any] = field(default_factory=Future)
    final: Future[Any] = field(default_factory=Future)


InvokeAttempt = Callable[[str, Any, str, str, int], Result]
Deliver = Callable[[Destination, str, Mapping[str, str]], None]


def invocation_record(
    config: AsyncConfig, request_id: str, event: Any, result: Result, attempts: int
) -> dict[str, Any]:
    """Lambda's invocation record for an asynchronous invocation's destination."""
    now = datetime.now(UTC)
    response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if not result.ok:
        response_context["functionError"] = "Unhandled"
    return {
        "version": "1.0",
        "timestamp": f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}Z",
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{config.function_arn}:$LATEST",
            "condition": "Success" if result.ok else "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": response_context,
        "responsePayload": result.payload if result.ok else result.error,
    }


class AsyncInvoker:
    """Runs asynchronous invocations in background threads and tracks how many are in progress."""

    def __init__(self, invoke: InvokeAttempt, deliver: Deliver, *, retry_delay: float) -> None:
        self._invoke = invoke
        self._deliver = deliver
        self._retry_delay = retry_delay
        self._lock = threading.Lock()
        self._busy = 0

    @property
    def busy(self) -> int:
        with self._lock:
            return self._busy

    def submit(
        self,
        function_id: str,
        event: Any,
        trigger: str,
        config: AsyncConfig,
        *,
        schedule: ScheduleSpec | None = None,
        scheduled: datetime | None = None,
    ) -> AsyncInvocation:
        invocation = AsyncInvocation(request_id=str(uuid.uuid4()))
        with self._lock:
            self._busy += 1
        thread = threading.Thread(
            target=self._run,
            args=(invocation, function_id, event, trigger, config, schedule, scheduled or datetime.now(UTC)),
            name=f"async-{function_id}",
            daemon=True,
        )
        thread.start()
        return invocation

    def _run(
        self,
        invocation: AsyncInvocation,
        function_id: str,
        event: Any,
        trigger: str,
        config: AsyncConfig,
        schedule: ScheduleSpec | None,
        scheduled: datetime,
    ) -> None:
        try:
            self._chain(invocation, function_id, event, trigger, config, schedule, scheduled)
        except Exception as exc:
            for future in (invocation.first, invocation.final):
                if not future.done():
                    future.set_exception(exc)
        finally:
            with self._lock:
                self._busy -= 1

    def _chain(
        self,
        invocation: AsyncInvocation,
        function_id: str,
        event: Any,
        trigger: str,
        config: AsyncConfig,
        schedule: ScheduleSpec | None,
        scheduled: datetime,
    ) -> None:
        request_id = invocation.request_id
        if schedule is not None:
            delivered = self._deliver_from_schedule(invocation, function_id, trigger, schedule, scheduled)
            if delivered is None:
                return
            event, result = delivered
        else:
            result = self._invoke(function_id, event, trigger, request_id, 1)
            invocation.first.set_result(result)
        attempts = 1
        while not result.ok and attempts <= config.maximum_retry_attempts:
            self._pause()
            attempts += 1
            result = self._invoke(function_id, event, trigger, request_id, attempts)
        record = json.dumps(invocation_record(config, request_id, event, result, attempts))
        if result.ok and config.on_success is not None:
            self._send(config.on_success, record, {})
        if not result.ok and config.on_failure is not None:
            self._send(config.on_failure, record, {})
        if not result.ok and config.dead_letter is not None:
            error = result.error or {}
            attributes = {
                "RequestID": request_id,
                "ErrorCode": "200",
                "ErrorMessage": str(error.get("errorMessage", ""))[:1024],
            }
            self._send(config.dead_letter, json.dumps(event), attributes)
        invocation.final.set_result(result)

    def _deliver_from_schedule(
        self,
        invocation: AsyncInvocation,
        function_id: str,
        trigger: str,
        schedule: ScheduleSpec,
        scheduled: datetime,
    ) -> tuple[Any, Result] | None:
        """Scheduler's hand-over: retried while the invocation cannot be made, then dead-lettered."""
        execution_id = new_execution_id()
        result: Result | None = None
        for attempt in range(1, schedule.retry_attempts + 2):
            if attempt > 1:
                self._pause()
            event = schedule.event(scheduled, execution_id, attempt)
            result = self._invoke(function_id, event, trigger, invocation.request_id, 1)
            if not invocation.first.done():
                invocation.first.set_result(result)
            if not result.invoke_error:
                return event, result
        assert result is not None
        if schedule.dead_letter_arn:
            error = result.error or {}
            attributes = {
                "ERROR_CODE": str(error.get("errorType", "InvocationError")),
                "ERROR_MESSAGE": str(error.get("errorMessage", "")),
                "EXECUTION_ID": execution_id,
                "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts",
                "IS_PAYLOAD_TRUNCATED": "false",
                "RETRY_ATTEMPTS": str(schedule.retry_attempts),
                "SCHEDULED_TIME": iso_time(scheduled),
                "SCHEDULE_ARN": schedule.arn,
                "TARGET_ARN": schedule.target_arn,
            }
            body = schedule.input_text(scheduled, execution_id, schedule.retry_attempts + 1)
            self._send(Destination("SQS", schedule.dead_letter_arn), body, attributes)
        invocation.final.set_result(result)
        return None

    def _send(self, destination: Destination, body: str, attributes: Mapping[str, str]) -> None:
        """Deliver a record; like Lambda, a delivery failure is logged and does not fail the invocation."""
        try:
            self._deliver(destination, body, attributes)
        except Exception as exc:
            log.warning("delivery to %s failed: %s", destination.arn, exc)

    def _pause(self) -> None:
        if self._retry_delay > 0:
            time.sleep(self._retry_delay)
