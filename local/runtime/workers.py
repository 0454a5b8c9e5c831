"""Run a function's real handler the way Lambda does: one process per execution environment.

Each worker is a fresh interpreter running ``_bootstrap.py`` with the function's environment, its code
directory as working directory and its own ``sys.path``; module state stays warm between invocations.
An invocation that outlives the template's ``Timeout`` kills the worker and fails with Lambda's
"Task timed out" error; a worker that dies mid-invocation fails it with "Runtime exited ...". A pool
per function reuses idle workers and starts new ones when all are busy, as Lambda adds environments.

The in-process mode imports the handler into the calling process instead, under one lock, with the
function's environment variables and ``sys.path`` applied only for the duration of each call. It is
fast, but module-level state (boto3 clients, caches, modules imported by plain name) is shared between
every function of the stack, timeouts are not enforced, and the handler's output is not captured.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import IO, Any, Protocol

from local.runtime import _bootstrap

log = logging.getLogger("local.runtime")

BOOTSTRAP = Path(_bootstrap.__file__).resolve()
INIT_TIMEOUT_SECONDS = 10.0
STOP_GRACE_SECONDS = 2.0
RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024

_SIGNAL_NAMES = {
    int(signal.SIGKILL): "killed",
    int(signal.SIGTERM): "terminated",
    int(signal.SIGSEGV): "segmentation fault",
    int(signal.SIGABRT): "aborted",
    int(signal.SIGINT): "interrupt",
}


@dataclass(frozen=True)
class FunctionSpec:
    """Everything needed to start a function's execution environment."""

    logical_id: str
    function_name: str
    function_arn: str
    code_dir: Path
    handler: str
    timeout: float
    memory_mb: int
    environment: Mapping[str, str]
    sys_path: tuple[str, ...]
    log_path: Path
    log_group_name: str


@dataclass(frozen=True)
class RawInvocation:
    """What one invocation produced. ``invoke_error`` means the function could not be started at all."""

    ok: bool
    payload: Any
    error: dict[str, Any] | None
    duration_ms: float
    invoke_error: bool = False


class WorkerStartError(Exception):
    """A worker process could not be started, so the invocation could not be made."""


class FunctionRunner(Protocol):
    def invoke(
        self, event: Any, *, request_id: str, context_overrides: Mapping[str, Any] | None
    ) -> RawInvocation: ...

    def warm_up(self) -> None: ...

    def kill(self) -> int: ...

    def stop(self) -> None: ...


def context_fields(
    spec: FunctionSpec, request_id: str, log_stream: str, deadline_ms: float
) -> dict[str, Any]:
    return {
        "function_name": spec.function_name,
        "function_version": "$LATEST",
        "invoked_function_arn": spec.function_arn,
        "memory_limit_in_mb": str(spec.memory_mb),
        "aws_request_id": request_id,
        "log_group_name": spec.log_group_name,
        "log_stream_name": log_stream,
        "deadline_ms": deadline_ms,
    }


def log_stream_name() -> str:
    return f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"


def trace_id() -> str:
    epoch = f"{int(time.time()):08x}"
    return f"Root=1-{epoch}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0;Lineage=1"


def append_log(path: Path, line: str) -> None:
    """Write a platform line (timeout, crash) to a function's log, as Lambda writes them to CloudWatch."""
    with path.open("a", encoding="utf-8") as log:
        log.write(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%f}"[:-3] + f"Z {line}\n")


def timeout_error(request_id: str, timeout: float) -> dict[str, Any]:
    return {
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds",
        "errorType": "Sandbox.Timedout",
    }


def exit_error(request_id: str, returncode: int | None) -> dict[str, Any]:
    if returncode is not None and returncode < 0:
        reason = f"signal: {_SIGNAL_NAMES.get(-returncode, str(-returncode))}"
    else:
        reason = f"exit status {returncode}"
    return {
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {reason}",
        "errorType": "Runtime.ExitError",
    }


def start_error(exc: Exception) -> dict[str, Any]:
    return {"errorMessage": str(exc), "errorType": "WorkerStartError"}


# ------------------------------------------------------------------------------------- subprocess


