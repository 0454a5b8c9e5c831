"""Read every function's ``Events`` and wire them: SQS pollers, API routes, schedules.

Event types other than ``SQS``, ``HttpApi``, ``Api``, ``ScheduleV2`` and ``Schedule`` are reported as not
emulated, as are the settings of emulated ones the local stack does not act on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local.runtime.cron import ScheduleExpressionError, parse_expression
from local.runtime.event_sources import SqsSourceConfig
from local.runtime.resources import (
    FUNCTION_TYPE,
    HTTP_API_TYPE,
    QUEUE_TYPE,
    REST_API_TYPE,
    NotEmulated,
    StackResources,
    truthy,
)
from local.runtime.routes import Route, TokenBucket
from local.runtime.schedules import SCHEDULER_DEFAULT_RETRY_ATTEMPTS, ScheduleSpec
from local.runtime.template import (
    ACCOUNT_ID,
    IMPLICIT_HTTP_API,
    IMPLICIT_REST_API,
    PARTITION,
    TemplateError,
    TemplateResource,
    to_text,
)

_API_PROPERTIES = ("Auth", "BinaryMediaTypes", "DefaultRouteSettings", "RouteSettings", "StageName")
# API Gateway's account-level defaults, used when a route sets only one of the two limits.
_DEFAULT_BURST = 5000
_DEFAULT_RATE = 10000.0


@dataclass
class Wiring:
    sources: list[SqsSourceConfig] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    schedules: list[ScheduleSpec] = field(default_factory=list)
    notes: list[NotEmulated] = field(default_factory=list)


def wire_events(
    refs: StackResources,
    *,
    max_concurrency: int,
    visibility_timeout: int | None,
) -> Wiring:
    """Wire every event of every function of the template."""
    wiring = Wiring()
    evaluator = refs.template.evaluator(refs)
    for function in refs.template.of_type(FUNCTION_TYPE):
        for event_name, event in (function.properties.get("Events") or {}).items():
            kind = event.get("Type")
            declared = event.get("Properties") or {}
            properties = evaluator.resolve(declared)
            where = f"{function.logical_id}.Events.{event_name}"
            if kind == "SQS":
                _wire_sqs(refs, function, event_name, properties, wiring, max_concurrency, visibility_timeout)
            elif kind in ("HttpApi", "Api"):
                _wire_route(refs, function, event_name, kind, properties, wiring)
            elif kind in ("ScheduleV2", "Schedule"):
                _wire_schedule(refs, function, event_name, kind, properties, wiring)
            else:
                wiring.notes.append(NotEmulated(where, str(kind), "event source type is not emulated"))
    _report_shadowed_routes(wiring)
    return wiring


def _note(wiring: Wiring, function: TemplateResource, event_name: str, kind: str, detail: str) -> None:
    wiring.notes.append(NotEmulated(f"{function.logical_id}.Events.{event_name}", kind, detail))


def _wire_sqs(
    refs: StackResources,
    function: TemplateResource,
    event_name: str,
    properties: Mapping[str, Any],
    wiring: Wiring,
    max_concurrency: int,
    visibility_timeout: int | None,
) -> None:
    queue_arn = to_text(properties["Queue"])
    queue = next((r for r in refs.created.values() if r.type == QUEUE_TYPE and r.arn == queue_arn), None)
    if queue is None or queue.url is None:
        _note(wiring, function, event_name, "SQS", f"queue {queue_arn} is not a queue of this template")
        return
    if properties.get("FilterCriteria"):
        _note(wiring, function, event_name, "SQS", "FilterCriteria: event filtering is not emulated")
    scaling = (properties.get("ScalingConfig") or {}).get("MaximumConcurrency")
    concurrency = max_concurrency if scaling is None else min(int(to_text(scaling)), max_concurrency)
    wiring.sources.append(
        SqsSourceConfig(
            function_id=function.logical_id,
            event_name=event_name,
            queue_logical_id=queue.logical_id,
            queue_url=queue.url,
            queue_arn=queue_arn,
            batch_size=int(to_text(properties.get("BatchSize", 10))),
            batching_window=float(to_text(properties.get("MaximumBatchingWindowInSeconds", 0))),
            report_batch_item_failures="ReportBatchItemFailures"
            in (properties.get("FunctionResponseTypes") or []),
            visibility_timeout=visibility_timeout,
            concurrency=max(1, concurrency),
            enabled=truthy(properties.get("Enabled", True)),
            region=refs.template.region,
        )
    )


def _api_logical_id(
    refs: StackResources, api_types: tuple[str, ...], declared: Any, implicit: str
) -> str | None:
    if declared is None:
        return implicit
    identifier = to_text(declared)
    for api in refs.template.of_type(*api_types):
        if refs.describe(api.logical_id).ref == identifier:
            return api.logical_id
    return None


def _throttle(*layers: Mapping[str, Any] | None) -> TokenBucket | None:
    settings: dict[str, Any] = {}
    for layer in layers:
        settings.update(layer or {})
    burst, rate = settings.get("ThrottlingBurstLimit"), settings.get("ThrottlingRateLimit")
    if burst is None and rate is None:
        return None
    return TokenBucket(
        float(to_text(rate)) if rate is not None else _DEFAULT_RATE,
        int(to_text(burst)) if burst is not None else _DEFAULT_BURST,
    )


def _wire_route(
    refs: StackResources,
    function: TemplateResource,
    event_name: str,
    kind: str,
    properties: Mapping[str, Any],
    wiring: Wiring,
) -> None:
    http = kind == "HttpApi"
    api_types = (
        (HTTP_API_TYPE, "AWS::ApiGatewayV2::Api") if http else (REST_API_TYPE, "AWS::ApiGateway::RestApi")
    )
    declared_api = properties.get("ApiId" if http else "RestApiId")
    api_logical_id = _api_logical_id(
        refs, api_types, declared_api, IMPLICIT_HTTP_API if http else IMPLICIT_REST_API
    )
    api = refs.template.resources.get(api_logical_id or "")
    if api is None or api.type not in (HTTP_API_TYPE, REST_API_TYPE):
        _note(wiring, function, event_name, kind, f"API {declared_api} is not an API of this template")
        return
    wanted = {key: value for key, value in api.properties.items() if key in _API_PROPERTIES}
    api_properties = refs.template.evaluator(refs).resolve(wanted)
    method = to_text(properties.get("Method", "ANY" if http else ""))
    path = to_text(properties.get("Path", "$default" if http else ""))
    if not path or not method:
        _note(wiring, function, event_name, kind, "a REST API event needs Path and Method")
        return
    if http and "Method" not in properties and "Path" not in properties:
        path = "$default"
    authorizer = (properties.get("Auth") or {}).get("Authorizer")
    if authorizer is None:
        authorizer = (api_properties.get("Auth") or {}).get("DefaultAuthorizer")
    authorizer = None if authorizer in (None, "NONE") else to_text(authorizer)
    if authorizer not in (None, "AWS_IAM"):
        detail = f"authorizer {authorizer} is not emulated; the route is served without authorization"
        _note(wiring, function, event_name, kind, detail)
    route_key = "$default" if path == "$default" else f"{method.upper()} {path}"
    throttle = None
    if http:
        per_route = (api_properties.get("RouteSettings") or {}).get(route_key)
        throttle = _throttle(
            api_properties.get("DefaultRouteSettings"), per_route, properties.get("RouteSettings")
        )
    binary_types = tuple(to_text(value) for value in api_properties.get("BinaryMediaTypes") or [])
    try:
        route = Route(
            api_logical_id=api.logical_id,
            api_id=refs.describe(api.logical_id).ref,
            kind="http" if http else "rest",
            function_id=function.logical_id,
            event_name=event_name,
            method=method,
            path=path,
            payload_version="2.0"
            if http and to_text(properties.get("PayloadFormatVersion", "2.0")) == "2.0"
            else "1.0",
            iam_auth=authorizer == "AWS_IAM",
            stage=to_text(api_properties.get("StageName", "$default" if http else "Prod")),
            throttle=throttle,
            binary_media_types=binary_types,
        )
    except ValueError as exc:
        raise TemplateError(f"{function.logical_id}.Events.{event_name}: {exc}") from exc
    wiring.routes.append(route)


def _report_shadowed_routes(wiring: Wiring) -> None:
    seen: dict[str, Route] = {}
    for route in wiring.routes:
        if route.route_key in seen:
            first = seen[route.route_key]
            detail = f"route {route.route_key} is also served by {first.function_id}; that route wins locally"
            wiring.notes.append(
                NotEmulated(f"{route.function_id}.Events.{route.event_name}", "route", detail)
            )
        else:
            seen[route.route_key] = route


def _wire_schedule(
    refs: StackResources,
    function: TemplateResource,
    event_name: str,
    kind: str,
    properties: Mapping[str, Any],
    wiring: Wiring,
) -> None:
    template = refs.template
    scheduler = kind == "ScheduleV2"
    text = to_text(properties.get("ScheduleExpression" if scheduler else "Schedule", ""))
    timezone = to_text(properties.get("ScheduleExpressionTimezone", "UTC"))
    where = f"{function.logical_id}.Events.{event_name}"
    try:
        expression = parse_expression(text, timezone, allow_at=scheduler)
    except ScheduleExpressionError as exc:
        raise TemplateError(f"{where}: {exc}") from exc
    state = to_text(properties.get("State", "ENABLED")).upper()
    enabled = state != "DISABLED" and (scheduler or truthy(properties.get("Enabled", True)))
    name = to_text(properties.get("Name") or f"{template.stack_name}-{function.logical_id}{event_name}")
    if scheduler:
        group = to_text(properties.get("GroupName", "default"))
        arn = f"arn:{PARTITION}:scheduler:{template.region}:{ACCOUNT_ID}:schedule/{group}/{name}"
    else:
        arn = f"arn:{PARTITION}:events:{template.region}:{ACCOUNT_ID}:rule/{name}"
    retry = (properties.get("RetryPolicy") or {}).get(
        "MaximumRetryAttempts", SCHEDULER_DEFAULT_RETRY_ATTEMPTS
    )
    dead_letter = properties.get("DeadLetterConfig") or {}
    if dead_letter and not dead_letter.get("Arn"):
        _note(
            wiring, function, event_name, kind, "DeadLetterConfig: a queue SAM creates itself is not emulated"
        )
    for setting in ("FlexibleTimeWindow", "StartDate", "EndDate"):
        if setting in properties:
            _note(wiring, function, event_name, kind, f"{setting} is not applied locally")
    spec = ScheduleSpec(
        function_id=function.logical_id,
        event_name=event_name,
        kind="ScheduleV2" if scheduler else "Schedule",
        expression_text=text,
        expression=expression,
        input=properties.get("Input"),
        enabled=enabled,
        name=name,
        arn=arn,
        target_arn=refs.describe(function.logical_id).arn or "",
        retry_attempts=int(to_text(retry)),
        dead_letter_arn=to_text(dead_letter["Arn"]) if dead_letter.get("Arn") else None,
        region=template.region,
    )
    try:
        spec.event(datetime.now(UTC), "validation", 1)
    except json.JSONDecodeError as exc:
        raise TemplateError(
            f"{where}: Input is not JSON, so a Lambda target cannot receive it: {exc}"
        ) from exc
    wiring.schedules.append(spec)
