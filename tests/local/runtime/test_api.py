"""The API server: API Gateway's events, response translation and its own answers, over real HTTP."""

from __future__ import annotations

import base64
import json
from http.client import HTTPConnection
from urllib.parse import urlsplit

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local.runtime import LocalStack
from local.runtime.api import MAX_PAYLOAD_BYTES
from local.runtime.payloads import is_text_content
from local.runtime.routes import Route
from local.runtime.sigv4 import verify_sigv4


def client() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def test_http_api_event_is_payload_format_2(app_stack: LocalStack) -> None:
    response = client().post(
        f"{app_stack.api_url}/echo/acme?x=1&x=2&y=hello%20world",
        data="a=1&b=two",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Custom": "Value",
            "Cookie": "session=abc; theme=dark",
            "User-Agent": "local-test",
        },
    )
    assert response.status_code == 200
    assert response.headers["apigw-requestid"]
    event = response.json()
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /echo/{source}"
    assert event["rawPath"] == "/echo/acme"
    assert event["rawQueryString"] == "x=1&x=2&y=hello%20world"
    assert event["cookies"] == ["session=abc", "theme=dark"]
    assert event["headers"]["x-custom"] == "Value"
    assert "cookie" not in event["headers"]
    assert all(name == name.lower() for name in event["headers"])
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert event["queryStringParameters"] == {"x": "1,2", "y": "hello world"}
    assert event["pathParameters"] == {"source": "acme"}
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"a=1&b=two"
    context = event["requestContext"]
    assert context["accountId"] == "123456789012"
    assert context["apiId"] == app_stack.resources["Api"].ref
    assert context["domainName"] == urlsplit(app_stack.api_url).netloc
    assert context["domainPrefix"] == "127"
    assert context["http"] == {
        "method": "POST",
        "path": "/echo/acme",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "local-test",
    }
    assert context["requestId"] == response.headers["apigw-requestid"]
    assert (context["routeKey"], context["stage"]) == ("POST /echo/{source}", "$default")
    assert isinstance(context["timeEpoch"], int)
    assert context["time"].endswith(" +0000")


def test_text_bodies_arrive_as_text_and_empty_ones_are_left_out(app_stack: LocalStack) -> None:
    event = client().post(f"{app_stack.api_url}/echo/json", json={"id": "evt_1"}).json()
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == {"id": "evt_1"}
    assert "queryStringParameters" not in event
    assert "cookies" not in event
    empty = client().post(f"{app_stack.api_url}/echo/none").json()
    assert "body" not in empty
    assert empty["isBase64Encoded"] is False


def test_response_translation_for_payload_format_2(app_stack: LocalStack) -> None:
    plain = client().get(f"{app_stack.api_url}/plain")
    assert (plain.status_code, plain.headers["Content-Type"], plain.json()) == (
        200,
        "application/json",
        {"hello": "world"},
    )
    files = client().get(f"{app_stack.api_url}/files/reports/2024/summary.pdf")
    assert files.status_code == 201
    assert files.content == b"\x00\x01binary"
    assert files.headers["x-file"] == "reports/2024/summary.pdf"
    assert files.raw.headers.getlist("Set-Cookie") == ["session=abc; Path=/", "theme=dark"]


def test_api_gateway_answers_for_unknown_routes_failures_and_oversized_payloads(
    app_stack: LocalStack,
) -> None:
    session = client()
    for method, path in [("GET", "/nowhere"), ("POST", "/plain"), ("GET", "/echo/x/y")]:
        response = session.request(method, f"{app_stack.api_url}{path}")
        assert (response.status_code, response.json()) == (404, {"message": "Not Found"})
    failed = session.get(f"{app_stack.api_url}/fail")
    assert (failed.status_code, failed.json()) == (500, {"message": "Internal Server Error"})
    assert any(r.trigger == "api:Fail" and not r.ok for r in app_stack.invocations)

    url = urlsplit(app_stack.api_url)
    connection = HTTPConnection(url.hostname or "", url.port)
    connection.putrequest("POST", "/echo/big")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(MAX_PAYLOAD_BYTES + 1))
    connection.endheaders()
    too_large = connection.getresponse()
    assert (too_large.status, json.loads(too_large.read())) == (413, {"message": "Request Entity Too Large"})
    connection.close()