class _Worker:
    """One execution environment: a process, a request pipe and a reply pipe."""

    def __init__(self, spec: FunctionSpec, python: str, echo: Callable[[str], None] | None) -> None:
        self.spec = spec
        self.log_stream = log_stream_name()
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        config = {"sys_path": list(spec.sys_path), "requests_fd": requests_read, "replies_fd": replies_write}
        environment = {**spec.environment, "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream}
        log = spec.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [python, "-u", "-P", str(BOOTSTRAP), json.dumps(config)],
                env=environment,
                cwd=spec.code_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if echo else log,
                stderr=subprocess.STDOUT,
                pass_fds=(requests_read, replies_write),
                start_new_session=True,
            )
        except OSError as exc:
            for fd in (requests_write, replies_read):
                os.close(fd)
            log.close()
            raise WorkerStartError(f"{spec.logical_id}: cannot start a worker: {exc}") from exc
        finally:
            os.close(requests_read)
            os.close(replies_write)
        self._requests = Connection(requests_write, readable=False)
        self._replies = Connection(replies_read, writable=False)
        if echo and self.process.stdout is not None:
            threading.Thread(target=_copy_output, args=(self.process.stdout, log, echo), daemon=True).start()
        else:
            log.close()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self) -> dict[str, Any] | None:
        """Wait for the handler import; returns Lambda's init error if the import failed."""
        if not self._replies.poll(INIT_TIMEOUT_SECONDS):
            self.kill()
            raise WorkerStartError(
                f"{self.spec.logical_id}: the handler did not load within {INIT_TIMEOUT_SECONDS:.0f} s"
            )
        try:
            message = json.loads(self._replies.recv_bytes())
        except (EOFError, OSError):
            code = self._returncode()
            self.close()
            raise WorkerStartError(
                f"{self.spec.logical_id}: the worker exited while starting (status {code}); "
                f"see {self.spec.log_path}"
            ) from None
        if message["ready"]:
            return None
        self._returncode()
        self.close()
        return message["error"]  # type: ignore[no-any-return]

    def invoke(self, message: Mapping[str, Any], timeout: float) -> tuple[str, Any]:
        """Send one invocation; returns ("reply", reply), ("timeout", None) or ("exit", returncode)."""
        try:
            self._requests.send_bytes(json.dumps(message).encode())
        except OSError:
            return "exit", self._returncode()
        if not self._replies.poll(timeout):
            return "timeout", None
        try:
            raw = self._replies.recv_bytes()
        except (EOFError, OSError):
            return "exit", self._returncode()
        if len(raw) > RESPONSE_LIMIT_BYTES:
            return "too_large", len(raw)
        return "reply", json.loads(raw)

    def _returncode(self) -> int | None:
        try:
            return self.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, *, close: bool = True) -> None:
        """SIGKILL the process. A busy worker keeps its pipes: the invoking thread reads EOF and closes them."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()
        if close:
            self.close()

    def stop(self) -> None:
        self._requests.close()
        try:
            self.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.close()

    def close(self) -> None:
        self._requests.close()
        self._replies.close()


def _copy_output(stream: IO[bytes], log: IO[bytes], echo: Callable[[str], None]) -> None:
    with log:
        for line in iter(stream.readline, b""):
            log.write(line)
            log.flush()
            echo(line.decode("utf-8", "replace"))


class SubprocessRunner:
    """A pool of workers for one function: idle workers are reused, new ones start when all are busy."""

    def __init__(self, spec: FunctionSpec, *, python: str, echo: Callable[[str], None] | None) -> None:
        self.spec = spec
        self._python = python
        self._echo = echo
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._closed = False

    def invoke(
        self, event: Any, *, request_id: str, context_overrides: Mapping[str, Any] | None = None
    ) -> RawInvocation:
        started = time.monotonic()
        try:
            worker, init_error = self._checkout()
        except WorkerStartError as exc:
            return RawInvocation(False, None, start_error(exc), _elapsed(started), invoke_error=True)
        if worker is None:
            error = {**(init_error or {}), "requestId": request_id}
            return RawInvocation(False, None, error, _elapsed(started))
        timeout = self.spec.timeout
        begun = time.monotonic()
        fields = context_fields(self.spec, request_id, worker.log_stream, time.time() * 1000 + timeout * 1000)
        message = {"event": event, "context": {**fields, **(context_overrides or {})}, "trace_id": trace_id()}
        kind, value = "exit", None
        try:
            kind, value = worker.invoke(message, timeout)
        finally:
            if kind == "timeout":
                worker.kill()
                append_log(self.spec.log_path, f"{request_id} Task timed out after {timeout:.2f} seconds")
            self._checkin(worker)
        duration = _elapsed(begun)
        if kind == "reply":
            if value["ok"]:
                return RawInvocation(True, value["payload"], None, duration)
            return RawInvocation(False, None, value["error"], duration)
        if kind == "timeout":
            return RawInvocation(False, None, timeout_error(request_id, timeout), duration)
        if kind == "too_large":
            error = {
                "errorMessage": f"Response payload size ({value} bytes) exceeded maximum allowed payload "
                f"size ({RESPONSE_LIMIT_BYTES} bytes).",
                "errorType": "Function.ResponseSizeTooLarge",
            }
            return RawInvocation(False, None, error, duration)
        error = exit_error(request_id, value)
        append_log(self.spec.log_path, f"{request_id} Error: {error['errorMessage'].split('Error: ', 1)[1]}")
        return RawInvocation(False, None, error, duration)

    def _checkout(self) -> tuple[_Worker | None, dict[str, Any] | None]:
        with self._lock:
            if self._closed:
                raise WorkerStartError(f"{self.spec.logical_id}: the stack is stopped")
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    return worker, None
                self._workers.discard(worker)
        return self._spawn()

    def _spawn(self) -> tuple[_Worker | None, dict[str, Any] | None]:
        if not self.spec.code_dir.is_dir():
            raise WorkerStartError(f"{self.spec.logical_id}: CodeUri {self.spec.code_dir} does not exist")
        worker = _Worker(self.spec, self._python, self._echo)
        with self._lock:
            self._workers.add(worker)
        try:
            init_error = worker.wait_ready()
        except WorkerStartError:
            with self._lock:
                self._workers.discard(worker)
            raise
        if init_error is not None:
            with self._lock:
                self._workers.discard(worker)
            return None, init_error
        return worker, None

    def _checkin(self, worker: _Worker) -> None:
        with self._lock:
            if worker.alive and worker in self._workers and not self._closed:
                self._idle.append(worker)
                return
            self._workers.discard(worker)
        if worker.alive:
            worker.stop()
        else:
            worker.close()

    def warm_up(self) -> None:
        """Start one worker unless one exists; a function that cannot start is left for its invocations."""
        with self._lock:
            if self._workers:
                return
        try:
            worker, _ = self._spawn()
        except WorkerStartError as exc:
            log.warning("%s", exc)
            return
        if worker is not None:
            self._checkin(worker)

    def kill(self) -> int:
        with self._lock:
            workers = [worker for worker in self._workers if worker.alive]
            idle = set(self._idle)
            self._workers.clear()
            self._idle.clear()
        for worker in workers:
            worker.kill(close=worker in idle)
        return len(workers)

    def stop(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._workers)
            self._workers.clear()
            self._idle.clear()
        for worker in workers:
            worker.stop()


def _elapsed(started: float) -> float:
    return (time.monotonic() - started) * 1000


# ------------------------------------------------------------------------------------- in-process

_IN_PROCESS_LOCK = threading.RLock()


@contextlib.contextmanager
def _applied(environment: Mapping[str, str], paths: tuple[str, ...]) -> Iterator[None]:
    saved_environment = dict(os.environ)
    saved_path = list(sys.path)
    os.environ.update(environment)
    sys.path[:0] = list(paths)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_environment)
        sys.path[:] = saved_path


class InProcessRunner:
    """Imports the handler into this process (see the module docstring for what that shares)."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self._handler: _bootstrap.Handler | None = None
        self._log_stream = log_stream_name()

    def _import(self, module_name: str) -> ModuleType:
        relative = Path(*module_name.split("."))
        candidates = [
            self.spec.code_dir / relative.with_suffix(".py"),
            self.spec.code_dir / relative / "__init__.py",
        ]
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        if path is None:
            raise ModuleNotFoundError(f"No module named '{module_name}'")
        unique_name = f"_local_runtime_{self.spec.logical_id}_{module_name.replace('.', '_')}"
        module_spec = importlib.util.spec_from_file_location(unique_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ModuleNotFoundError(f"No module named '{module_name}'")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[unique_name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[unique_name]
            raise
        return module

    def invoke(
        self, event: Any, *, request_id: str, context_overrides: Mapping[str, Any] | None = None
    ) -> RawInvocation:
        started = time.monotonic()
        if not self.spec.code_dir.is_dir():
            error = start_error(WorkerStartError(f"CodeUri {self.spec.code_dir} does not exist"))
            return RawInvocation(False, None, error, _elapsed(started), invoke_error=True)
        with _IN_PROCESS_LOCK, _applied(self.spec.environment, self.spec.sys_path):
            if self._handler is None:
                try:
                    self._handler = _bootstrap.load_handler(self.spec.handler, self._import)
                except _bootstrap.InitError as exc:
                    return RawInvocation(False, None, exc.as_error(request_id), _elapsed(started))
            deadline = time.time() * 1000 + self.spec.timeout * 1000
            fields = context_fields(self.spec, request_id, self._log_stream, deadline)
            context = _bootstrap.LambdaContext({**fields, **(context_overrides or {})})
            begun = time.monotonic()
            reply = json.loads(_bootstrap.run_handler(self._handler, event, context))
        if reply["ok"]:
            return RawInvocation(True, reply["payload"], None, _elapsed(begun))
        return RawInvocation(False, None, reply["error"], _elapsed(begun))

    def warm_up(self) -> None:
        return

    def kill(self) -> int:
        return 0

    def stop(self) -> None:
        return


class UnavailableRunner:
    """A function the local stack cannot run (another runtime, an image, code in S3): every call fails."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def invoke(
        self, event: Any, *, request_id: str, context_overrides: Mapping[str, Any] | None = None
    ) -> RawInvocation:
        return RawInvocation(False, None, start_error(WorkerStartError(self.reason)), 0.0, invoke_error=True)

    def warm_up(self) -> None:
        return

    def kill(self) -> int:
        return 0

    def stop(self) -> None:
        return
