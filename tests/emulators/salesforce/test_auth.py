"""Logins, tokens and sessions over real HTTPS: what succeeds, and the exact refusals."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local.salesforce import SalesforceEmulator
from tests.emulators.salesforce.helpers import Api

SESSION_EXPIRED = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def assertion(salesforce: SalesforceEmulator, key: bytes | None = None, **claims: Any) -> str:
    credentials = salesforce.credentials
    payload = {
        "iss": credentials["consumer_key"],
        "sub": credentials["username"],
        "aud": "https://login.salesforce.com",
        "exp": int(time.time()) + 180,
        **claims,
    }
    private_key = key if key is not None else Path(credentials["private_key_file"]).read_bytes()
    return jwt.encode(payload, private_key, algorithm="RS256")


def test_token_response_shape(salesforce: SalesforceEmulator) -> None:
    api = Api(salesforce, login=False)
    credentials = salesforce.credentials
    basic = base64.b64encode(
        f"{credentials['consumer_key']}:{credentials['consumer_secret']}".encode()
    ).decode()
    response = api.http.post(
        f"{salesforce.base_url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    body = response.json()
    assert body["instance_url"] == salesforce.base_url
    assert body["token_type"] == "Bearer"
    assert body["id"] == f"{salesforce.base_url}/id/{credentials['org_id']}/{credentials['user_id']}"
    assert body["issued_at"].isdigit()
    assert "refresh_token" not in body
    assert body["access_token"].startswith(credentials["org_id"][:15] + "!")


@pytest.mark.parametrize(
    ("form", "error", "description"),
    [
        (
            {"grant_type": "client_credentials", "client_id": "nope", "client_secret": "x"},
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            {"grant_type": "client_credentials", "client_secret": "wrong"},
            "invalid_client",
            "invalid client credentials",
        ),
        ({"grant_type": "password", "password": "wrong"}, "invalid_grant", "authentication failure"),
        (
            {"grant_type": "refresh_token", "refresh_token": "unknown"},
            "invalid_grant",
            "expired access/refresh token",
        ),
        ({"grant_type": "magic"}, "unsupported_grant_type", "grant type not supported"),
    ],
)
def test_token_endpoint_refusals(
    salesforce: SalesforceEmulator, form: dict[str, str], error: str, description: str
) -> None:
    credentials = salesforce.credentials
    full = {
        "client_id": credentials["consumer_key"],
        "client_secret": credentials["consumer_secret"],
        "username": credentials["username"],
        **form,
    }
    response = Api(salesforce, login=False).token_request(**full)
    assert response.status_code == 400
    assert response.json() == {"error": error, "error_description": description}


def test_password_grant_needs_the_security_token(salesforce: SalesforceEmulator) -> None:
    credentials = salesforce.credentials
    api = Api(salesforce, login=False)
    base = {
        "grant_type": "password",
        "client_id": credentials["consumer_key"],
        "client_secret": credentials["consumer_secret"],
        "username": credentials["username"],
    }
    assert api.token_request(**base, password=credentials["password"]).status_code == 400
    ok = api.token_request(**base, password=credentials["password"] + credentials["security_token"])
    assert ok.status_code == 200
    assert "refresh_token" not in ok.json()


def test_jwt_bearer_checks_signature_audience_and_expiry(salesforce: SalesforceEmulator) -> None:
    api = Api(salesforce, login=False)
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert api.token_request(grant_type=grant, assertion=assertion(salesforce)).status_code == 200
    for audience in ("https://test.salesforce.com", salesforce.base_url):
        assert (
            api.token_request(grant_type=grant, assertion=assertion(salesforce, aud=audience)).status_code
            == 200
        )
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cases = [
        (assertion(salesforce, other_key), "invalid_grant", "invalid assertion"),
        (assertion(salesforce, aud="https://example.com"), "invalid_grant", "Audience validation failed"),
        (assertion(salesforce, exp=int(time.time()) - 5), "invalid_grant", "invalid assertion"),
        (assertion(salesforce, exp=int(time.time()) + 3600), "invalid_grant", "invalid assertion"),
        (assertion(salesforce, iss="someone-else"), "invalid_client_id", "client identifier invalid"),
        (
            assertion(salesforce, sub="nobody@example.com"),
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
        ("not-a-jwt", "invalid_grant", "invalid assertion"),
    ]
    for token, error, description in cases:
        response = api.token_request(grant_type=grant, assertion=token)
        assert response.status_code == 400, description
        assert response.json() == {"error": error, "error_description": description}


def test_expired_token_gets_the_exact_401_body(salesforce: SalesforceEmulator) -> None:
    salesforce.control.update_settings({"token_lifetime_seconds": 60})
    api = Api(salesforce)
    assert api.get("/limits").status_code == 200
    salesforce.control.set_time(advance_seconds=61)
    response = api.get("/limits")
    assert response.status_code == 401
    assert response.json() == SESSION_EXPIRED
    assert "Sforce-Limit-Info" not in response.headers
    fresh = Api(salesforce)
    assert fresh.get("/limits").status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Basic abc"])
def test_missing_or_unknown_token_is_refused(salesforce: SalesforceEmulator, header: str | None) -> None:
    api = Api(salesforce, login=False)
    headers = {"Authorization": header} if header else {}
    response = api.http.get(f"{api.base}/sobjects/Account/describe", headers=headers)
    assert response.status_code == 401
    assert response.json() == SESSION_EXPIRED


def test_revoke_ends_a_session(salesforce: SalesforceEmulator) -> None:
    api = Api(salesforce)
    response = api.http.post(f"{salesforce.base_url}/services/oauth2/revoke", data={"token": api.token})
    assert response.status_code == 200
    assert api.get("/limits").status_code == 401
    again = api.http.post(f"{salesforce.base_url}/services/oauth2/revoke", data={"token": api.token})
    assert again.status_code == 400


def test_refresh_token_grant_and_revoking_the_refresh_token(salesforce: SalesforceEmulator) -> None:
    credentials = salesforce.credentials
    api = Api(salesforce, login=False)
    response = api.token_request(
        grant_type="refresh_token",
        refresh_token=credentials["refresh_token"],
        client_id=credentials["consumer_key"],
        client_secret=credentials["consumer_secret"],
    )
    assert response.status_code == 200
    assert "refresh_token" not in response.json()
    token = response.json()["access_token"]
    assert api.get("/limits", token=token).status_code == 200
    revoked = api.http.post(
        f"{salesforce.base_url}/services/oauth2/revoke", data={"token": credentials["refresh_token"]}
    )
    assert revoked.status_code == 200
    again = api.token_request(
        grant_type="refresh_token",
        refresh_token=credentials["refresh_token"],
        client_id=credentials["consumer_key"],
    )
    assert again.json() == {"error": "invalid_grant", "error_description": "expired access/refresh token"}


def test_authorization_code_flow_issues_a_refresh_token(salesforce: SalesforceEmulator) -> None:
    credentials = salesforce.credentials
    api = Api(salesforce, login=False)
    redirect = "https://billsync.example/callback"
    authorize = api.http.get(
        f"{salesforce.base_url}/services/oauth2/authorize",
        params={
            "response_type": "code",
            "client_id": credentials["consumer_key"],
            "redirect_uri": redirect,
            "state": "s1",
        },
        allow_redirects=False,
    )
    assert authorize.status_code == 302
    location = urlsplit(authorize.headers["Location"])
    params = parse_qs(location.query)
    assert params["state"] == ["s1"]
    token = api.token_request(
        grant_type="authorization_code",
        code=params["code"][0],
        client_id=credentials["consumer_key"],
        client_secret=credentials["consumer_secret"],
        redirect_uri=redirect,
    ).json()
    assert token["refresh_token"]
    refreshed = api.token_request(
        grant_type="refresh_token",
        refresh_token=token["refresh_token"],
        client_id=credentials["consumer_key"],
    )
    assert refreshed.status_code == 200
    reused = api.token_request(
        grant_type="authorization_code",
        code=params["code"][0],
        client_id=credentials["consumer_key"],
        client_secret=credentials["consumer_secret"],
        redirect_uri=redirect,
    )
    assert reused.json()["error"] == "invalid_grant"


def test_identity_url(salesforce: SalesforceEmulator) -> None:
    api = Api(salesforce)
    credentials = salesforce.credentials
    url = f"/id/{credentials['org_id']}/{credentials['user_id']}"
    by_header = api.get(url)
    assert by_header.status_code == 200
    body = by_header.json()
    assert body["user_id"] == credentials["user_id"]
    assert body["organization_id"] == credentials["org_id"]
    assert body["username"] == credentials["username"]
    assert body["urls"]["rest"] == f"{salesforce.base_url}/services/data/v{{version}}/"
    by_param = api.http.get(salesforce.base_url + url, params={"format": "json", "oauth_token": api.token})
    assert by_param.json() == body
    refused = api.http.get(salesforce.base_url + url, params={"oauth_token": "nope"})
    assert refused.status_code == 403
    assert refused.text == "Bad_OAuth_Token"
    resources = api.get("/").json()
    assert resources["identity"] == f"{salesforce.base_url}{url}"


def test_soap_login_response_is_what_clients_parse(salesforce: SalesforceEmulator) -> None:
    credentials = salesforce.credentials
    api = Api(salesforce, login=False)
    envelope = f"""<?xml version="1.0" encoding="utf-8" ?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">
  <soapenv:Body><urn:login><urn:username>{credentials["username"]}</urn:username>
  <urn:password>{credentials["password"]}{credentials["security_token"]}</urn:password></urn:login></soapenv:Body>
