"""HTTP building blocks every connector shares: a retrying JSON client, paginators, webhook checks.

Billing APIs differ in how they page (Link headers, page numbers until a short page, offsets) and how
they sign webhooks (hex HMAC of the body, a shared secret header); each style is written once here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import requests

from billsync.connectors.base import BillingApiError

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
ErrorParser = Callable[[requests.Response], BillingApiError]


def parse_json(text: str | bytes) -> Any:
    """JSON with decimal numbers kept exact (money never goes through float)."""
    return json.loads(text, parse_float=Decimal)


def _default_error(response: requests.Response) -> BillingApiError:
    return BillingApiError(
        f"HTTP {response.status_code} from {response.request.method} {response.url}",
        status=response.status_code,
        retryable=response.status_code in RETRYABLE_STATUS,
    )


class HttpClient:
    """A JSON-over-HTTPS client with retries for transient failures.

    Safe requests (GET, HEAD, PUT, DELETE, and POST/PATCH that carry an idempotency key) are retried on
    connection errors and on 408/425/429/5xx with exponential backoff and jitter, honouring
    Retry-After. Anything else fails at once with a `BillingApiError` built by `error_parser`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: Any = None,
        headers: Mapping[str, str] | None = None,
        ca_file: str | None = None,
        timeout: float = 30.0,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        error_parser: ErrorParser = _default_error,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.auth = auth
        self.session.headers.update({"Accept": "application/json", **(headers or {})})
        if ca_file:
            # The machine-wide CA bundle variable would otherwise override `verify`.
            self.session.trust_env = False
            self.session.verify = ca_file
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.error_parser = error_parser
        self.sleep = sleep
        self.requests_made = 0

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        sent_headers = dict(headers or {})
        retry_safe = method in {"GET", "HEAD", "PUT", "DELETE"} or any(
            k.lower() == "idempotency-key" for k in sent_headers
        )
        data = None
        if json_body is not None:
            data = json.dumps(json_body, default=_json_default, separators=(",", ":"))
            sent_headers.setdefault("Content-Type", "application/json")
        attempt = 0
        while True:
            attempt += 1
            self.requests_made += 1
            try:
                response = self.session.request(
                    method, url, params=params, data=data, headers=sent_headers, timeout=self.timeout
                )
            except requests.RequestException as exc:
                if retry_safe and attempt < self.max_attempts:
                    self._wait(attempt, None)
                    continue
                raise BillingApiError(
                    f"could not reach the billing API ({type(exc).__name__})",
                    code="CONNECTION_ERROR",
                    retryable=True,
                ) from None
            if response.status_code < 400:
                return response
            if response.status_code in RETRYABLE_STATUS and retry_safe and attempt < self.max_attempts:
                self._wait(attempt, response.headers.get("Retry-After"))
                continue
            error = self.error_parser(response)
            if response.status_code in RETRYABLE_STATUS:
                error.retryable = True
            raise error

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return parse_json(self.request("GET", path, params=params).content)

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), self.backoff_cap))
        self.sleep(delay)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # An exact decimal literal: integral values as int, others as their shortest float repr
        # (the emulators and vendors parse JSON numbers; this keeps 51.15 as 51.15).
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# ------------------------------------------------------------------------------------ pagination


def link_header_pages(client: HttpClient, path: str, params: Mapping[str, Any]) -> Iterator[list[Any]]:
    """Pages of a list answered as a bare JSON array with a `Link: <…>; rel="next"` header."""
    response = client.request("GET", path, params=params)
    while True:
        yield parse_json(response.content)
        next_url = response.links.get("next", {}).get("url")
        if not next_url:
            return
        response = client.request("GET", next_url)


def numbered_pages(
    client: HttpClient,
    path: str,
    params: Mapping[str, Any],
    *,
    per_page: int,
    extract: Callable[[Any], list[Any]] = list,
    page_param: str = "page",
    per_page_param: str = "per_page",
) -> Iterator[list[Any]]:
    """Pages by 1-based page number, ending at the first page shorter than `per_page`."""
    page = 1
    while True:
        items = extract(client.get_json(path, {**params, page_param: page, per_page_param: per_page}))
        if items:
            yield items
        if len(items) < per_page:
            return
        page += 1


def offset_pages(
    client: HttpClient,
    path: str,
    params: Mapping[str, Any],
    *,
    limit: int,
    extract: Callable[[Any], list[Any]] = list,
    offset_param: str = "offset",
    limit_param: str = "limit",
) -> Iterator[list[Any]]:
    """Pages by offset and limit, ending at the first page shorter than `limit`."""
    offset = 0
    while True:
        items = extract(client.get_json(path, {**params, offset_param: offset, limit_param: limit}))
        if items:
            yield items
        if len(items) < limit:
            return
        offset += limit


# ------------------------------------------------------------------------------------ webhooks


def hmac_hex_matches(
    body: bytes, signature: str | None, secrets: Sequence[str], digest: str = "sha256"
) -> bool:
    """True when `signature` is the lower-case hex HMAC of `body` under one of `secrets`.

    Every secret is checked (no early exit) and compared in constant time.
    """
    if not signature or not secrets:
        return False
    given = signature.strip().lower().encode()
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, getattr(hashlib, digest)).hexdigest().encode()
        matched |= hmac.compare_digest(expected, given)
    return matched


def shared_secret_matches(given: str | None, secrets: Sequence[str]) -> bool:
    """True when `given` equals one of `secrets`, compared in constant time."""
    if not given or not secrets:
        return False
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(secret.encode(), given.encode())
    return matched
