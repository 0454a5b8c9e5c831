"""Schedules: manual firing, Lambda's async retries and destinations, Scheduler's DLQ, timer mode."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from local.runtime import InvocationRecord, LocalStack, StackOptions
from local.runtime.async_invoke import AsyncInvocation
from local.runtime.schedules import ScheduleTimer

from .conftest import TIMER_TEMPLATE, take_messages, wait_for


def test_manual_fire_delivers_the_input_verbatim(app_stack: LocalStack) -> None:
    result = app_stack.fire_schedule("ScheduledFunction", "Pull")
    assert result.ok
    schedule_arn = "arn:aws:scheduler:us-east-1:123456789012:schedule/default/fixture-ScheduledFunctionPull"
    assert result.payload["received"] == {"action": "pull", "schedule": schedule_arn}
    record = next(r for r in app_stack.invocations if r.request_id == result.request_id)
    assert (record.trigger, record.attempt) == ("schedule:Pull", 1)


def test_an_eventbridge_rule_without_input_delivers_the_scheduled_event(app_stack: LocalStack) -> None:
    event = app_stack.fire_schedule("ScheduledFunction", "Legacy").payload["received"]
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"] == [
        "arn:aws:events:us-east-1:123456789012:rule/fixture-ScheduledFunctionLegacy"
    ]
    assert (event["account"], event["region"], event["detail"]) == ("123456789012", "us-east-1", {})


def test_a_failing_run_is_retried_then_sent_to_the_on_failure_destination(app_stack: LocalStack) -> None:
    first = app_stack.fire_schedule("ScheduledFunction", "Broken")
    assert first.error is not None
    assert first.error["errorType"] == "RuntimeError"
    final = app_stack.fire_schedule("ScheduledFunction", "Broken", wait_retries=True)
    assert not final.ok
    attempts = [r for r in app_stack.invocations if r.request_id == final.request_id]
    assert [r.attempt for r in attempts] == [1, 2]  # EventInvokeConfig.MaximumRetryAttempts: 1 (from Globals)
    messages = wait_for(lambda: take_messages(app_stack, "FailedRunsQueue"))
    records = [json.loads(message["Body"]) for message in messages]
    record = next(r for r in records if r["requestContext"]["requestId"] == final.request_id)
    assert record["version"] == "1.0"
    assert record["timestamp"].endswith("Z")
    assert record["requestContext"] == {
        "requestId": final.request_id,
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:fixture-ScheduledFunction:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 2,
    }
    assert record["requestPayload"] == {"action": "fail"}
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert record["responsePayload"]["errorMessage"] == "the scheduled run failed"
    # The function's DeadLetterQueue gets the event itself, with Lambda's attributes.
    dead = [m for m in wait_for(lambda: take_messages(app_stack, "AsyncDLQ")) if final.request_id in str(m)]
    assert json.loads(dead[0]["Body"]) == {"action": "fail"}
    attributes = {name: value["StringValue"] for name, value in dead[0]["MessageAttributes"].items()}
    assert attributes == {
        "RequestID": final.request_id,
        "ErrorCode": "200",
        "ErrorMessage": "the scheduled run failed",
    }


def test_a_successful_async_invocation_goes_to_the_on_success_destination(app_stack: LocalStack) -> None:
    invocation = app_stack.invoke_async("ScheduledFunction", {"action": "hello"})
    result = invocation.final.result(timeout=10)
    assert result.ok
    assert invocation.first.result() is result
    records = [json.loads(m["Body"]) for m in wait_for(lambda: take_messages(app_stack, "SuccessQueue"))]
    record = next(r for r in records if r["requestContext"]["requestId"] == result.request_id)
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == result.payload
    assert record["requestPayload"] == {"action": "hello"}


def test_when_the_invoke_cannot_be_made_scheduler_retries_then_dead_letters(app_stack: LocalStack) -> None:
    result = app_stack.fire_schedule("GhostFunction", "Nightly", wait_retries=True)
    assert result.invoke_error
    attempts = [r for r in app_stack.invocations if r.request_id == result.request_id]
    assert len(attempts) == 3  # the first attempt and RetryPolicy.MaximumRetryAttempts: 2
    [message] = take_messages(app_stack, "SchedulerDLQ")
    assert json.loads(message["Body"]) == {"action": "nightly"}
    attributes = {name: value["StringValue"] for name, value in message["MessageAttributes"].items()}
    assert attributes["ERROR_CODE"] == "WorkerStartError"
    assert "functions/missing" in attributes["ERROR_MESSAGE"]
    assert attributes["RETRY_ATTEMPTS"] == "2"
    assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"
    assert attributes["SCHEDULE_ARN"].endswith(":schedule/default/fixture-GhostFunctionNightly")
    assert attributes["TARGET_ARN"] == "arn:aws:lambda:us-east-1:123456789012:function:fixture-GhostFunction"
    assert {"EXECUTION_ID", "SCHEDULED_TIME", "IS_PAYLOAD_TRUNCATED"} <= set(attributes)
    assert take_messages(app_stack, "FailedRunsQueue") == []  # Lambda never had the event


def test_unknown_schedules_are_refused(app_stack: LocalStack) -> None:
    with pytest.raises(KeyError, match="no schedule event Missing"):
        app_stack.fire_schedule("ScheduledFunction", "Missing")


# ------------------------------------------------------------------- timer mode, in-process functions


@pytest.fixture(scope="module")
def timer_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    options = StackOptions(
        stack_name="timer",
        schedules="timer",
        schedule_interval_override=0.2,
        function_mode="inprocess",
        env_overrides={"TickFunction": {"TICK_LABEL": "overridden"}},
        logs_dir=tmp_path_factory.mktemp("timer-logs"),
    )
    with LocalStack(TIMER_TEMPLATE, options) as stack:
        yield stack


def test_timer_mode_fires_on_the_interval_override(timer_stack: LocalStack) -> None:
    started = datetime.now(UTC)
    before = len([r for r in timer_stack.invocations if r.trigger == "schedule:Tick"])

    def new_ticks() -> list[InvocationRecord]:
        found = [r for r in timer_stack.invocations if r.trigger == "schedule:Tick"][before:]
        return found if len(found) >= 3 else []

    ticks = wait_for(new_ticks, timeout=5)
    assert all(record.ok and record.attempt == 1 for record in ticks)
    # Every 0.2 s: three more ticks cannot come sooner than 0.4 s, and arrive well within the wait.
    assert (ticks[2].started_at - started).total_seconds() >= 0.4


def test_in_process_mode_applies_the_environment_only_during_the_call(timer_stack: LocalStack) -> None:
    assert "TICK_LABEL" not in os.environ
    first = timer_stack.invoke("TickFunction", {"n": 1})
    second = timer_stack.invoke("TickFunction", {"n": 2})
    assert first.ok and second.ok
    assert first.payload["label"] == "overridden"
    assert first.payload["event"] == {"n": 1}
    assert second.payload["ticks"] > first.payload["ticks"]  # module state is kept
    assert first.logs_path is None
    assert "TICK_LABEL" not in os.environ
    assert os.environ.get("AWS_ENDPOINT_URL") != timer_stack.aws_endpoint


def test_schedule_settings_come_from_the_template(timer_stack: LocalStack) -> None:
    [schedule] = timer_stack.schedules
    assert (schedule.expression_text, schedule.enabled, schedule.retry_attempts) == ("rate(1 day)", True, 185)
    assert schedule.dead_letter_arn is None


def test_a_fixed_interval_skips_ticks_while_the_previous_run_is_unfinished() -> None:
    fired: list[AsyncInvocation] = []

    def fire(spec: Any, moment: datetime) -> AsyncInvocation:
        fired.append(AsyncInvocation(request_id=str(len(fired))))
        return fired[-1]

    spec = SimpleNamespace(enabled=True, function_id="Fn", event_name="Pull")
    timer = ScheduleTimer([spec], fire, interval=0.02)  # type: ignore[list-item]
    timer.start()
    try:
        time.sleep(0.3)
        assert len(fired) == 1  # the first run never finished: every later tick was skipped
        fired[0].final.set_result(None)
        wait_for(lambda: len(fired) > 1, timeout=5)
    finally:
        timer.stop()
