"""Lambda entry points: Powertools wiring, event parsing and the call of one use case. Nothing else.

Every object's function is built by `sync_handler(<object>)`; the webhook function by
`webhook_handler()`; the ops function by `billsync.handlers_ops.ops_handler()`. The engine is imported
on the first invocation, not when the module loads, so a cold start only pays for what the invocation
uses; X-Ray is loaded only when tracing is on.

Logs are JSON lines with a correlation id: the API request's id for webhooks and the ops API, the
`correlation_id` an operator's pull event carries (so a `sync now` from the ops API can be followed
into the run it started), and the invocation's request id otherwise.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics()

Handler = Callable[[dict[str, Any], Any], Any]


def traced(handler: Handler) -> Handler:
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "true").lower() == "false":
        from aws_lambda_powertools import Tracer

        return Tracer().capture_lambda_handler(handler, capture_response=False)
    return handler


def _warn(message: str, exc: Exception | None) -> None:
    logger.warning(message, extra={"error": f"{type(exc).__name__}: {exc}" if exc else None})


def _record_metric(object_name: str, direction: Any, outcome: Any, count: int) -> None:
    from aws_lambda_powertools.metrics import single_metric

    name = "".join(part.capitalize() for part in outcome.value.split("_"))
    with single_metric(name=name, unit=MetricUnit.Count, value=count, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="Object", value=object_name)
        metric.add_dimension(name="Direction", value=direction.value)


def _record_api_usage(ctx: Any) -> None:
    """Keep the Salesforce API usage this invocation last saw: one item, and the budget-left metric
    the `SalesforceApiBudgetLow` alarm watches (one series for the whole stack)."""
    from aws_lambda_powertools.metrics import single_metric

    from billsync.aws.state import DynamoState

    usage = ctx.salesforce.api_usage()
    if usage is None:
        return
    used, limit = usage
    state = ctx.state
    if isinstance(state, DynamoState):
        try:
            state.record_api_usage(used, limit, datetime.now(UTC))
        except Exception as exc:  # the usage item is for the status page; the sync itself is done
            _warn("the Salesforce API usage could not be recorded", exc)
    left = 100.0 * max(0, limit - used) / limit if limit else 0.0
    for name, unit, value in (
        ("SalesforceApiBudgetLeftPercent", MetricUnit.Percent, left),
        ("SalesforceApiRequestsUsed", MetricUnit.Count, float(used)),
    ):
        with single_metric(name=name, unit=unit, value=value, namespace=metrics.namespace) as metric:
            metric.add_dimension(name="service", value="billsync")


def _sink(ctx: Any) -> Any:
    from billsync import bootstrap
    from billsync.aws.state import DynamoState
    from billsync.usecases.outcomes import OutcomeSink

    return OutcomeSink(
        ctx.state,
        bootstrap.queues(),
        metrics=_record_metric,
        stats=ctx.state if isinstance(ctx.state, DynamoState) else None,
        mirror=ctx.salesforce if ctx.config.sync.mirror_log_to_salesforce else None,
        warn=_warn,
    )


# ------------------------------------------------------------------------------------ object sync


def sync_handler(object_name: str) -> Handler:
    """The handler of one object's function: its queue (SQS batches), its schedules and operators'
    pulls (`{"action": "pull", "direction": …}`)."""

    @metrics.log_metrics
    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> Any:
        logger.append_keys(object=object_name)
        logger.set_correlation_id(
            str(event.get("correlation_id") or getattr(context, "aws_request_id", "") or "") or None
        )
        if isinstance(event.get("Records"), list):
            return _queue_batch(object_name, event, context)
        if event.get("action") == "pull":
            return _pull(object_name, event, context)
        raise ValueError(f"unrecognised event for the {object_name} function: keys {sorted(event)}")

    return traced(handler)


def _queue_batch(object_name: str, event: dict[str, Any], context: Any) -> dict[str, Any]:
    from billsync import bootstrap
    from billsync.usecases.dlq import unwrap_redriven
    from billsync.usecases.messages import read_sqs_records
    from billsync.usecases.process import process_batch

    ctx = bootstrap.sync_context()
    metrics.add_metric(name="QueueMessages", unit=MetricUnit.Count, value=len(event["Records"]))
    # Dead letters moved back by an SQS message move task (`billsync dlq redrive`) are redriven changes.
    records = [{**r, "body": unwrap_redriven(str(r.get("body") or ""))} for r in event["Records"]]
    messages, unreadable = read_sqs_records(records)
    for message_id, reason in unreadable:
        logger.error(
            "unreadable message left for the dead-letter queue",
            extra={"message_id": message_id, "reason": reason},
        )
    try:
        report = process_batch(
            ctx, _sink(ctx), object_name, messages, max_receive_count=bootstrap.max_receive_count()
        )
    finally:
        _record_api_usage(ctx)
    logger.info(
        "batch processed",
        extra={
            "messages": len(messages),
            "outcomes": {
                k.value: sum(1 for r in report.results if r.outcome is k)
                for k in {r.outcome for r in report.results}
            },
            "retrying": report.delayed,
            "dead_lettered": report.dead_lettered,
        },
    )
    held = sum(1 for r in report.results if r.error and r.error.code == "API_BUDGET_RESERVE")
    if held:
        logger.warning("changes held back at the Salesforce API budget reserve", extra={"changes": held})
        metrics.add_metric(name="ApiBudgetReserveReached", unit=MetricUnit.Count, value=1)
    failures = [*report.failed_message_ids, *(message_id for message_id, _ in unreadable)]
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}


PULL_TRIGGERS = frozenset({"schedule", "sync_now", "backfill"})
MAX_BATCH_SIZE = 10_000


def _pull(object_name: str, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A scheduled pull, or an operator's (`sync_now`, `backfill`): those run in manual mode too, never
    when the object is switched off. Operator streams (`stream`) keep their own checkpoint."""
    from billsync import bootstrap
    from billsync.aws.state import DynamoState
    from billsync.config import parse_since
    from billsync.domain.models import Direction
    from billsync.usecases.pull import PullOptions, pull

    direction = Direction(event["direction"])
    trigger = str(event.get("trigger", "schedule"))
    if trigger not in PULL_TRIGGERS:
        raise ValueError(f"unknown pull trigger {trigger!r}; known: {', '.join(sorted(PULL_TRIGGERS))}")
    ctx = bootstrap.sync_context()
    if trigger == "schedule" and not ctx.config.object_automatic(object_name):
        logger.info("scheduled pull skipped: the object is switched off or manual")
        metrics.add_metric(name="PullsSkipped", unit=MetricUnit.Count, value=1)
        return {"streams": [], "skipped": "manual or switched off"}
    stream = event.get("stream")
    batch_size = event.get("batch_size")
    if batch_size is not None and not (isinstance(batch_size, int) and 1 <= batch_size <= MAX_BATCH_SIZE):
        raise ValueError(f"batch_size must be a whole number from 1 to {MAX_BATCH_SIZE}")
    options = PullOptions(
        since=parse_since(event["since"]) if event.get("since") else None,
        stream=str(stream) if stream else None,
        restart=bool(event.get("restart")),
        batch_size=batch_size,
        progress=ctx.state if stream and isinstance(ctx.state, DynamoState) else None,
        run_id=str(event["run_id"]) if event.get("run_id") else None,
        list_history=trigger == "backfill",
    )

    def seconds_left() -> float:
        return float(context.get_remaining_time_in_millis()) / 1000.0

    try:
        reports = pull(ctx, _sink(ctx), object_name, direction, seconds_left=seconds_left, options=options)
    finally:
        _record_api_usage(ctx)
    summary = [
        {
            "source": r.source,
            "status": r.status,
            "records": r.records,
            "pages": r.pages,
            "outcomes": r.outcomes,
            "window_start": r.window_start.isoformat() if r.window_start else None,
            "window_end": r.window_end.isoformat() if r.window_end else None,
            "detail": r.detail,
        }
        for r in reports
    ]
    logger.info(
        "pull finished",
        extra={"direction": direction.value, "trigger": trigger, "stream": stream, "streams": summary},
    )
    stopped = [r for r in reports if r.status == "budget"]
    if stopped:
        # The alarm's metric: the org's API budget is down to billsync's reserve; the pull resumes later.
        logger.warning(
            "pull stopped at the Salesforce API budget reserve", extra={"detail": stopped[0].detail}
        )
        metrics.add_metric(name="ApiBudgetReserveReached", unit=MetricUnit.Count, value=len(stopped))
    for mismatch in (r for r in reports if r.status == "org_mismatch"):
        logger.error(
            "pull stopped: the Salesforce org is not the pinned one", extra={"detail": mismatch.detail}
        )
    return {"streams": summary}


