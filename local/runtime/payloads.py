"""API Gateway's Lambda payload formats: the events it sends (2.0 and 1.0) and how it reads responses.

HTTP APIs pass bodies whose content type is text (``text/*``, JSON, XML, JavaScript) as text and
base64-encode every other body, form posts included; REST APIs base64-encode only the API's
``BinaryMediaTypes``. In format 2.0 a response without ``statusCode`` is a 200 JSON body; format 1.0
requires ``statusCode``.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, unquote_plus

from werkzeug.wrappers import Request, Response

from local.runtime.routes import Route
from local.runtime.sigv4 import CallerIdentity
from local.runtime.template import ACCOUNT_ID

TEXT_CONTENT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def message_response(status: int, message: str) -> Response:
    return Response(json.dumps({"message": message}), status=status, content_type="application/json")


def new_request_id() -> str:
    return base64.b64encode(os.urandom(10)).decode().replace("+", "A").replace("/", "B")


def raw_uri(request: Request) -> str:
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw:
        return str(raw)
    query = request.query_string.decode("latin-1")
    return request.path + (f"?{query}" if query else "")


def _clock() -> tuple[str, int]:
    now = datetime.now(UTC)
    stamp = f"{now:%d}/{_MONTHS[now.month - 1]}/{now:%Y:%H:%M:%S} +0000"
    return stamp, int(now.timestamp() * 1000)


def is_text_content(content_type: str | None) -> bool:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return bool(kind) and any(kind.startswith(prefix) for prefix in TEXT_CONTENT_TYPES)


def _encode_body(body: bytes, as_text: bool) -> tuple[str, bool]:
    if as_text:
        return body.decode("utf-8", "replace"), False
    return base64.b64encode(body).decode(), True


def _query_values(raw_query: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for pair in raw_query.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        values.setdefault(unquote_plus(key), []).append(unquote_plus(value))
    return values


def _forwarding_headers(request: Request) -> dict[str, str]:
    port = str(request.server[1]) if request.server and request.server[1] else ""
    epoch = f"{int(time.time()):08x}"
    return {
        "x-amzn-trace-id": f"Root=1-{epoch}-{os.urandom(12).hex()}",
        "x-forwarded-for": request.remote_addr or "127.0.0.1",
        "x-forwarded-port": port,
        "x-forwarded-proto": request.scheme,
    }


def http_event_v2(
    request: Request,
    route: Route,
    parameters: Mapping[str, str],
    body: bytes,
    request_id: str,
    identity: CallerIdentity | None,
) -> dict[str, Any]:
    """The payload format 2.0 event API Gateway HTTP APIs send to Lambda."""
    raw_path = raw_uri(request).split("?", 1)[0]
    raw_query = request.query_string.decode("latin-1")
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    cookie_header = headers.pop("cookie", "")
    headers.update(_forwarding_headers(request))
    host = request.host
    stamp, epoch_ms = _clock()
    context: dict[str, Any] = {
        "accountId": ACCOUNT_ID,
        "apiId": route.api_id,
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": raw_path,
            "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "sourceIp": request.remote_addr or "127.0.0.1",
            "userAgent": request.headers.get("User-Agent", ""),
        },
        "requestId": request_id,
        "routeKey": route.route_key,
        "stage": route.stage,
        "time": stamp,
        "timeEpoch": epoch_ms,
    }
    if identity is not None:
        context["authorizer"] = {
            "iam": {
                "accessKey": identity.access_key,
                "accountId": identity.account_id,
                "callerId": identity.user_id,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": identity.user_arn,
                "userId": identity.user_id,
            }
        }
    event: dict[str, Any] = {"version": "2.0", "routeKey": route.route_key, "rawPath": raw_path}
    event["rawQueryString"] = raw_query
    cookies = [cookie.strip() for cookie in cookie_header.split(";") if cookie.strip()]
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    query = _query_values(raw_query)
    if query:
        event["queryStringParameters"] = {key: ",".join(values) for key, values in query.items()}
    event["requestContext"] = context
    if parameters:
        event["pathParameters"] = {key: unquote(value) for key, value in parameters.items()}
    if body:
        event["body"], event["isBase64Encoded"] = _encode_body(body, is_text_content(request.content_type))
    else:
        event["isBase64Encoded"] = False
    return event


def proxy_event_v1(
    request: Request,
    route: Route,
    parameters: Mapping[str, str],
    body: bytes,
    request_id: str,
    identity: CallerIdentity | None,
) -> dict[str, Any]:
    """The payload format 1.0 event (REST APIs, and HTTP APIs that ask for 1.0)."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    headers.update({name.title(): value for name, value in _forwarding_headers(request).items()})
    query = _query_values(request.query_string.decode("latin-1"))
    stamp, epoch_ms = _clock()
    host = request.host
    resource_path = "/" if route.is_default else route.path
    path = request.path
    context_path = f"/{route.stage}{path}" if route.kind == "rest" else path
    identity_fields: dict[str, Any] = {
        "accessKey": None,
        "accountId": None,
        "caller": None,
        "cognitoAuthenticationProvider": None,
        "cognitoAuthenticationType": None,
        "cognitoIdentityId": None,
        "cognitoIdentityPoolId": None,
        "principalOrgId": None,
        "sourceIp": request.remote_addr or "127.0.0.1",
        "user": None,
        "userAgent": request.headers.get("User-Agent", ""),
        "userArn": None,
    }
    if identity is not None:
        identity_fields.update(
            accessKey=identity.access_key,
            accountId=identity.account_id,
            caller=identity.user_id,
            user=identity.user_id,
            userArn=identity.user_arn,
        )
    if route.kind == "rest":
        as_text = not _is_binary(request.content_type, route.binary_media_types)
    else:
        as_text = is_text_content(request.content_type)
    body_text, encoded = _encode_body(body, as_text) if body else (None, False)
    event: dict[str, Any] = {}
    if route.kind == "http":
        event["version"] = "1.0"
    event.update(
        {
            "resource": resource_path,
            "path": path,
            "httpMethod": request.method,
            "headers": headers,
            "multiValueHeaders": {name: [value] for name, value in headers.items()},
            "queryStringParameters": {key: values[-1] for key, values in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "apiId": route.api_id,
                "domainName": host,
                "domainPrefix": host.split(".", 1)[0],
                "extendedRequestId": request_id,
                "httpMethod": request.method,
                "identity": identity_fields,
                "path": context_path,
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "requestId": request_id,
                "requestTime": stamp,
                "requestTimeEpoch": epoch_ms,
                "resourceId": route.api_id[:6],
                "resourcePath": resource_path,
                "stage": route.stage,
            },
            "pathParameters": {key: unquote(value) for key, value in parameters.items()} or None,
            "stageVariables": None,
            "body": body_text,
            "isBase64Encoded": encoded,
        }
    )
    return event


