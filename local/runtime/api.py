"""Serve every API route of the template on one plain-HTTP server, the way API Gateway calls Lambda.

HTTP API routes receive payload format 2.0 events (or 1.0 when the event asks for it) and REST API
routes the 1.0 proxy event; responses are translated back per format. API Gateway's own answers are
kept: ``{"message":"Not Found"}`` (404), ``Request Entity Too Large`` (413, payloads over 10 MB),
``Too Many Requests`` (429, route throttling with a token bucket), ``Forbidden`` (403, ``AWS_IAM``
routes without a valid SigV4 signature made with the local credentials) and ``Internal Server Error``
(500 on HTTP APIs, 502 ``Internal server error`` on REST APIs) when the function fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from local.runtime.payloads import (
    http_event_v2,
    http_response_v2,
    message_response,
    new_request_id,
    proxy_event_v1,
    proxy_response_v1,
    raw_uri,
)
from local.runtime.routes import Route
from local.runtime.sigv4 import verify_sigv4

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024


class Outcome(Protocol):
    """The part of an invocation result the API needs."""

    @property
    def ok(self) -> bool: ...

    @property
    def payload(self) -> Any: ...

    @property
    def error(self) -> dict[str, Any] | None: ...


Invoke = Callable[[str, Any, str], Outcome]
Control = Callable[[Request], Response]


class ApiGateway:
    """The WSGI application: control routes under ``/_local/``, then the template's API routes."""

    def __init__(
        self,
        routes: list[Route],
        invoke: Invoke,
        control: Control,
        *,
        access_key: str,
        secret_key: str,
    ) -> None:
        self.routes = sorted(routes, key=Route.rank)
        self._invoke = invoke
        self._control = control
        self._access_key = access_key
        self._secret_key = secret_key

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        request.max_content_length = MAX_PAYLOAD_BYTES
        response = self._control(request) if request.path.startswith("/_local/") else self.handle(request)
        return response(environ, start_response)

    def reset_throttles(self) -> None:
        for route in self.routes:
            if route.throttle is not None:
                route.throttle.reset()

    def handle(self, request: Request) -> Response:
        try:
            body = request.get_data(cache=True)
        except RequestEntityTooLarge:
            return message_response(413, "Request Entity Too Large")
        route, parameters = self._match(request.method, request.path)
        if route is None:
            return message_response(404, "Not Found")
        if route.throttle is not None and not route.throttle.take():
            return message_response(429, "Too Many Requests")
        identity = None
        if route.iam_auth:
            identity = verify_sigv4(
                method=request.method,
                url=f"{request.scheme}://{request.host}{raw_uri(request)}",
                headers=dict(request.headers.items()),
                body=body,
                access_key=self._access_key,
                secret_key=self._secret_key,
            )
            if identity is None:
                return message_response(403, "Forbidden")
        identifier = new_request_id()
        if route.kind == "http" and route.payload_version == "2.0":
            event = http_event_v2(request, route, parameters, body, identifier, identity)
        else:
            event = proxy_event_v1(request, route, parameters, body, identifier, identity)
        outcome = self._invoke(route.function_id, event, f"api:{route.event_name}")
        response = self._translate(route, outcome)
        if route.kind == "http":
            response.headers["apigw-requestid"] = identifier
        else:
            response.headers["x-amzn-RequestId"] = identifier
        return response

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for route in self.routes:
            parameters = route.match(method, path)
            if parameters is not None:
                return route, parameters
        return None, {}

    @staticmethod
    def _translate(route: Route, outcome: Outcome) -> Response:
        failure = (500, "Internal Server Error") if route.kind == "http" else (502, "Internal server error")
        if not outcome.ok:
            return message_response(*failure)
        try:
            if route.kind == "http" and route.payload_version == "2.0":
                return http_response_v2(outcome.payload)
            return proxy_response_v1(outcome.payload)
        except (TypeError, ValueError, KeyError):
            return message_response(*failure)
