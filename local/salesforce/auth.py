"""Logins and sessions: OAuth 2.0 token endpoint, SOAP partner login, identity URL, revoke.

Grants: ``client_credentials`` (runs as the integration user), JWT bearer (RS256 signature checked
against the connected app's certificate, ``aud`` and ``exp`` checked), ``password`` (password
followed by the security token), ``refresh_token`` and ``authorization_code`` (with an
auto-approving ``/services/oauth2/authorize``). Only the authorization-code flow issues refresh
tokens, as in Salesforce; the credentials also carry one pre-issued refresh token for the
integration user. Access tokens expire ``token_lifetime_seconds`` after they are issued; an
expired, revoked or unknown token gets 401 with the body clients parse.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from werkzeug.wrappers import Request, Response

from local.salesforce.http import json_response

__all__ = ["AppCredentials", "Auth", "Session", "UserAccount"]

_TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._"
_LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


@dataclass(frozen=True)
class UserAccount:
    user_id: str
    username: str
    password: str
    security_token: str
    first_name: str
    last_name: str
    email: str


@dataclass(frozen=True)
class AppCredentials:
    """The connected app: consumer key/secret and the certificate JWT assertions are checked with."""

    consumer_key: str
    consumer_secret: str
    private_key_file: str
    certificate_file: str


@dataclass
class Session:
    token: str
    user_id: str
    issued_at: float
    expires_at: float
    grant: str
    refresh_token: str | None = None


@dataclass
class _Code:
    user_id: str
    client_id: str
    redirect_uri: str
    expires_at: float


def _random(n: int) -> str:
    return "".join(secrets.choice(_TOKEN_CHARS) for _ in range(n))


def make_key_pair(directory: Path) -> tuple[Path, Path]:
    """An RSA key and a self-signed certificate (the connected app's), as PEM files in ``directory``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "billsync local connected app")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    key_file = directory / "connected-app.key"
    cert_file = directory / "connected-app.crt"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_file.chmod(0o600)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> Response:
        return json_response({"error": self.error, "error_description": self.description}, self.status)


class Auth:
    """Users, the connected app, and the sessions issued to them."""

    def __init__(
        self,
        *,
        org_id: str,
        users: list[UserAccount],
        app: AppCredentials,
        integration_user_id: str,
        clock: Any,
        lifetime: Any,
    ) -> None:
        self.org_id = org_id
        self.users = {u.username.lower(): u for u in users}
        self.users_by_id = {u.user_id: u for u in users}
        self.app = app
        self.integration_user_id = integration_user_id
        self._clock = clock
        self._lifetime = lifetime  # callable returning the current token lifetime in seconds
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._refresh: dict[str, str] = {}  # refresh token -> user id
        self._codes: dict[str, _Code] = {}
        self.standing_refresh_token = _random(86)
        self._public_key = x509.load_pem_x509_certificate(
            Path(app.certificate_file).read_bytes()
        ).public_key()
        self.reset()

    # -- sessions --------------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self._sessions.clear()
            self._codes.clear()
            self._refresh = {self.standing_refresh_token: self.integration_user_id}

    def issue(self, user_id: str, grant: str, refresh_token: str | None = None) -> Session:
        now = self._clock.timestamp()
        token = f"{self.org_id[:15]}!{_random(96)}"
        session = Session(token, user_id, now, now + float(self._lifetime()), grant, refresh_token)
        with self._lock:
            self._sessions[token] = session
        return session

    def session_for(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if self._clock.timestamp() >= session.expires_at:
                del self._sessions[token]
                return None
            return session

    def invalidate(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token, None)

    def bearer(self, request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("bearer", "oauth") and value.strip():
            return value.strip()
        return request.headers.get("X-SFDC-Session") or None

    # -- token endpoint --------------------------------------------------------------------------

    def token_response(self, request: Request, base_url: str) -> Response:
        form = request.form
        grant = form.get("grant_type", "")
        try:
            if grant == "password":
                session = self._password_grant(
                    form.get("client_id"), form.get("client_secret"), request, form
                )
            elif grant == "client_credentials":
                session = self._client_credentials(request, form)
            elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
                session = self._jwt_grant(form.get("assertion", ""), base_url)
            elif grant == "refresh_token":
                session = self._refresh_grant(request, form)
            elif grant == "authorization_code":
                session = self._code_grant(request, form)
            else:
                raise OAuthError("unsupported_grant_type", "grant type not supported")
        except OAuthError as exc:
            return exc.response()
        return json_response(self.token_body(session, base_url))

    def token_body(self, session: Session, base_url: str) -> dict[str, Any]:
        issued_at = str(int(session.issued_at * 1000))
        identity = f"{base_url}/id/{self.org_id}/{session.user_id}"
        signature = base64.b64encode(
            hmac.new(
                self.app.consumer_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
            ).digest()
        ).decode()
        body: dict[str, Any] = {"access_token": session.token}
        if session.refresh_token:
            body["refresh_token"] = session.refresh_token
        body.update(
            {
                "signature": signature,
                "scope": "refresh_token api" if session.refresh_token else "api",
                "instance_url": base_url,
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
                "api_instance_url": base_url,
            }
        )
        return body

    def _client(self, client_id: str | None, client_secret: str | None, *, secret_required: bool) -> None:
        if client_id != self.app.consumer_key:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if (secret_required or client_secret is not None) and client_secret != self.app.consumer_secret:
            raise OAuthError("invalid_client", "invalid client credentials")

    def _basic(self, request: Request) -> tuple[str | None, str | None]:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None, None
        try:
            decoded = base64.b64decode(value.strip()).decode()
        except (ValueError, UnicodeDecodeError):
            return None, None
        client_id, _, secret = decoded.partition(":")
        return client_id, secret

    def _password_grant(
        self, client_id: str | None, secret: str | None, request: Request, form: Any
    ) -> Session:
        if client_id is None:
            client_id, secret = self._basic(request)
        self._client(client_id, secret, secret_required=True)
        user = self.users.get((form.get("username") or "").lower())
        if user is None or form.get("password") != user.password + user.security_token:
            raise OAuthError("invalid_grant", "authentication failure")
        return self.issue(user.user_id, "password")

    def _client_credentials(self, request: Request, form: Any) -> Session:
        client_id, secret = self._basic(request)
        if client_id is None:
            client_id, secret = form.get("client_id"), form.get("client_secret")
        self._client(client_id, secret, secret_required=True)
        return self.issue(self.integration_user_id, "client_credentials")

    def _jwt_grant(self, assertion: str, base_url: str) -> Session:
        try:
            claims = jwt.decode(
                assertion,
                self._public_key,  # type: ignore[arg-type]
                algorithms=["RS256"],
                options={"verify_aud": False, "verify_exp": False, "require": ["iss", "sub", "aud", "exp"]},
            )
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "invalid assertion") from None
        if claims.get("iss") != self.app.consumer_key:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if not any(a in (*_LOGIN_AUDIENCES, base_url) for a in audiences):
            raise OAuthError("invalid_grant", "Audience validation failed")
        try:
            expires = float(claims["exp"])
        except (TypeError, ValueError):
            raise OAuthError("invalid_grant", "invalid assertion") from None
        now = self._clock.timestamp()
        if expires <= now or expires > now + 5 * 60:
            raise OAuthError("invalid_grant", "invalid assertion")
        user = self.users.get(str(claims.get("sub", "")).lower())
        if user is None:
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")
        return self.issue(user.user_id, "jwt")

    def _refresh_grant(self, request: Request, form: Any) -> Session:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if client_id is None:
            client_id, secret = self._basic(request)
        self._client(client_id, secret, secret_required=False)
        token = form.get("refresh_token", "")
        with self._lock:
            user_id = self._refresh.get(token)
        if user_id is None:
            raise OAuthError("invalid_grant", "expired access/refresh token")
        session = self.issue(user_id, "refresh_token")
        session.refresh_token = None
        return session

    def _code_grant(self, request: Request, form: Any) -> Session:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if client_id is None:
            client_id, secret = self._basic(request)
        self._client(client_id, secret, secret_required=True)
        with self._lock:
            code = self._codes.pop(form.get("code", ""), None)
        if code is None or code.expires_at < self._clock.timestamp() or code.client_id != client_id:
            raise OAuthError("invalid_grant", "invalid authorization code")
        if code.redirect_uri != form.get("redirect_uri", ""):
            raise OAuthError("invalid_grant", "redirect_uri must match configuration")
        refresh = _random(86)
        with self._lock:
            self._refresh[refresh] = code.user_id
        return self.issue(code.user_id, "authorization_code", refresh)

    def authorize_response(self, request: Request) -> Response:
        """The web-server flow's authorize step, approved at once for the integration user."""
        args = request.args
        redirect_uri = args.get("redirect_uri", "")
        if args.get("client_id") != self.app.consumer_key:
            return Response(
                "error=invalid_client_id&error_description=client%20identifier%20invalid", status=400
            )
        if args.get("response_type") != "code" or not redirect_uri:
            return Response("error=unsupported_response_type", status=400)
        user = self.users.get((args.get("login_hint") or "").lower())
        code = _random(60)
        with self._lock:
            self._codes[code] = _Code(
                user.user_id if user else self.integration_user_id,
                args["client_id"],
                redirect_uri,
                self._clock.timestamp() + 900,
            )
        params = {"code": code}
        if "state" in args:
            params["state"] = args["state"]
        separator = "&" if "?" in redirect_uri else "?"
        return Response(status=302, headers={"Location": f"{redirect_uri}{separator}{urlencode(params)}"})

    def revoke_response(self, request: Request) -> Response:
        token = request.form.get("token") or request.args.get("token") or ""
        with self._lock:
            if token in self._sessions:
                del self._sessions[token]
            elif token in self._refresh:
                del self._refresh[token]
                for key in [k for k, s in self._sessions.items() if s.refresh_token == token]:
                    del self._sessions[key]
            else:
                return json_response(
                    {
                        "error": "unsupported_token_type",
                        "error_description": "this token type is not supported",
                    },
                    400,
                )
        return Response(b"", status=200)

    # -- SOAP partner login ----------------------------------------------------------------------

    def soap_login_response(
        self, request: Request, base_url: str, version: str, *, is_sandbox: bool
    ) -> Response:
        try:
            root = ET.fromstring(request.get_data())  # noqa: S314 - a local login body
        except ET.ParseError:
            return _soap_fault(
                "INVALID_LOGIN",
                "Invalid username, password, security token; or user locked out.",
                "sf:INVALID_LOGIN",
            )
        found: dict[str, str] = {}
        for element in root.iter():
            local = element.tag.rsplit("}", 1)[-1]
            if local in ("username", "password", "organizationId") and local not in found:
                found[local] = (element.text or "").strip()
        user = self.users.get(found.get("username", "").lower())
        password = found.get("password", "")
        ok = user is not None and (
            password == user.password + user.security_token
            or (found.get("organizationId") in (self.org_id, self.org_id[:15]) and password == user.password)
        )
        if not ok or user is None:
            return _soap_fault(
                "INVALID_LOGIN",
                "Invalid username, password, security token; or user locked out.",
                "sf:INVALID_LOGIN",
            )
        session = self.issue(user.user_id, "soap")
        org15 = self.org_id[:15]
        lifetime = int(session.expires_at - session.issued_at)
        body = f"""<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result><metadataServerUrl>{base_url}/services/Soap/m/{version}/{org15}</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>{str(is_sandbox).lower()}</sandbox><serverUrl>{base_url}/services/Soap/u/{version}/{org15}</serverUrl><sessionId>{escape(session.token)}</sessionId><userId>{user.user_id}</userId><userInfo><accessibilityMode>false</accessibilityMode><currencySymbol>$</currencySymbol><orgAttachmentFileSizeLimit>5242880</orgAttachmentFileSizeLimit><orgDefaultCurrencyIsoCode>USD</orgDefaultCurrencyIsoCode><orgDisallowHtmlAttachments>false</orgDisallowHtmlAttachments><orgHasPersonAccounts>false</orgHasPersonAccounts><organizationId>{self.org_id}</organizationId><organizationMultiCurrency>false</organizationMultiCurrency><organizationName>billsync local org</organizationName><profileId>00e5f000000Bx1AAAS</profileId><roleId xsi:nil="true"/><sessionSecondsValid>{lifetime}</sessionSecondsValid><userDefaultCurrencyIsoCode xsi:nil="true"/><userEmail>{escape(user.email)}</userEmail><userFullName>{escape(user.first_name + " " + user.last_name)}</userFullName><userId>{user.user_id}</userId><userLanguage>en_US</userLanguage><userLocale>en_US</userLocale><userName>{escape(user.username)}</userName><userTimeZone>GMT</userTimeZone><userType>Standard</userType><userUiSkin>Theme3</userUiSkin></userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"""
        return Response(body.encode(), status=200, content_type="text/xml;charset=UTF-8")

    # -- identity --------------------------------------------------------------------------------

    def identity_response(
        self, request: Request, base_url: str, version: str, org_id: str, user_id: str
    ) -> Response:
        token = self.bearer(request) or request.args.get("oauth_token")
        session = self.session_for(token)
        if session is None:
            return Response(b"Bad_OAuth_Token", status=403, content_type="text/plain;charset=UTF-8")
        user = self.users_by_id.get(user_id)
        if user is None or org_id not in (self.org_id, self.org_id[:15]):
            return Response(b"Bad_Id", status=403, content_type="text/plain;charset=UTF-8")
        urls = {
            name: f"{base_url}/services/data/v{{version}}/{path}"
            for name, path in (
                ("rest", ""),
                ("sobjects", "sobjects/"),
                ("search", "search/"),
                ("query", "query/"),
                ("recent", "recent/"),
                ("tooling_rest", "tooling/"),
            )
        }
        urls.update(
            {
                "enterprise": f"{base_url}/services/Soap/c/{{version}}/{self.org_id[:15]}",
                "metadata": f"{base_url}/services/Soap/m/{{version}}/{self.org_id[:15]}",
                "partner": f"{base_url}/services/Soap/u/{{version}}/{self.org_id[:15]}",
                "profile": f"{base_url}/{user.user_id}",
                "custom_domain": base_url,
            }
        )
        body = {
            "id": f"{base_url}/id/{self.org_id}/{user.user_id}",
            "asserted_user": True,
            "user_id": user.user_id,
            "organization_id": self.org_id,
            "username": user.username,
            "nick_name": user.username.split("@")[0],
            "display_name": f"{user.first_name} {user.last_name}",
            "email": user.email,
            "email_verified": True,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "timezone": "GMT",
            "photos": {"picture": None, "thumbnail": None},
            "addr_street": None,
            "addr_city": None,
            "addr_state": None,
            "addr_country": None,
            "addr_zip": None,
            "mobile_phone": None,
            "mobile_phone_verified": False,
            "is_lightning_login_user": False,
            "status": {"created_date": None, "body": None},
            "urls": urls,
            "active": True,
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_US",
            "utcOffset": 0,
            "last_modified_date": datetime.fromtimestamp(session.issued_at, UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.000+0000"
            ),
            "is_app_installed": True,
        }
        return json_response(body)


def _soap_fault(code: str, message: str, faultcode: str) -> Response:
    body = f"""<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>{faultcode}</faultcode><faultstring>{code}: {escape(message)}</faultstring><detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}</sf:exceptionCode><sf:exceptionMessage>{escape(message)}</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"""
    return Response(body.encode(), status=500, content_type="text/xml;charset=UTF-8")
