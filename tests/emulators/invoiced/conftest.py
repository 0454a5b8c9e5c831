"""Fixtures for the Invoiced emulator tests: a small API client and a scriptable webhook receiver."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from local.common.server import LocalServer
from local.common.tls import LocalCA
from local.invoiced import InvoicedEmulator


class Api:
    """Raw HTTP against one listener (production by default), with the account's key."""

    def __init__(self, session: requests.Session, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def get(self, path: str, params: Any = None, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url(path), params=params, timeout=10, **kwargs)

    def post(self, path: str, json_body: Any = None, **kwargs: Any) -> requests.Response:
        return self.session.post(self.url(path), json=json_body, timeout=10, **kwargs)

    def patch(self, path: str, json_body: Any = None, **kwargs: Any) -> requests.Response:
        return self.session.patch(self.url(path), json=json_body, timeout=10, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.delete(self.url(path), timeout=10, **kwargs)

    def ok(self, response: requests.Response, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.ok(self.post(path, body), 201)
        return result


@pytest.fixture
def api(invoiced_http: requests.Session, invoiced: InvoicedEmulator) -> Api:
    return Api(invoiced_http, invoiced.base_url)


@pytest.fixture
def sandbox_api(invoiced: InvoicedEmulator) -> Iterator[Api]:
    session = requests.Session()
    session.trust_env = False
    session.verify = invoiced.ca_file
    session.auth = (invoiced.sandbox_api_key, "")
    yield Api(session, invoiced.sandbox_base_url)
    session.close()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A webhook endpoint that records every request and answers from a script of statuses."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self.received: list[Received] = []
        self._script: deque[int] = deque()
        self.default_status = 200
        self.delay_s = 0.0
        self.url = ""

    def answer(self, *statuses: int, then: int = 200) -> None:
        with self._lock:
            self._script = deque(statuses)
            self.default_status = then

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.delay_s:
            time.sleep(self.delay_s)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        headers["Content-Type"] = environ.get("CONTENT_TYPE", "")
        with self._lock:
            self.received.append(Received(environ["PATH_INFO"], headers, body, time.monotonic()))
            status = self._script.popleft() if self._script else self.default_status
            self._lock.notify_all()
        extra = [("Location", "/moved")] if status in (301, 302, 307, 308) else []
        start_response(f"{status} Status", [("Content-Type", "text/plain"), *extra])
        return [b"ok"]

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.json() for r in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    target = Receiver()
    with LocalServer(target) as server:
        target.url = f"{server.base_url}/webhooks/invoiced"
        yield target


@pytest.fixture
def tls_receiver(local_ca: LocalCA) -> Iterator[Receiver]:
    target = Receiver()
    with LocalServer(target, ssl_context=local_ca.server_context()) as server:
        target.url = f"{server.base_url}/webhooks/invoiced"
        yield target


@pytest.fixture
def manual(invoiced: InvoicedEmulator) -> InvoicedEmulator:
    """The emulator with webhooks delivered only on demand (`control.deliver_due()`)."""
    invoiced.control.update_settings(webhook_delivery="manual")
    return invoiced