def _is_binary(content_type: str | None, binary_media_types: tuple[str, ...]) -> bool:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    for media_type in binary_media_types:
        pattern = media_type.replace("~1", "/").lower()
        if pattern in ("*/*", kind) or (pattern.endswith("/*") and kind.startswith(pattern[:-1])):
            return True
    return False


# --------------------------------------------------------------------------------------- responses


def _body_bytes(body: Any, encoded: Any) -> bytes:
    if body is None:
        return b""
    text = body if isinstance(body, str) else json.dumps(body)
    return base64.b64decode(text) if encoded is True else text.encode()


def http_response_v2(payload: Any) -> Response:
    """Payload format 2.0: a dict with statusCode is a response; anything else is a 200 JSON body."""
    if not (isinstance(payload, dict) and "statusCode" in payload):
        body = payload if isinstance(payload, str) else json.dumps(payload)
        return Response(body, status=200, content_type="application/json")
    response = Response(
        _body_bytes(payload.get("body"), payload.get("isBase64Encoded")), status=int(payload["statusCode"])
    )
    response.headers.remove("Content-Type")
    for name, value in (payload.get("headers") or {}).items():
        response.headers[name] = str(value)
    for cookie in payload.get("cookies") or []:
        response.headers.add("Set-Cookie", str(cookie))
    return response


def proxy_response_v1(payload: Any) -> Response:
    """Payload format 1.0: the function must return statusCode, headers and body."""
    if not (isinstance(payload, dict) and "statusCode" in payload):
        raise ValueError("a 1.0 proxy response needs a statusCode")
    response = Response(
        _body_bytes(payload.get("body"), payload.get("isBase64Encoded")), status=int(payload["statusCode"])
    )
    response.headers.remove("Content-Type")
    for name, values in (payload.get("multiValueHeaders") or {}).items():
        for value in values:
            response.headers.add(name, str(value))
    for name, value in (payload.get("headers") or {}).items():
        response.headers[name] = str(value)
    return response
