"""The control API under ``/_local/`` on the API server, so another process can drive a running stack.

=====================================================  ====================================================
``GET  /_local/resources``                             logical id → type, physical name, ref, ARN, URL
``GET  /_local/outputs``                               the template's Outputs, resolved
``GET  /_local/not-emulated``                          what the stack accepts without acting on it
``GET  /_local/event-sources``                         SQS mappings, routes and schedules
``GET  /_local/invocations``                           every invocation so far
``POST /_local/invoke/<LogicalId>``                    invoke synchronously; the body is the event
``POST /_local/schedules/<LogicalId>/<Event>/fire``    fire a schedule (``?wait_retries=true``)
``POST /_local/drain?timeout=30``                      200 once idle, 504 naming what is still busy
``POST /_local/workers/<LogicalId>/kill``              SIGKILL the function's workers
``POST /_local/reset``                                 purge queues, empty tables
``POST /_local/event-sources/pause`` / ``resume``      stop / restart the SQS pollers
``POST /_local/lambda/2015-03-31/functions/<name>/``   Lambda's Invoke API (``RequestResponse``, ``Event``,
``invocations``                                        ``DryRun``) by function name, ARN or logical id
=====================================================  ====================================================

The last route answers as Lambda does, so a boto3 ``lambda`` client whose endpoint is
``<api url>/_local/lambda`` invokes the stack's functions (the operator command line does so).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from local.runtime.stack import LocalStack

_ROUTES = Map(
    [
        Rule("/_local/resources", endpoint="resources", methods=["GET"]),
        Rule("/_local/outputs", endpoint="outputs", methods=["GET"]),
        Rule("/_local/not-emulated", endpoint="not_emulated", methods=["GET"]),
        Rule("/_local/event-sources", endpoint="event_sources", methods=["GET"]),
        Rule("/_local/invocations", endpoint="invocations", methods=["GET"]),
        Rule("/_local/invoke/<function>", endpoint="invoke", methods=["POST"]),
        Rule("/_local/schedules/<function>/<event>/fire", endpoint="fire", methods=["POST"]),
        Rule("/_local/drain", endpoint="drain", methods=["POST"]),
        Rule("/_local/workers/<function>/kill", endpoint="kill", methods=["POST"]),
        Rule("/_local/reset", endpoint="reset", methods=["POST"]),
        Rule("/_local/event-sources/pause", endpoint="pause", methods=["POST"]),
        Rule("/_local/event-sources/resume", endpoint="resume", methods=["POST"]),
        Rule(
            "/_local/lambda/2015-03-31/functions/<function>/invocations",
            endpoint="lambda_invoke",
            methods=["POST"],
        ),
    ]
)
_INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")


def _json(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value, default=str), status=status, content_type="application/json")


class ControlApi:
    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack

    def __call__(self, request: Request) -> Response:
        adapter = _ROUTES.bind_to_environ(request.environ)
        try:
            endpoint, arguments = adapter.match()
        except NotFound:
            return _json({"message": "Not Found"}, 404)
        except HTTPException as exc:
            return _json({"message": exc.description}, exc.code or 400)
        try:
            return self._dispatch(str(endpoint), arguments, request)
        except KeyError as exc:
            return _json({"message": str(exc.args[0])}, 404)
        except TimeoutError as exc:
            return _json({"message": str(exc)}, 504)

    def _dispatch(self, endpoint: str, arguments: Mapping[str, Any], request: Request) -> Response:
        stack = self._stack
        if endpoint == "resources":
            return _json({logical_id: resource.to_json() for logical_id, resource in stack.resources.items()})
        if endpoint == "outputs":
            return _json(stack.outputs)
        if endpoint == "not_emulated":
            return _json(
                [{"logical_id": n.logical_id, "type": n.type, "detail": n.detail} for n in stack.not_emulated]
            )
        if endpoint == "event_sources":
            return _json(stack.event_sources)
        if endpoint == "invocations":
            return _json([record.to_json() for record in stack.invocations])
        if endpoint == "invoke":
            event = json.loads(request.get_data() or b"{}")
            return _json(stack.invoke(arguments["function"], event).to_json())
        if endpoint == "fire":
            wait = request.args.get("wait_retries", "false").lower() == "true"
            return _json(
                stack.fire_schedule(arguments["function"], arguments["event"], wait_retries=wait).to_json()
            )
        if endpoint == "drain":
            stack.drain(float(request.args.get("timeout", "30")))
            return _json({"drained": True})
        if endpoint == "kill":
            return _json({"killed": stack.kill_worker(arguments["function"])})
        if endpoint == "reset":
            stack.reset_state()
            return _json({"reset": True})
        if endpoint == "pause":
            stack.pause_event_sources()
            return _json({"paused": True})
        if endpoint == "lambda_invoke":
            return self._lambda_invoke(str(arguments["function"]), request)
        stack.resume_event_sources()
        return _json({"paused": False})

    # ---------------------------------------------------------------------------- Lambda's Invoke API

    def _function_id(self, name: str) -> str | None:
        """A function's logical id from its name, its ARN (with or without a qualifier) or its logical id."""
        for logical_id, plan in self._stack.functions.items():
            if name in (logical_id, plan.function_name, plan.function_arn) or name.startswith(
                f"{plan.function_arn}:"
            ):
                return logical_id
        return None

    def _lambda_invoke(self, name: str, request: Request) -> Response:
        logical_id = self._function_id(name)
        if logical_id is None:
            return _lambda_error(404, "ResourceNotFoundException", f"Function not found: {name}")
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind not in _INVOCATION_TYPES:
            return _lambda_error(400, "InvalidParameterValueException", f"invalid invocation type {kind}")
        try:
            event = json.loads(request.get_data() or b"{}")
        except ValueError:
            return _lambda_error(
                400, "InvalidRequestContentException", "Could not parse request body into json"
            )
        if kind == "DryRun":
            return Response(status=204)
        if kind == "Event":
            self._stack.invoke_async(logical_id, event)
            return Response(status=202)
        result = self._stack.invoke(logical_id, event)
        response = Response(
            json.dumps(result.payload if result.ok else result.error, default=str),
            status=200,
            content_type="application/json",
        )
        response.headers["X-Amz-Executed-Version"] = "$LATEST"
        if not result.ok:
            response.headers["X-Amz-Function-Error"] = "Unhandled"
        return response


def _lambda_error(status: int, code: str, message: str) -> Response:
    response = Response(
        json.dumps({"Type": "User", "message": message}), status=status, content_type="application/json"
    )
    response.headers["x-amzn-ErrorType"] = code
    return response
