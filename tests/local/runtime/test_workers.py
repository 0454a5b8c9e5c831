"""Worker processes: warm state, Lambda's error shapes, timeouts, crashes and captured logs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from local.runtime import InvocationResult, LocalStack, StackOptions

from .conftest import TIMER_TEMPLATE, wait_for


def test_module_state_stays_warm_between_invocations(app_stack: LocalStack) -> None:
    first = app_stack.invoke("EchoFunction", {"action": "counter"})
    second = app_stack.invoke("EchoFunction", {"action": "counter"})
    assert first.ok and second.ok
    assert second.payload["count"] == first.payload["count"] + 1
    assert second.payload["pid"] == first.payload["pid"]
    assert second.payload["environment_id"] == first.payload["environment_id"]


def test_unhandled_exception_returns_lambdas_error_shape(app_stack: LocalStack) -> None:
    result = app_stack.invoke("EchoFunction", {"action": "raise"})
    assert not result.ok
    assert result.payload is None
    assert result.error is not None
    assert result.error["errorType"] == "ValueError"
    assert result.error["errorMessage"] == "the handler was asked to fail"
    assert result.error["requestId"] == result.request_id
    assert "app.py" in result.error["stackTrace"][0]
    assert "_bootstrap" not in "".join(result.error["stackTrace"])
    log = Path(str(result.logs_path)).read_text()
    assert "[ERROR] ValueError: the handler was asked to fail" in log
    assert f"START RequestId: {result.request_id} Version: $LATEST" in log
    assert f"REPORT RequestId: {result.request_id}\tDuration:" in log


def test_a_response_that_cannot_be_serialized_is_a_marshal_error(app_stack: LocalStack) -> None:
    result = app_stack.invoke("EchoFunction", {"action": "unserializable"})
    assert result.error is not None
    assert result.error["errorType"] == "Runtime.MarshalError"
    assert result.error["errorMessage"].startswith("Unable to marshal response:")


def test_an_import_failure_is_lambdas_init_error(app_stack: LocalStack) -> None:
    result = app_stack.invoke("BrokenFunction", {})
    assert result.error is not None
    assert result.error["errorType"] == "Runtime.ImportModuleError"
    assert (
        result.error["errorMessage"]
        == "Unable to import module 'app': No module named 'not_installed_anywhere'"
    )
    assert not result.invoke_error


def test_a_function_whose_code_is_missing_cannot_be_invoked(app_stack: LocalStack) -> None:
    result = app_stack.invoke("GhostFunction", {})
    assert result.invoke_error
    assert result.error is not None
    assert result.error["errorType"] == "WorkerStartError"
    assert "functions/missing" in result.error["errorMessage"]


def test_timeout_kills_the_worker_with_lambdas_error(app_stack: LocalStack) -> None:
    before = app_stack.invoke("SlowFunction", {"seconds": 0})
    result = app_stack.invoke("SlowFunction", {"seconds": 5})
    assert not result.ok
    assert result.error == {
        "errorMessage": f"RequestId: {result.request_id} Error: Task timed out after 1.00 seconds",
        "errorType": "Sandbox.Timedout",
    }
    assert 950 <= result.duration_ms < 3000
    after = app_stack.invoke("SlowFunction", {"seconds": 0})
    assert after.ok
    assert after.payload["environment_id"] != before.payload["environment_id"]  # a fresh environment
    assert f"{result.request_id} Task timed out after 1.00 seconds" in Path(str(result.logs_path)).read_text()


def test_kill_worker_fails_the_inflight_invocation_like_a_crash(
    app_stack: LocalStack, record_dir: Path
) -> None:
    warm = app_stack.invoke("EchoFunction", {"action": "counter"})
    outcome: list[InvocationResult] = []

    def sleep_long() -> None:
        outcome.append(
            app_stack.invoke("EchoFunction", {"action": "sleep", "seconds": 5, "marker": "kill-test"})
        )

    call = threading.Thread(target=sleep_long)
    call.start()
    wait_for((record_dir / "kill-test").exists)
    assert app_stack.kill_worker("EchoFunction") >= 1
    call.join(timeout=5)
    assert not call.is_alive()
    crashed = outcome[0]
    assert crashed.error == {
        "errorMessage": f"RequestId: {crashed.request_id} Error: Runtime exited with error: signal: killed",
        "errorType": "Runtime.ExitError",
    }
    assert crashed.duration_ms < 4000
    fresh = app_stack.invoke("EchoFunction", {"action": "counter"})
    assert fresh.ok
    assert fresh.payload["pid"] != warm.payload["pid"]
    assert fresh.payload["count"] == 1


def test_invocations_are_logged(app_stack: LocalStack) -> None:
    result = app_stack.invoke("SlowFunction", {"seconds": 0})
    record = next(r for r in app_stack.invocations if r.request_id == result.request_id)
    assert (record.function_id, record.trigger, record.attempt, record.ok) == (
        "SlowFunction",
        "invoke",
        1,
        True,
    )
    assert record.duration_ms == result.duration_ms
    assert record.started_at.tzinfo is not None


def test_echoed_logs_carry_the_function_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = StackOptions(stack_name="echo", logs_dir=tmp_path, echo_logs=True)
    with LocalStack(TIMER_TEMPLATE, options) as stack:
        result = stack.invoke("TickFunction", {"n": 1})
        assert result.ok
        assert result.payload["label"] == "from-template"
        node = stack.invoke("NodeFunction", {})
        assert node.invoke_error
        assert "nodejs20.x is not emulated" in str(node.error)
    output = capsys.readouterr().out
    assert f"[TickFunction] START RequestId: {result.request_id}" in output
    assert f"END RequestId: {result.request_id}" in (tmp_path / "TickFunction.log").read_text()