def test_route_throttling_answers_429(app_stack: LocalStack) -> None:
    session = client()
    statuses = [session.get(f"{app_stack.api_url}/throttled").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert session.get(f"{app_stack.api_url}/throttled").json() == {"message": "Too Many Requests"}
    assert session.get(f"{app_stack.api_url}/plain").status_code == 200  # other routes keep their own bucket


def signed_get(url: str, secret: str, access_key: str = "testing") -> requests.Response:
    request = AWSRequest(method="GET", url=url, headers={"x-custom-signed": "yes"})
    SigV4Auth(Credentials(access_key, secret), "execute-api", "us-east-1").add_auth(request)
    return client().get(url, headers=dict(request.headers.items()))


def test_iam_routes_accept_sigv4_with_the_local_credentials_only(app_stack: LocalStack) -> None:
    url = f"{app_stack.api_url}/secure?b=2&a=1"
    assert client().get(url).json() == {"message": "Forbidden"}
    assert signed_get(url, "wrong-secret").status_code == 403
    assert signed_get(url, "testing", access_key="AKIAOTHER").status_code == 403
    response = signed_get(url, "testing")
    assert response.status_code == 200
    iam = response.json()["requestContext"]["authorizer"]["iam"]
    assert iam["accessKey"] == "testing"
    assert iam["accountId"] == "123456789012"
    assert iam["userArn"].startswith("arn:aws:iam::123456789012:")


def test_implicit_api_serves_events_without_an_api_id(app_stack: LocalStack) -> None:
    event = client().get(f"{app_stack.api_url}/implicit").json()
    assert event["requestContext"]["apiId"] == app_stack.resources["ServerlessHttpApi"].ref
    assert event["routeKey"] == "GET /implicit"


def test_rest_api_event_is_the_1_0_proxy_event(app_stack: LocalStack) -> None:
    response = client().put(
        f"{app_stack.api_url}/rest/42?q=1&q=2",
        data=b"\x89PNG",
        headers={"Content-Type": "image/png", "X-Trace": "t"},
    )
    assert response.status_code == 202
    assert response.raw.headers.getlist("x-multi") == ["one", "two"]
    assert response.headers["x-amzn-RequestId"]
    event = response.json()
    assert "version" not in event
    assert (event["resource"], event["path"], event["httpMethod"]) == ("/rest/{id}", "/rest/42", "PUT")
    assert event["pathParameters"] == {"id": "42"}
    assert event["queryStringParameters"] == {"q": "2"}
    assert event["multiValueQueryStringParameters"] == {"q": ["1", "2"]}
    assert event["headers"]["X-Trace"] == "t"
    assert event["multiValueHeaders"]["X-Trace"] == ["t"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x89PNG"
    context = event["requestContext"]
    assert (context["stage"], context["path"], context["resourcePath"]) == ("v1", "/v1/rest/42", "/rest/{id}")
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    text = (
        client()
        .post(f"{app_stack.api_url}/rest/7", data="plain", headers={"Content-Type": "text/plain"})
        .json()
    )
    assert (text["body"], text["isBase64Encoded"]) == ("plain", False)


# ---------------------------------------------------------------------------------- unit checks


@pytest.mark.parametrize(
    ("content_type", "as_text"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("text/plain", True),
        ("application/xml", True),
        ("application/javascript", True),
        ("application/x-www-form-urlencoded", False),
        ("application/octet-stream", False),
        ("multipart/form-data; boundary=x", False),
        (None, False),
    ],
)
def test_which_bodies_http_apis_base64_encode(content_type: str | None, as_text: bool) -> None:
    assert is_text_content(content_type) is as_text


def test_routes_prefer_exact_paths_and_specific_methods() -> None:
    def route(method: str, path: str) -> Route:
        return Route("Api", "id", "http", "Fn", path, method, path, "2.0", False, "$default")

    routes = sorted(
        [
            route("ANY", "$default"),
            route("ANY", "/{proxy+}"),
            route("GET", "/items/{id}"),
            route("ANY", "/items/{id}"),
        ],
        key=Route.rank,
    )
    winners = {
        (method, path): next(r.route_key for r in routes if r.match(method, path) is not None)
        for method, path in [
            ("GET", "/items/7"),
            ("POST", "/items/7"),
            ("GET", "/other/deep/path"),
            ("GET", "/"),
        ]
    }
    assert winners == {
        ("GET", "/items/7"): "GET /items/{id}",
        ("POST", "/items/7"): "ANY /items/{id}",
        ("GET", "/other/deep/path"): "ANY /{proxy+}",
        ("GET", "/"): "$default",
    }
    assert route("GET", "/files/{proxy+}").match("GET", "/files/a/b") == {"proxy": "a/b"}


def test_sigv4_verification_rejects_stale_or_tampered_requests() -> None:
    request = AWSRequest(method="POST", url="http://127.0.0.1:9/secure", data=b'{"a":1}', headers={})
    SigV4Auth(Credentials("testing", "testing"), "execute-api", "us-east-1").add_auth(request)
    headers = {**dict(request.headers.items()), "host": "127.0.0.1:9"}

    def verify(body: bytes = b'{"a":1}', now: float | None = None, **changed: str) -> bool:
        identity = verify_sigv4(
            method="POST",
            url="http://127.0.0.1:9/secure",
            headers={**headers, **changed},
            body=body,
            access_key="testing",
            secret_key="testing",
            now=now,
        )
        return identity is not None

    assert verify()
    assert not verify(body=b'{"a":2}')
    assert not verify(now=10.0)
    assert not verify(host="example.com")
