"""The ops function: `POST /ops/sync` on the stack's HTTP API, authorised with IAM (SigV4).

A Salesforce button (through a named credential signing with AWS Signature Version 4) or an internal
tool asks for records or an object to be synced now; the function checks the request against the
deployment's configuration, queues the records or starts the object's pull, and answers 202 with what
it did — or 400 / 409 with the reason, having done nothing. It holds no credentials of either system:
it may only send to the objects' queues and invoke the objects' functions.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from billsync.handlers import Handler, http_answer, request_body, traced

logger = Logger()
metrics = Metrics()

SYNC_ROUTE = "POST /ops/sync"


@cache
def _catalog() -> Any:
    from billsync import bootstrap
    from billsync.mappings import MappingSet
    from billsync.usecases.catalog import object_catalog

    config = bootstrap.config()
    return object_catalog(config, MappingSet(config.mappings_path))


@cache
def _functions() -> Any:
    from billsync.aws.functions import LambdaFunctions

    return LambdaFunctions(None, dict(os.environ))


def ops_handler() -> Handler:
    @metrics.log_metrics
    @logger.inject_lambda_context(clear_state=True, correlation_id_path="requestContext.requestId")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        route = event.get("routeKey")
        if route != SYNC_ROUTE:
            return http_answer(404, {"error": f"no ops route {route!r}"})
        caller = ((event.get("requestContext") or {}).get("authorizer") or {}).get("iam") or {}
        logger.append_keys(caller=caller.get("userArn"))
        status, answer = _sync(event)
        metrics.add_metric(name=f"OpsSync{status}", unit=MetricUnit.Count, value=1)
        log = logger.info if status < 400 else logger.warning
        log("ops sync request answered", extra={"status": status, "answer": answer})
        return http_answer(status, answer)

    return traced(handler)


def _sync(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    from botocore.exceptions import BotoCoreError, ClientError

    from billsync import bootstrap
    from billsync.usecases.sync_now import SyncNowError, SyncNowRequest, sync_now

    try:
        body = json.loads(request_body(event) or b"null")
    except ValueError as exc:
        return 400, {"error": f"the body is not JSON: {exc}"}
    request_id = str((event.get("requestContext") or {}).get("requestId") or "") or None
    try:
        request = SyncNowRequest.from_json(body)
        result = sync_now(
            request, _catalog(), queues=bootstrap.queues(), functions=_functions(), request_id=request_id
        )
    except SyncNowError as exc:
        return exc.status, {"error": str(exc)}
    except (ClientError, BotoCoreError, RuntimeError) as exc:
        logger.exception("the ops request could not be carried out")
        return 502, {"error": f"could not queue or start the sync: {exc}"}
    return 202, result.to_json()