</soapenv:Envelope>"""
    response = api.http.post(
        f"{salesforce.base_url}/services/Soap/u/50.0",
        data=envelope,
        headers={"Content-Type": "text/xml", "SOAPAction": '""'},
    )
    assert response.status_code == 200
    text = response.text
    assert (
        f"<serverUrl>{salesforce.base_url}/services/Soap/u/50.0/{credentials['org_id'][:15]}</serverUrl>"
        in text
    )
    assert f"<userId>{credentials['user_id']}</userId>" in text
    assert f"<organizationId>{credentials['org_id']}</organizationId>" in text
    assert "<passwordExpired>false</passwordExpired>" in text
    session_id = text.split("<sessionId>")[1].split("</sessionId>")[0]
    assert api.get("/limits", token=session_id).status_code == 200
    fault = api.http.post(
        f"{salesforce.base_url}/services/Soap/u/50.0",
        data=envelope.replace(credentials["password"], "x"),
        headers={"Content-Type": "text/xml"},
    )
    assert fault.status_code == 500
    assert (
        "<faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.</faultstring>"
        in fault.text
    )
    assert "<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>" in fault.text


def test_logins_are_not_counted_or_faulted(salesforce: SalesforceEmulator) -> None:
    salesforce.control.faults.update({"rates": {"SERVER_UNAVAILABLE": 1.0}})
    api = Api(salesforce)
    assert api.token
    usage = salesforce.control.calls()["api_usage"]
    assert usage["used"] == 0
    assert api.get("/limits").status_code == 503
