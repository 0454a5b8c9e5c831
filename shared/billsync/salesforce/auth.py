"""Logging in to Salesforce as a connected app: OAuth 2.0 client credentials or JWT bearer.

billsync never uses passwords or security tokens. The credentials come from a Secrets Manager secret:

    {"auth": "client_credentials", "login_url": "https://acme.my.salesforce.com",
     "consumer_key": "…", "consumer_secret": "…"}
    {"auth": "jwt", "login_url": "https://login.salesforce.com", "consumer_key": "…",
     "username": "integration@acme.com", "private_key": "-----BEGIN PRIVATE KEY-----…"}
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import requests

from billsync.domain.models import ErrorInfo


@dataclass(frozen=True, repr=False)
class SalesforceCredentials:
    auth: Literal["client_credentials", "jwt"]
    login_url: str
    consumer_key: str
    consumer_secret: str | None = None
    username: str | None = None
    private_key: str | None = None
    audience: str | None = None

    def __repr__(self) -> str:  # never print a secret
        return f"SalesforceCredentials(auth={self.auth!r}, login_url={self.login_url!r})"

    @classmethod
    def from_secret(cls, secret: Mapping[str, Any]) -> SalesforceCredentials:
        auth = secret.get("auth")
        missing = [k for k in ("login_url", "consumer_key") if not secret.get(k)]
        if auth == "client_credentials":
            missing += [] if secret.get("consumer_secret") else ["consumer_secret"]
        elif auth == "jwt":
            missing += [k for k in ("username", "private_key") if not secret.get(k)]
        else:
            raise SalesforceLoginError(
                ErrorInfo(
                    code="CONFIGURATION",
                    message="the Salesforce secret's auth must be client_credentials or jwt",
                )
            )
        if missing:
            raise SalesforceLoginError(
                ErrorInfo(code="CONFIGURATION", message=f"the Salesforce secret lacks: {', '.join(missing)}")
            )
        return cls(
            auth=auth,
            login_url=str(secret["login_url"]).rstrip("/"),
            consumer_key=str(secret["consumer_key"]),
            consumer_secret=secret.get("consumer_secret"),
            username=secret.get("username"),
            private_key=secret.get("private_key"),
            audience=secret.get("audience"),
        )


@dataclass(frozen=True, repr=False)
class AccessToken:
    access_token: str
    instance_url: str
    identity_url: str

    def __repr__(self) -> str:
        return f"AccessToken(instance_url={self.instance_url!r})"

    @property
    def org_id(self) -> str:
        # The identity URL ends with /id/<org id>/<user id>.
        return self.identity_url.rstrip("/").split("/")[-2]

    @property
    def user_id(self) -> str:
        return self.identity_url.rstrip("/").split("/")[-1]


class SalesforceLoginError(Exception):
    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


def request_token(
    session: requests.Session, credentials: SalesforceCredentials, *, timeout: float
) -> AccessToken:
    """Ask the token endpoint for an access token."""
    form: dict[str, str] = {}
    auth: tuple[str, str] | None = None
    if credentials.auth == "client_credentials":
        form["grant_type"] = "client_credentials"
        auth = (credentials.consumer_key, credentials.consumer_secret or "")
    else:
        import jwt  # PyJWT, a dependency of simple-salesforce; loaded only for this grant

        claims = {
            "iss": credentials.consumer_key,
            "sub": credentials.username,
            "aud": credentials.audience or credentials.login_url,
            "exp": int(time.time()) + 180,
        }
        form["grant_type"] = "urn:ietf:params:oauth:grant-type:jwt-bearer"
        form["assertion"] = jwt.encode(claims, credentials.private_key or "", algorithm="RS256")
    try:
        response = session.post(
            f"{credentials.login_url}/services/oauth2/token", data=form, auth=auth, timeout=timeout
        )
    except requests.RequestException as exc:
        raise SalesforceLoginError(
            ErrorInfo(
                code="CONNECTION_ERROR",
                message=f"cannot reach Salesforce's token endpoint ({type(exc).__name__})",
                retryable=True,
            )
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or "access_token" not in body:
        error = body.get("error", f"HTTP {response.status_code}")
        description = body.get("error_description", "no description")
        raise SalesforceLoginError(
            ErrorInfo(
                code="LOGIN_FAILED",
                message=f"Salesforce refused the login: {error}: {description}",
                retryable=response.status_code >= 500,
            )
        )
    return AccessToken(body["access_token"], body["instance_url"].rstrip("/"), body["id"])
