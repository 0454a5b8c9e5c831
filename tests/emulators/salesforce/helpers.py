"""A thin REST client for asserting exactly what the local org answers over HTTPS."""

from __future__ import annotations

import json
from typing import Any

import requests

from local.salesforce import SalesforceEmulator
from local.salesforce.clients import emulator_session

VERSION = "59.0"


class Api:
    """Raw requests to one org with one access token; paths are relative to ``/services/data/vXX.X``."""

    def __init__(self, emulator: SalesforceEmulator, *, version: str = VERSION, login: bool = True) -> None:
        self.emulator = emulator
        self.version = version
        self.http = emulator_session(emulator.ca_file)
        self.token = ""
        if login:
            self.token = self.client_credentials()

    @property
    def base(self) -> str:
        return f"{self.emulator.base_url}/services/data/v{self.version}"

    def token_request(self, **form: str) -> requests.Response:
        return self.http.post(f"{self.emulator.base_url}/services/oauth2/token", data=form)

    def client_credentials(self) -> str:
        credentials = self.emulator.credentials
        response = self.token_request(
            grant_type="client_credentials",
            client_id=credentials["consumer_key"],
            client_secret=credentials["consumer_secret"],
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def url(self, path: str) -> str:
        if path.startswith("https://"):
            return path
        if path.startswith("/services/") or path.startswith("/id/"):
            return self.emulator.base_url + path
        return self.base + path

    def request(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        use = self.token if token is None else token
        if use:
            headers.setdefault("Authorization", f"Bearer {use}")
        return self.http.request(method, self.url(path), headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=body, **kwargs)

    def patch(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, json=body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def raw(
        self, method: str, path: str, data: str, content_type: str = "application/json"
    ) -> requests.Response:
        return self.request(method, path, data=data.encode(), headers={"Content-Type": content_type})

    def create(self, sobject: str, body: dict[str, Any]) -> str:
        response = self.post(f"/sobjects/{sobject}/", body)
        assert response.status_code == 201, response.text
        record_id: str = response.json()["id"]
        return record_id

    def query(self, soql: str, **kwargs: Any) -> dict[str, Any]:
        response = self.get("/query/", params={"q": soql}, **kwargs)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


def error(response: requests.Response, status: int) -> dict[str, Any]:
    """Assert a REST error: the status, JSON content type, an array body; return its first error."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    body = response.json()
    assert isinstance(body, list), body
    assert body, body
    assert set(body[0]) <= {"message", "errorCode", "fields"}, body
    first: dict[str, Any] = body[0]
    return first


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True)
