"""The WSGI application: routing, authentication, API accounting, fault injection.

Every ``/services/data/vXX.X/...`` call is authenticated (401 with the body clients parse), checked
against the daily API budget (403 once spent), counted (``Sforce-Limit-Info`` on the response),
and may be hit by an injected fault. Logins (OAuth, SOAP), the identity URL, the versions list and
the control API are neither counted nor faulted.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from local.salesforce.bulk import Bulk
from local.salesforce.composite import Composite
from local.salesforce.control import Control
from local.salesforce.errors import SESSION_INVALID_BODY, ApiError, not_found
from local.salesforce.http import CallContext, error_response, json_response
from local.salesforce.org import Org
from local.salesforce.rest import Rest

__all__ = ["SalesforceApp"]

Handler = Callable[..., Response]
_VERSION = re.compile(r"^/services/data/v(\d+\.\d)(/.*)?$")
_SOAP = re.compile(r"/services/Soap/u/(\d+\.\d)(?:/.*)?$")
_IDENTITY = re.compile(r"^/id/([A-Za-z0-9]{15,18})/([A-Za-z0-9]{15,18})/?$")


class DroppedConnection(ConnectionAbortedError):
    """Raised after the socket was shut down so the server drops the request quietly."""


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    template: str
    handlers: dict[str, Handler]
    write: bool = False  # single-record writes may be hit by an injected UNABLE_TO_LOCK_ROW
    composite: bool = False


def _compile(template: str) -> re.Pattern[str]:
    regex = ""
    for part in template.strip("/").split("/"):
        if not part:
            continue
        if part == "{value}":
            regex += "/(.+)"
        elif part.startswith("{"):
            regex += "/([^/]+)"
        else:
            regex += "/" + re.escape(part)
    return re.compile("^" + regex + "$")


class SalesforceApp:
    def __init__(self, org: Org, base_url: Callable[[], str], info: Callable[[], dict[str, Any]]) -> None:
        self.org = org
        self.base_url = base_url
        self.rest = Rest(org)
        self.bulk = Bulk(org)
        self.composite = Composite(org, self.rest, self.dispatch_subrequest)
        self.control = Control(org, self.bulk, info)
        self.routes = self._routes()

    def _routes(self) -> list[Route]:
        rest, comp, bulk = self.rest, self.composite, self.bulk

        def route(template: str, write: bool = False, composite: bool = False, **handlers: Handler) -> Route:
            return Route(
                _compile(template), template, {m.upper(): h for m, h in handlers.items()}, write, composite
            )

        return [
            route("", get=lambda ctx: rest.resources(ctx, self.base_url())),
            route("/limits", get=rest.limits),
            route("/sobjects", get=rest.describe_global),
            route("/sobjects/{type}", write=True, get=rest.sobject_info, post=rest.create),
            route("/sobjects/{type}/describe", get=rest.describe),
            route("/sobjects/{type}/updated", get=rest.updated),
            route("/sobjects/{type}/deleted", get=rest.deleted),
            route("/sobjects/{type}/{id}", write=True, get=rest.get, patch=rest.update, delete=rest.delete),
            route(
                "/sobjects/{type}/{field}/{value}",
                write=True,
                get=rest.get_by_ext,
                patch=rest.upsert,
                delete=rest.delete_by_ext,
            ),
            route("/query", get=lambda ctx: rest.query(ctx, False)),
            route("/queryAll", get=lambda ctx: rest.query(ctx, True)),
            route("/query/{locator}", get=rest.query_more),
            route("/queryAll/{locator}", get=rest.query_more),
            route("/composite", composite=True, get=self._composite_resources, post=comp.composite),
            route("/composite/batch", post=comp.batch),
            route("/composite/tree/{type}", post=comp.tree),
            route("/composite/sobjects", post=comp.create, patch=comp.update, delete=comp.delete),
            route("/composite/sobjects/{type}", get=comp.retrieve, post=comp.retrieve),
            route("/composite/sobjects/{type}/{field}", patch=comp.upsert),
            route("/jobs/ingest", get=bulk.list_ingest, post=bulk.create_ingest),
            route(
                "/jobs/ingest/{id}", get=bulk.get_ingest, patch=bulk.patch_ingest, delete=bulk.delete_ingest
            ),
            route("/jobs/ingest/{id}/batches", put=bulk.upload),
            route("/jobs/ingest/{id}/{results}", get=bulk.results),
            route("/jobs/query", get=bulk.list_queries, post=bulk.create_query),
            route("/jobs/query/{id}", get=bulk.get_query, patch=bulk.patch_query, delete=bulk.delete_query),
            route("/jobs/query/{id}/results", get=bulk.query_results),
        ]

    def _composite_resources(self, ctx: CallContext) -> Response:
        b = ctx.base_path
        return json_response(
            {
                "tree": f"{b}/composite/tree",
                "batch": f"{b}/composite/batch",
                "sobjects": f"{b}/composite/sobjects",
                "graph": f"{b}/composite/graph",
            }
        )

    def start(self) -> None:
        self.bulk.start()

    def stop(self) -> None:
        self.bulk.stop()

    # -- WSGI ------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        response = self.handle(request)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/_emulator/"):
            return self.control.handle(request, path[len("/_emulator/") :])
        if path.endswith("/") and len(path) > 1 and path != "/services/data/":
            path = path.rstrip("/")
        if path.endswith("/services/oauth2/token"):
            self.org.count_call("POST /services/oauth2/token")
            if request.method != "POST":
                return json_response(
                    {"error": "invalid_request", "error_description": "must use HTTP POST"}, 400
                )
            return self.org.auth.token_response(request, self.base_url())
        if path.endswith("/services/oauth2/revoke"):
            self.org.count_call(f"{request.method} /services/oauth2/revoke")
            return self.org.auth.revoke_response(request)
        if path.endswith("/services/oauth2/authorize"):
            self.org.count_call("GET /services/oauth2/authorize")
            return self.org.auth.authorize_response(request)
        soap = _SOAP.search(path)
        if soap and request.method == "POST":
            self.org.count_call("POST /services/Soap/u/{version}")
            return self.org.auth.soap_login_response(
                request, self.base_url(), soap.group(1), is_sandbox=self.org.settings.is_sandbox
            )
        identity = _IDENTITY.match(path)
        if identity:
            self.org.count_call("GET /id/{org}/{user}")
            version = self.org.settings.api_versions[-1]
            return self.org.auth.identity_response(
                request, self.base_url(), version, identity[1], identity[2]
            )
        if path in ("/services/data", "/services/data/"):
            self.org.count_call("GET /services/data")
            return self.rest.versions(self.base_url())
        match = _VERSION.match(path)
        if match:
            return self.api(request, match.group(1), (match.group(2) or "").rstrip("/"))
        return error_response(not_found())

    def match(self, method: str, rest_path: str) -> tuple[Route, Handler, tuple[str, ...]]:
        allowed: list[str] = []
        for route in self.routes:
            m = route.pattern.match(rest_path)
            if m is None:
                continue
            handler = route.handlers.get(method) or (route.handlers.get("GET") if method == "HEAD" else None)
            if handler is None:
                allowed = sorted(route.handlers)
                continue
            return route, handler, m.groups()
        if allowed:
            methods = ",".join(["HEAD", *allowed])
            raise ApiError.request(
                405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {methods}"
            )
        raise not_found()

    def api(self, request: Request, version: str, rest_path: str) -> Response:
        org = self.org
        if version not in org.settings.api_versions:
            org.count_call(f"{request.method} /services/data/v{{version}}")
            return error_response(not_found())
        token = org.auth.bearer(request)
        session = org.auth.session_for(token)
        try:
            route, handler, params = self.match(request.method, rest_path)
        except ApiError as exc:
            org.count_call(f"{request.method} (no such resource)")
            if session is None:
                return json_response(SESSION_INVALID_BODY, 401)
            return error_response(exc)
        org.count_call(f"{request.method} {route.template or '/'}")
        if session is None:
            return json_response(SESSION_INVALID_BODY, 401)
        if org.api_used >= org.settings.daily_api_limit:
            return self.limit_exceeded()
        ctx = CallContext(request, version, session, body_text=request.get_data(as_text=True))
        eligible: tuple[str, ...] = (
            "SERVER_UNAVAILABLE",
            "REQUEST_LIMIT_EXCEEDED",
            "INVALID_SESSION_ID",
            "DROPPED_CONNECTION",
        )
        single_write = route.write and request.method in ("POST", "PATCH", "DELETE")
        if single_write or (route.composite and request.method == "POST"):
            eligible = (*eligible, "UNABLE_TO_LOCK_ROW")
        fault = org.faults.draw(eligible)
        if fault is not None and fault != "UNABLE_TO_LOCK_ROW":
            return self.fault_response(request, fault, token, ctx)
        ctx.inject_lock_failure = fault == "UNABLE_TO_LOCK_ROW"
        if not org.spend_api(1):
            return self.limit_exceeded()
        try:
            response = handler(ctx, *params)
        except ApiError as exc:
            response = error_response(exc)
        except Exception:  # any bug becomes Salesforce's 500, never a dropped request
            traceback.print_exc(file=sys.stderr)
            response = json_response(
                [
                    {
                        "errorCode": "UNKNOWN_EXCEPTION",
                        "message": "An unexpected error occurred. Please include this ErrorId if you contact "
                        "support: 1234567890-12345 (-1234567890)",
                    }
                ],
                500,
            )
        if ctx.extra_api_calls:
            org.spend_api(ctx.extra_api_calls)
        org.latency(ctx, ctx.records)
        response.headers["Sforce-Limit-Info"] = org.limit_info()
        return response

    def limit_exceeded(self) -> Response:
        return json_response(
            [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
            403,
            {"Sforce-Limit-Info": self.org.limit_info()},
        )

    def fault_response(self, request: Request, fault: str, token: str | None, ctx: CallContext) -> Response:
        org = self.org
        org.latency(ctx, 0)
        if fault == "SERVER_UNAVAILABLE":
            return json_response(
                [
                    {
                        "errorCode": "SERVER_UNAVAILABLE",
                        "message": "Server is temporarily unavailable. Please try again later.",
                    }
                ],
                503,
            )
        if fault == "REQUEST_LIMIT_EXCEEDED":
            return self.limit_exceeded()
        if fault == "INVALID_SESSION_ID":
            if token:
                org.auth.invalidate(token)
            return json_response(SESSION_INVALID_BODY, 401)
        sock = request.environ.get("werkzeug.socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        raise DroppedConnection("the local org dropped the connection (injected fault)")

    # -- subrequests (composite, batch) ----------------------------------------------------------

    def dispatch_subrequest(self, ctx: CallContext, method: str, url: str, body: Any) -> Response:
        """Run one subrequest of ``/composite`` or ``/composite/batch`` with the caller's session."""
        parts = urlsplit(url)
        match = _VERSION.match(parts.path)
        if match is None:
            return error_response(not_found())
        version = match.group(1)
        if version not in self.org.settings.api_versions:
            return error_response(not_found())
        parent = ctx.request
        headers = dict(ctx.extra.get("headers") or (parent.headers if parent is not None else {}))
        headers.pop("Content-Length", None)
        data = json.dumps(body) if body is not None else ""
        builder = EnvironBuilder(
            path=parts.path,
            method=method,
            query_string=parts.query,
            headers=headers,
            data=data.encode("utf-8"),
            content_type="application/json",
        )
        ctx.request = builder.get_request()
        ctx.version = version
        ctx.body_text = data
        try:
            route, handler, params = self.match(method, (match.group(2) or "").rstrip("/"))
            if (
                route.template.startswith(("/composite/batch", "/composite/tree", "/jobs"))
                or route.template == "/composite"
            ):
                raise not_found()
            return handler(ctx, *params)
        except ApiError as exc:
            return error_response(exc)
