"""``LocalStack``: run a SAM template locally, with moto as the AWS stand-in.

``start()`` reads the template, creates its tables, queues, topics and log groups in moto, resolves every
function's environment, starts one HTTP server for all API routes (and the ``/_local/`` control API),
one poller per SQS event source mapping and, in timer mode, the schedules. Workers start lazily on a
function's first invocation (``warm_up()`` starts one per function in parallel).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import boto3

from local.common.server import LocalServer
from local.runtime.api import ApiGateway
from local.runtime.async_invoke import AsyncInvocation, AsyncInvoker, Destination
from local.runtime.control import ControlApi
from local.runtime.event_sources import SqsEventSource
from local.runtime.functions import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, FunctionPlan, plan_function
from local.runtime.resources import (
    FUNCTION_TYPE,
    QUEUE_TYPE,
    RUNTIME_TYPES,
    NotEmulated,
    Resource,
    StackResources,
    queue_url_from_arn,
)
from local.runtime.routes import Route
from local.runtime.schedules import ScheduleSpec, ScheduleTimer
from local.runtime.template import Template, load_template, to_text
from local.runtime.wiring import Wiring, wire_events
from local.runtime.workers import (
    FunctionRunner,
    FunctionSpec,
    InProcessRunner,
    SubprocessRunner,
    UnavailableRunner,
)

log = logging.getLogger("local.runtime")

_DEPTH = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


@dataclass
class StackOptions:
    """How to run the template locally."""

    stack_name: str = "billsync-local"
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    aws_endpoint: str | None = None  # None: start a moto server on a free port
    region: str = "us-east-1"
    env_overrides: dict[str, dict[str, str]] = field(default_factory=dict)  # "*" or a LogicalId
    # "inprocess" imports handlers into this process: fast, but module state is shared between functions,
    # timeouts are not enforced and output is not captured (see workers.py).
    function_mode: Literal["subprocess", "inprocess"] = "subprocess"
    max_concurrency: int = 2
    visibility_timeout_override: int | None = None
    schedules: Literal["manual", "timer"] = "manual"
    schedule_interval_override: float | None = None
    api_port: int = 0
    logs_dir: Path | None = None  # default: <template dir>/.billsync/local/logs
    echo_logs: bool = False
    poll_interval: float = 0.2  # idle wait between empty SQS receives
    async_retry_delay: float = 0.0  # pause before each asynchronous retry (Lambda waits minutes)
    import_values: dict[str, str] = field(default_factory=dict)  # answers Fn::ImportValue
    python: str | None = None  # interpreter for workers; default: this one
    timeout_override: float | None = None  # every function's Timeout (seconds), for tests that crash runs


@dataclass(frozen=True)
class InvocationResult:
    """One invocation's outcome. ``error`` has Lambda's shape (errorMessage, errorType, ...)."""

    ok: bool
    payload: Any
    error: dict[str, Any] | None
    duration_ms: float
    logs_path: Path | None
    request_id: str = ""
    function_id: str = ""
    invoke_error: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "payload": self.payload,
            "error": self.error,
            "duration_ms": round(self.duration_ms, 2),
            "logs_path": str(self.logs_path) if self.logs_path else None,
            "request_id": self.request_id,
            "function": self.function_id,
            "invoke_error": self.invoke_error,
        }


@dataclass(frozen=True)
class InvocationRecord:
    """One entry of the invocation log: which function, what triggered it, how it ended."""

    function_id: str
    trigger: str
    request_id: str
    attempt: int
    started_at: datetime
    duration_ms: float
    ok: bool
    error: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function_id,
            "trigger": self.trigger,
            "request_id": self.request_id,
            "attempt": self.attempt,
            "started_at": self.started_at.isoformat(),
            "duration_ms": round(self.duration_ms, 2),
            "ok": self.ok,
            "error": self.error,
        }


class LocalStack:
    """A SAM template running locally. Use ``start()``/``stop()`` or a ``with`` block."""

    def __init__(self, template_path: str | Path, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.template: Template = load_template(
            template_path,
            stack_name=self.options.stack_name,
            region=self.options.region,
            parameter_overrides=self.options.parameter_overrides,
            import_values=self.options.import_values,
        )
        self.logs_dir = (
            self.options.logs_dir or self.template.root / ".billsync" / "local" / "logs"
        ).resolve()
        self._lock = threading.Lock()
        self._echo_lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._moto: Any = None
        self._endpoint: str | None = None
        self._refs: StackResources | None = None
        self._plans: dict[str, FunctionPlan] = {}
        self._runners: dict[str, FunctionRunner] = {}
        self._wiring = Wiring()
        self._sources: list[SqsEventSource] = []
        self._gateway: ApiGateway | None = None
        self._server: LocalServer | None = None
        self._timer: ScheduleTimer | None = None
        self._async: AsyncInvoker | None = None
        self._records: list[InvocationRecord] = []
        self._running: Counter[str] = Counter()
        self._not_emulated: list[NotEmulated] = []
        self._outputs: dict[str, Any] = {}
        self._paused = False
        self._started = False

    # ------------------------------------------------------------------------------- lifecycle

    def start(self) -> LocalStack:
        if self._started:
            return self
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        options = self.options
        self._endpoint = options.aws_endpoint or self._start_moto()
        for service in ("sqs", "dynamodb", "sns", "logs"):
            self.boto3_client(service)
        refs = StackResources(self.template, self.boto3_client)
        self._refs = refs
        refs.provision()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        for function in self.template.of_type(FUNCTION_TYPE):
            plan = plan_function(
                function,
                refs,
                endpoint=self._endpoint,
                overrides=options.env_overrides,
                timeout_override=options.timeout_override,
            )
            self._plans[function.logical_id] = plan
            self._runners[function.logical_id] = self._runner(plan)
        self._wiring = wire_events(
            refs,
            max_concurrency=options.max_concurrency,
            visibility_timeout=options.visibility_timeout_override,
        )
        self._not_emulated = [
            *refs.not_emulated(),
            *(note for plan in self._plans.values() for note in plan.notes),
            *(
                NotEmulated(p.logical_id, FUNCTION_TYPE, p.unavailable)
                for p in self._plans.values()
                if p.unavailable
            ),
            *self._wiring.notes,
            *(
                NotEmulated(
                    logical_id, self.template.document["Resources"][logical_id]["Type"], f"not created: {why}"
                )
                for logical_id, why in self.template.inactive.items()
            ),
        ]
        self._outputs = self._resolve_outputs()
        self._async = AsyncInvoker(self._invoke_attempt, self._deliver, retry_delay=options.async_retry_delay)
        self._gateway = ApiGateway(
            self._wiring.routes,
            self._invoke_sync,
            ControlApi(self),
            access_key=LOCAL_ACCESS_KEY,
            secret_key=LOCAL_SECRET_KEY,
        )
        self._server = LocalServer(self._gateway, port=options.api_port).start()
        sqs = self.boto3_client("sqs")
        for config in self._wiring.sources:
            source = SqsEventSource(config, sqs, self._invoke_sync, poll_interval=options.poll_interval)
            self._sources.append(source)
            source.start()
        if options.schedules == "timer":
            self.start_schedules()

    def start_schedules(self, interval: float | None = None) -> None:
        """Fire every schedule on its cadence (or every `interval` seconds) from now on."""
        if self._timer is not None:
            return
        every = interval if interval is not None else self.options.schedule_interval_override
        self._timer = ScheduleTimer(self._wiring.schedules, self._fire, interval=every)
        self._timer.start()

    def _start_moto(self) -> str:
        from local.common.aws import LocalAws

        werkzeug_log = logging.getLogger("werkzeug")
        if werkzeug_log.level == logging.NOTSET:
            werkzeug_log.setLevel(logging.WARNING)
        self._moto = LocalAws().start()
        endpoint: str = self._moto.endpoint
        return endpoint

    def _runner(self, plan: FunctionPlan) -> FunctionRunner:
        if plan.unavailable is not None or plan.code_dir is None:
            return UnavailableRunner(f"{plan.logical_id}: {plan.unavailable}")
        log_path = self.logs_dir / f"{plan.logical_id}.log"
        log_path.write_bytes(b"")
        spec = FunctionSpec(
            logical_id=plan.logical_id,
            function_name=plan.function_name,
            function_arn=plan.function_arn,
            code_dir=plan.code_dir,
            handler=plan.handler,
            timeout=plan.timeout,
            memory_mb=plan.memory_mb,
            environment=plan.environment,
            sys_path=plan.sys_path,
            log_path=log_path,
            log_group_name=plan.log_group_name,
        )
        if self.options.function_mode == "inprocess":
            return InProcessRunner(spec)
        echo = self._echo(plan.logical_id) if self.options.echo_logs else None
        return SubprocessRunner(spec, python=self.options.python or sys.executable, echo=echo)

    def _echo(self, logical_id: str) -> Callable[[str], None]:
        def echo(line: str) -> None:
            text = line if line.endswith("\n") else line + "\n"
            with self._echo_lock:
                sys.stdout.write(f"[{logical_id}] {text}")
                sys.stdout.flush()

        return echo

    def _resolve_outputs(self) -> dict[str, Any]:
        assert self._refs is not None
        evaluator = self.template.evaluator(self._refs)
        outputs: dict[str, Any] = {}
        for name, output in self.template.outputs.items():
            condition = output.get("Condition")
            if condition is not None and not self.template.conditions.get(condition, False):
                continue
            value = evaluator.resolve(output.get("Value"))
            outputs[name] = [to_text(item) for item in value] if isinstance(value, list) else to_text(value)
        return outputs

    def stop(self) -> None:
        """Stop timers, pollers, the API server and every worker (and moto, if this stack started it)."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        for source in self._sources:
            source.stop()
        self._sources = []
        if self._server is not None:
            self._server.stop()
            self._server = None
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda runner: runner.stop(), self._runners.values()))
        self._runners = {}
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        self._started = False

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def warm_up(self) -> None:
        """Start one worker per function, in parallel."""
        with ThreadPoolExecutor(max_workers=max(1, len(self._runners))) as pool:
            list(pool.map(lambda runner: runner.warm_up(), self._runners.values()))

    # ------------------------------------------------------------------------------ properties

    @property
    def aws_endpoint(self) -> str:
        if self._endpoint is None:
            raise RuntimeError("the stack is not started")
        return self._endpoint

    def boto3_client(self, service: str) -> Any:
        """A boto3 client for ``service`` against the local endpoint, with the local credentials."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = boto3.session.Session().client(
                    service,
                    endpoint_url=self.aws_endpoint,
                    region_name=self.options.region,
                    aws_access_key_id=LOCAL_ACCESS_KEY,
                    aws_secret_access_key=LOCAL_SECRET_KEY,
                )
            return self._clients[service]

    @property
    def resources(self) -> dict[str, Resource]:
        """Every emulated resource: those created in moto and the functions, layers and APIs."""
        refs = self._require_refs()
        described = dict(refs.created)
        for resource in self.template.resources.values():
            if resource.type in RUNTIME_TYPES:
                described[resource.logical_id] = refs.describe(resource.logical_id)
        return described

    @property
    def outputs(self) -> dict[str, Any]:
        return dict(self._outputs)

    @property
    def not_emulated(self) -> list[NotEmulated]:
        return list(self._not_emulated)

    @property
    def inactive(self) -> dict[str, str]:
        """Resources left out because their Condition is false, with the reason."""
        return dict(self.template.inactive)

    @property
    def functions(self) -> dict[str, FunctionPlan]:
        return dict(self._plans)

    @property
    def routes(self) -> list[Route]:
        return list(self._wiring.routes)

    @property
    def schedules(self) -> list[ScheduleSpec]:
        return list(self._wiring.schedules)

    @property
    def event_sources(self) -> list[dict[str, Any]]:
        described = [source.config.describe() for source in self._sources]
        described += [
            {
                "function": r.function_id,
                "event": r.event_name,
                "type": "HttpApi" if r.kind == "http" else "Api",
                "api": r.api_logical_id,
                "route": r.route_key,
                "iam_auth": r.iam_auth,
            }
            for r in self._wiring.routes
        ]
        described += [schedule.describe() for schedule in self._wiring.schedules]
        return described

    @property
    def api_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stack is not started")
        return self._server.base_url

    @property
    def invocations(self) -> list[InvocationRecord]:
        with self._lock:
            return list(self._records)

    def logs_path(self, logical_id: str) -> Path:
        return self.logs_dir / f"{logical_id}.log"

    def _require_refs(self) -> StackResources:
        if self._refs is None:
            raise RuntimeError("the stack is not started")
        return self._refs

    # ----------------------------------------------------------------------------- invocations

    def invoke(
        self, logical_id: str, event: Any, *, context_overrides: Mapping[str, Any] | None = None
    ) -> InvocationResult:
        """Invoke a function synchronously (RequestResponse), as ``aws lambda invoke`` would."""
        return self._invoke_attempt(logical_id, event, "invoke", str(uuid.uuid4()), 1, context_overrides)

    def invoke_async(self, logical_id: str, event: Any) -> AsyncInvocation:
        """Invoke a function asynchronously (Event): Lambda's retries and destinations apply."""
        self._runner_for(logical_id)
        return self._require_async().submit(logical_id, event, "async", self._plans[logical_id].async_config)

    def _invoke_sync(self, logical_id: str, event: Any, trigger: str) -> InvocationResult:
        return self._invoke_attempt(logical_id, event, trigger, str(uuid.uuid4()), 1)

    def _runner_for(self, logical_id: str) -> FunctionRunner:
        runner = self._runners.get(logical_id)
        if runner is None:
            raise KeyError(f"{logical_id} is not a function of the running stack")
        return runner

    def _invoke_attempt(
        self,
        logical_id: str,
        event: Any,
        trigger: str,
        request_id: str,
        attempt: int,
        context_overrides: Mapping[str, Any] | None = None,
    ) -> InvocationResult:
        runner = self._runner_for(logical_id)
        started_at = datetime.now(UTC)
        with self._lock:
            self._running[logical_id] += 1
        try:
            raw = runner.invoke(event, request_id=request_id, context_overrides=context_overrides)
        finally:
            with self._lock:
                self._running[logical_id] -= 1
        result = InvocationResult(
            ok=raw.ok,
            payload=raw.payload,
            error=raw.error,
            duration_ms=raw.duration_ms,
            logs_path=self.logs_path(logical_id) if isinstance(runner, SubprocessRunner) else None,
            request_id=request_id,
            function_id=logical_id,
            invoke_error=raw.invoke_error,
        )
        record = InvocationRecord(
            logical_id, trigger, request_id, attempt, started_at, raw.duration_ms, raw.ok, raw.error
        )
        with self._lock:
            self._records.append(record)
        return result

    def _require_async(self) -> AsyncInvoker:
        if self._async is None:
            raise RuntimeError("the stack is not started")
        return self._async

    # ------------------------------------------------------------------------------- schedules

    def fire_schedule(
        self, logical_id: str, event_name: str, *, wait_retries: bool = False, timeout: float | None = None
    ) -> InvocationResult:
        """Fire a schedule now. Returns the first invocation's result, or the last one with ``wait_retries``."""
        spec = next(
            (s for s in self._wiring.schedules if s.function_id == logical_id and s.event_name == event_name),
            None,
        )
        if spec is None:
            raise KeyError(f"{logical_id} has no schedule event {event_name}")
        invocation = self._fire(spec, datetime.now(UTC))
        future = invocation.final if wait_retries else invocation.first
        result: InvocationResult = future.result(timeout=timeout)
        return result

    def _fire(self, spec: ScheduleSpec, scheduled: datetime) -> AsyncInvocation:
        config = self._plans[spec.function_id].async_config
        trigger = f"schedule:{spec.event_name}"
        return self._require_async().submit(
            spec.function_id, None, trigger, config, schedule=spec, scheduled=scheduled
        )

    def _deliver(self, destination: Destination, body: str, attributes: Mapping[str, str]) -> None:
        """Send an invocation record or a dead-lettered event to an SQS queue, SNS topic or function."""
        service = destination.arn.split(":")[2] if destination.arn.count(":") >= 5 else ""
        if service == "sqs":
            url = next(
                (
                    r.url
                    for r in self._require_refs().created.values()
                    if r.type == QUEUE_TYPE and r.arn == destination.arn
                ),
                None,
            ) or queue_url_from_arn(destination.arn, self.aws_endpoint)
            if url.endswith(".fifo"):
                log.warning("cannot deliver to FIFO queue %s: destinations must be standard queues", url)
                return
            message_attributes = {
                name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
            }
            self.boto3_client("sqs").send_message(
                QueueUrl=url, MessageBody=body, MessageAttributes=message_attributes
            )
        elif service == "sns":
            message_attributes = {
                name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
            }
            self.boto3_client("sns").publish(
                TopicArn=destination.arn, Message=body, MessageAttributes=message_attributes
            )
        elif service == "lambda":
            name = destination.arn.split(":")[6]
            target = next((p for p in self._plans.values() if p.function_name == name), None)
            if target is None:
                log.warning("cannot deliver to %s: not a function of this stack", destination.arn)
                return
            self._require_async().submit(
                target.logical_id, json.loads(body), "destination", target.async_config
            )
        else:
            log.warning("delivery to %s (%s) is not emulated", destination.arn, destination.type)

    # --------------------------------------------------------------------------------- control

    def kill_worker(self, logical_id: str) -> int:
        """SIGKILL every worker of the function; an in-flight invocation fails like a crashed Lambda."""
        return self._runner_for(logical_id).kill()

    def pause_event_sources(self, timeout: float = 30.0) -> None:
        """Stop receiving from SQS and wait for the batches in flight to settle."""
        self._paused = True
        for source in self._sources:
            source.pause()
        for source in self._sources:
            source.wait_idle(timeout)

    def resume_event_sources(self) -> None:
        self._paused = False
        for source in self._sources:
            source.resume()

    def reset_state(self) -> None:
        """Purge every queue, delete every table item and clear the invocation log; workers stay warm.

        Event sources are paused meanwhile and resumed afterwards unless they were paused before.
        """
        was_paused = self._paused
        self.pause_event_sources()
        try:
            self._require_refs().reset()
            if self._gateway is not None:
                self._gateway.reset_throttles()
            with self._lock:
                self._records.clear()
        finally:
            if not was_paused:
                self.resume_event_sources()

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every event-source queue is empty and nothing is running.

        Raises ``TimeoutError`` naming what is still busy.
        """
        deadline = time.monotonic() + timeout
        quiet_checks = 0
        while True:
            busy = self._busy()
            quiet_checks = 0 if busy else quiet_checks + 1
            if quiet_checks >= 2:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"still busy after {timeout:g} s: " + "; ".join(busy))
            time.sleep(0.05)

    def _busy(self) -> list[str]:
        busy: list[str] = []
        with self._lock:
            running = {name: count for name, count in self._running.items() if count}
        busy += [f"{name}: {count} invocation(s) running" for name, count in running.items()]
        if self._async is not None and self._async.busy:
            busy.append(f"{self._async.busy} asynchronous invocation(s) in progress")
        sqs = self.boto3_client("sqs")
        seen: set[str] = set()
        for source in self._sources:
            config = source.config
            if source.busy:
                busy.append(f"{config.function_id}.{config.event_name}: {source.busy} batch(es) in flight")
            if not config.enabled or config.queue_url in seen:
                continue
            seen.add(config.queue_url)
            counts = sqs.get_queue_attributes(QueueUrl=config.queue_url, AttributeNames=list(_DEPTH))[
                "Attributes"
            ]
            visible, in_flight, delayed = (int(counts.get(name, 0)) for name in _DEPTH)
            if visible or in_flight or delayed:
                busy.append(
                    f"{config.queue_logical_id}: {visible} visible, {in_flight} in flight, {delayed} delayed"
                )
        return busy
