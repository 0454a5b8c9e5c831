"""The inside of a local Lambda execution environment: imports the handler once, then serves invocations.

The runtime starts this file as a script in a fresh interpreter (``python -u -P _bootstrap.py <config>``)
with the function's environment variables, its code directory as the working directory, and two pipes
(requests in, replies out) so that the handler's own stdout and stderr stay free for its logs. It uses
the standard library only, so nothing outside the function's ``sys.path`` is imported into it.

The pieces that do not depend on the process (context object, handler loading, error shapes, response
marshalling) are shared with the in-process mode.
"""

from __future__ import annotations

import decimal
import importlib
import json
import math
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from types import ModuleType
from typing import Any

Handler = Callable[[Any, Any], Any]


class LambdaContext:
    """The context object the Python runtime passes to a handler."""

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self.function_name: str = fields["function_name"]
        self.function_version: str = fields.get("function_version", "$LATEST")
        self.invoked_function_arn: str = fields["invoked_function_arn"]
        # The Python runtime reads this from AWS_LAMBDA_FUNCTION_MEMORY_SIZE, so it is a string.
        self.memory_limit_in_mb: str = str(fields["memory_limit_in_mb"])
        self.aws_request_id: str = fields["aws_request_id"]
        self.log_group_name: str = fields["log_group_name"]
        self.log_stream_name: str = fields["log_stream_name"]
        self.identity: Any = fields.get("identity")
        self.client_context: Any = fields.get("client_context")
        self.tenant_id: str | None = fields.get("tenant_id")
        self._deadline_ms: float = float(fields["deadline_ms"])
        for name, value in fields.items():
            if not hasattr(self, name) and name != "deadline_ms":
                setattr(self, name, value)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))

    def log(self, message: str) -> None:
        sys.stdout.write(message)
        sys.stdout.flush()


class InitError(Exception):
    """The handler could not be loaded; carries Lambda's error type for it."""

    def __init__(self, error_type: str, message: str, stack: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.stack = stack or []

    def as_error(self, request_id: str) -> dict[str, Any]:
        return {
            "errorMessage": str(self),
            "errorType": self.error_type,
            "requestId": request_id,
            "stackTrace": self.stack,
        }


def load_handler(
    handler: str, import_module: Callable[[str], ModuleType] = importlib.import_module
) -> Handler:
    """Resolve ``module.function`` (``dir/module.function`` also works) with Lambda's init errors."""
    module_path, _, function_name = handler.rpartition(".")
    if not module_path or not function_name:
        raise InitError("Runtime.MalformedHandlerName", f"Bad handler '{handler}': expected module.function")
    module_name = module_path.replace("/", ".")
    try:
        module = import_module(module_name)
    except ImportError as exc:
        raise InitError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc
    except SyntaxError as exc:
        raise InitError(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}"
        ) from exc
    except Exception as exc:
        raise InitError(type(exc).__name__, str(exc), _stack(exc)) from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise InitError(
            "Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'"
        )
    return function  # type: ignore[no-any-return]


def _stack(exc: BaseException) -> list[str]:
    # The first frame is the runtime's own call into the handler; Lambda does not show it.
    return traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])


def error_from_exception(exc: BaseException, request_id: str) -> dict[str, Any]:
    """The Python runtime's shape for an unhandled exception."""
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": _stack(exc),
    }


def _decimal_serializer(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"{value!r} is not JSON serializable")


def marshal_reply(payload: Any, request_id: str) -> str:
    """Serialize a handler's return value as the runtime does (Decimal becomes a number)."""
    try:
        return json.dumps({"ok": True, "payload": payload}, default=_decimal_serializer)
    except (TypeError, ValueError) as exc:
        error = {
            "errorMessage": f"Unable to marshal response: {exc}",
            "errorType": "Runtime.MarshalError",
            "requestId": request_id,
            "stackTrace": [],
        }
        return json.dumps({"ok": False, "error": error})


def log_error(error: Mapping[str, Any]) -> None:
    """Write an unhandled error to the function's log the way the Python runtime does."""
    lines = [f"[ERROR] {error['errorType']}: {error['errorMessage']}"]
    if error.get("stackTrace"):
        lines.append("Traceback (most recent call last):")
        lines.extend(line.rstrip("\n") for line in error["stackTrace"])
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def run_handler(handler: Handler, event: Any, context: LambdaContext) -> str:
    """Call the handler and return the JSON reply for the runtime (payload or error)."""
    try:
        payload = handler(event, context)
    except Exception as exc:
        error = error_from_exception(exc, context.aws_request_id)
        log_error(error)
        return json.dumps({"ok": False, "error": error})
    return marshal_reply(payload, context.aws_request_id)


def _serve(handler: Handler, requests: Connection, replies: Connection, init_ms: float) -> None:
    memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    first = True
    while True:
        try:
            message = json.loads(requests.recv_bytes())
        except EOFError:
            return
        request_id = message["context"]["aws_request_id"]
        os.environ["_X_AMZN_TRACE_ID"] = message["trace_id"]
        print(f"START RequestId: {request_id} Version: $LATEST", flush=True)
        started = time.monotonic()
        reply = run_handler(handler, message["event"], LambdaContext(message["context"]))
        duration = (time.monotonic() - started) * 1000
        used_mb = math.ceil(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\tBilled Duration: {math.ceil(duration)} ms"
            f"\tMemory Size: {memory} MB\tMax Memory Used: {used_mb} MB"
        )
        if first:
            report += f"\tInit Duration: {init_ms:.2f} ms"
            first = False
        print(f"END RequestId: {request_id}\n{report}", flush=True)
        replies.send_bytes(reply.encode())


def main() -> int:
    config = json.loads(sys.argv[1])
    sys.path[:0] = config["sys_path"]
    requests = Connection(config["requests_fd"], writable=False)
    replies = Connection(config["replies_fd"], readable=False)
    started = time.monotonic()
    try:
        handler = load_handler(os.environ["_HANDLER"])
    except InitError as exc:
        error = exc.as_error("")
        log_error(error)
        replies.send_bytes(json.dumps({"ready": False, "error": error}).encode())
        return 1
    init_ms = (time.monotonic() - started) * 1000
    replies.send_bytes(json.dumps({"ready": True}).encode())
    _serve(handler, requests, replies, init_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