# ------------------------------------------------------------------------------------ webhooks


def webhook_handler() -> Handler:
    """The webhook function: `POST /webhooks/{source}` through API Gateway (HTTP API, payload 2.0)."""

    @metrics.log_metrics
    @logger.inject_lambda_context(clear_state=True, correlation_id_path="requestContext.requestId")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        source_key = (event.get("pathParameters") or {}).get("source", "")
        logger.append_keys(source=source_key)
        try:
            body = request_body(event)
        except ValueError as exc:
            return http_answer(400, {"error": str(exc)})
        answer = _accept(source_key, event.get("headers") or {}, body, context)
        metrics.add_metric(name=f"Webhook{answer.status}", unit=MetricUnit.Count, value=1)
        if answer.status >= 400:
            logger.warning(
                "webhook refused", extra={"status": answer.status, "reason": answer.body.get("error")}
            )
        return http_answer(answer.status, answer.body)

    return traced(handler)


def request_body(event: dict[str, Any]) -> bytes:
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(raw, validate=True)
        except ValueError:
            raise ValueError("the body is not valid base64") from None
    return raw.encode()


def _accept(source_key: str, headers: dict[str, str], body: bytes, context: Any) -> Any:
    from billsync import bootstrap
    from billsync.usecases.webhook import accept_webhook

    return accept_webhook(
        config=bootstrap.config(),
        source_key=source_key,
        headers=headers,
        body=body,
        connector_for=bootstrap.webhook_connector,
        secret_for=lambda name, refresh: bootstrap.secrets().get_json(name, refresh=refresh),
        queues=bootstrap.queues(),
        deduplicate=_deduplicator(context),
        now=datetime.now(UTC),
    )


_once: tuple[Any, Callable[..., Any]] | None = None


def _deduplicator(context: Any) -> Callable[[str, Callable[[], None]], None]:
    """Runs an action at most once per key (Powertools idempotency on the webhook event id)."""
    global _once  # noqa: PLW0603 - built once per execution environment
    if _once is None:
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        config = IdempotencyConfig(expires_after_seconds=3 * 24 * 3600)
        persistence = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE"])

        @idempotent_function(data_keyword_argument="key", persistence_store=persistence, config=config)
        def run_once(key: str, action: Callable[[], None]) -> dict[str, str]:
            action()
            return {"queued": key}

        _once = (config, run_once)
    config, run_once = _once
    config.register_lambda_context(context)

    def deduplicate(key: str, action: Callable[[], None]) -> None:
        run_once(key=key, action=action)

    return deduplicate


def http_answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
