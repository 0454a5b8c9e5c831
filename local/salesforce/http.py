"""HTTP plumbing shared by the resources: responses, bodies, the per-request context."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from local.salesforce.errors import ApiError
from local.salesforce.formats import dumps

if TYPE_CHECKING:
    from local.salesforce.auth import Session
    from local.salesforce.store import Txn

__all__ = ["JSON_TYPE", "CallContext", "json_body", "json_response", "no_content"]

JSON_TYPE = "application/json;charset=UTF-8"
CSV_TYPE = "text/csv"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(dumps(body), status=status, content_type=JSON_TYPE)
    if headers:
        for key, value in headers.items():
            response.headers[key] = value
    return response


def no_content(status: int = 204) -> Response:
    response = Response(b"", status=status)
    response.headers.pop("Content-Type", None)
    return response


def error_response(error: ApiError) -> Response:
    return json_response(error.body, error.status, error.headers)


def _parser_error(exc: json.JSONDecodeError, text: str) -> ApiError:
    ch = text[exc.pos] if exc.pos < len(text) else ""
    if ch:
        message = (
            f"Unexpected character ('{ch}' (code {ord(ch)})): expected a valid value (JSON String, Number, Array, "
            f"Object or token 'null', 'true' or 'false') at [line:{exc.lineno}, column:{exc.colno}]"
        )
    else:
        message = f"Unexpected end-of-input: expected close marker for Object at [line:{exc.lineno}, column:{exc.colno}]"
    return ApiError.request(400, "JSON_PARSER_ERROR", message)


def json_body(text: str) -> Any:
    """Parse a request body as Salesforce does; JSON_PARSER_ERROR when it is not JSON."""
    if not text.strip():
        raise ApiError.request(
            400, "JSON_PARSER_ERROR", "No content to map due to end-of-input at [line:1, column:0]"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _parser_error(exc, text) from None


@dataclass
class CallContext:
    """What a resource handler knows about the call it serves."""

    request: Request | None
    version: str
    session: Session
    body_text: str = ""
    #: the enclosing transaction when the call is a subrequest of ``/composite``
    txn: Txn | None = None
    #: the client name for ``changeOrigin`` when there is no request (Bulk API jobs)
    client: str | None = None
    #: the injected UNABLE_TO_LOCK_ROW decision for single-record calls
    inject_lock_failure: bool = False
    #: per-record lock-fault draws for collections (None: draw per record)
    draw_lock_fault: Any = None
    #: latency the call still owes (fixed + per record); writes pay it while holding row locks
    latency_due: bool = True
    records: int = 0
    #: subrequests of composite/batch count individually toward the daily budget
    extra_api_calls: int = 0
    api: str = "rest"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def http(self) -> Request:
        """The HTTP request of a REST call (Bulk API jobs run without one)."""
        if self.request is None:
            raise RuntimeError("this call has no HTTP request")
        return self.request

    @property
    def base_path(self) -> str:
        return f"/services/data/v{self.version}"

    @property
    def client_name(self) -> str:
        if self.client is not None or self.request is None:
            return self.client or ""
        header = self.request.headers.get("Sforce-Call-Options", "")
        for part in header.split(","):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == "client":
                return value.strip()
        return ""

    @property
    def change_origin(self) -> str:
        origin = f"com/salesforce/api/{self.api}/{self.version}"
        client = self.client_name
        return f"{origin};client={client}" if client else origin

    def body(self) -> Any:
        return json_body(self.body_text)
