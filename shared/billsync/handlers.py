"""Lambda entry points: Powertools wiring, event parsing and the call of one use case. Nothing else.

Every object's function is built by `sync_handler(<object>)`; the webhook function by
`webhook_handler()`. The engine is imported on the first invocation, not when the module loads, so
a cold start only pays for what the invocation uses; X-Ray is loaded only when tracing is on.
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


def _traced(handler: Handler) -> Handler:
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "true").lower() == "false":
        from aws_lambda_powertools import Tracer

        return Tracer().capture_lambda_handler(handler, capture_response=False)
    return handler


def _record_metric(object_name: str, direction: Any, outcome: Any, count: int) -> None:
    from aws_lambda_powertools.metrics import single_metric

    name = "".join(part.capitalize() for part in outcome.value.split("_"))
    with single_metric(name=name, unit=MetricUnit.Count, value=count, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="Object", value=object_name)
        metric.add_dimension(name="Direction", value=direction.value)


# ------------------------------------------------------------------------------------ object sync


def sync_handler(object_name: str) -> Handler:
    """The handler of one object's function: its queue (SQS batches) and its schedules (pulls)."""

    @metrics.log_metrics
    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> Any:
        logger.append_keys(object=object_name)
        if isinstance(event.get("Records"), list):
            return _queue_batch(object_name, event, context)
        if event.get("action") == "pull":
            return _pull(object_name, event, context)
        raise ValueError(f"unrecognised event for the {object_name} function: keys {sorted(event)}")

    return _traced(handler)


def _queue_batch(object_name: str, event: dict[str, Any], context: Any) -> dict[str, Any]:
    from billsync import bootstrap
    from billsync.usecases.messages import read_sqs_records
    from billsync.usecases.outcomes import OutcomeSink
    from billsync.usecases.process import process_batch

    ctx = bootstrap.sync_context()
    metrics.add_metric(name="QueueMessages", unit=MetricUnit.Count, value=len(event["Records"]))
    messages, unreadable = read_sqs_records(event["Records"])
    for message_id, reason in unreadable:
        logger.error(
            "unreadable message left for the dead-letter queue",
            extra={"message_id": message_id, "reason": reason},
        )
    sink = OutcomeSink(ctx.state, bootstrap.queues(), metrics=_record_metric)
    report = process_batch(ctx, sink, object_name, messages, max_receive_count=bootstrap.max_receive_count())
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
    failures = [*report.failed_message_ids, *(message_id for message_id, _ in unreadable)]
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}


def _pull(object_name: str, event: dict[str, Any], context: Any) -> dict[str, Any]:
    from billsync import bootstrap
    from billsync.config import parse_since
    from billsync.domain.models import Direction
    from billsync.usecases.outcomes import OutcomeSink
    from billsync.usecases.pull import PullOptions, pull

    direction = Direction(event["direction"])
    ctx = bootstrap.sync_context()
    if event.get("trigger", "schedule") == "schedule" and not ctx.config.object_automatic(object_name):
        logger.info("scheduled pull skipped: the object is switched off or manual")
        metrics.add_metric(name="PullsSkipped", unit=MetricUnit.Count, value=1)
        return {"streams": [], "skipped": "manual or switched off"}
    since = parse_since(event["since"]) if event.get("since") else None
    sink = OutcomeSink(ctx.state, bootstrap.queues(), metrics=_record_metric)

    def seconds_left() -> float:
        return float(context.get_remaining_time_in_millis()) / 1000.0

    reports = pull(
        ctx, sink, object_name, direction, seconds_left=seconds_left, options=PullOptions(since=since)
    )
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
    logger.info("pull finished", extra={"direction": direction.value, "streams": summary})
    for stopped in (r for r in reports if r.status == "org_mismatch"):
        logger.error(
            "pull stopped: the Salesforce org is not the pinned one", extra={"detail": stopped.detail}
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
            body = _body(event)
        except ValueError as exc:
            return _answer(400, {"error": str(exc)})
        answer = _accept(source_key, event.get("headers") or {}, body, context)
        metrics.add_metric(name=f"Webhook{answer.status}", unit=MetricUnit.Count, value=1)
        if answer.status >= 400:
            logger.warning(
                "webhook refused", extra={"status": answer.status, "reason": answer.body.get("error")}
            )
        return _answer(answer.status, answer.body)

    return _traced(handler)


def _body(event: dict[str, Any]) -> bytes:
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


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
