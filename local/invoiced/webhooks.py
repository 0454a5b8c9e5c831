"""Webhook delivery as Invoiced does it.

Each event is POSTed, as the JSON Event object, to every enabled endpoint of the account, with
`Content-Type: application/json`, `User-Agent: Invoiced/1.0` and `X-Invoiced-Signature` (lower-case
hex HMAC-SHA256 of the raw body under the endpoint's secret). Any 2xx is a success; redirects are not
followed. A failed attempt is retried every 3600 s of the webhook clock; after 48 attempts, or at
once on 410 Gone, the endpoint is disabled and its pending deliveries are dropped.

Deliveries run on a background thread (or on demand in "manual" mode), in event order per endpoint.
For soak tests the dispatcher can also deliver a success twice, and hold an event back behind the
next one (seeded, so a run can be replayed).
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests

from local.invoiced.clock import Clock
from local.invoiced.settings import InvoicedSettings
from local.invoiced.wire import dumps

if TYPE_CHECKING:
    from local.invoiced.account import Account, EventEntry

RETRY_INTERVAL = 3600
MAX_ATTEMPTS = 48
HOLD_LIMIT_S = 1.0  # real seconds an out-of-order event waits for a successor before going anyway


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def new_secret() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


@dataclass
class Endpoint:
    id: int
    account: str
    url: str
    secret: str
    events: tuple[str, ...] = ("*",)
    enabled: bool = True
    paused: bool = False
    disabled_reason: str | None = None

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account,
            "url": self.url,
            "secret": self.secret,
            "events": list(self.events),
            "enabled": self.enabled,
            "paused": self.paused,
            "disabled_reason": self.disabled_reason,
        }


@dataclass
class Pending:
    seq: int
    endpoint_id: int
    event_id: int
    event_type: str
    body: bytes
    due: float
    attempts: int = 0
    held_since: float | None = None  # real time an out-of-order hold began
    reordered: bool = False


@dataclass
class _Outcome:
    status: int | None
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class WebhookDispatcher:
    clock: Clock
    settings: Callable[[], InvoicedSettings]
    ca_file: str
    endpoints: dict[int, Endpoint] = field(default_factory=dict)
    pending: list[Pending] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._deliverer = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_endpoint_id = 0
        self._next_seq = 0
        self._in_flight = 0
        self._rng = random.Random(self.settings().webhook_seed)
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.verify = self.ca_file

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="invoiced-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread:
            self._thread.join(timeout=5)
        self._session.close()

    def reset(self) -> None:
        with self._deliverer, self._changed:
            self.endpoints.clear()
            self.pending.clear()
            self.log.clear()
            self._next_endpoint_id = 0
            self._rng = random.Random(self.settings().webhook_seed)
            self._changed.notify_all()

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed)

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # -- endpoints --------------------------------------------------------------------------------

    def add(self, account: str, url: str, secret: str | None, events: tuple[str, ...] = ("*",)) -> Endpoint:
        if not url.startswith(("http://", "https://")):
            raise ValueError("the webhook URL must start with http:// or https://")
        with self._lock:
            self._next_endpoint_id += 1
            endpoint = Endpoint(
                self._next_endpoint_id, account, url, secret or new_secret(), events or ("*",)
            )
            self.endpoints[endpoint.id] = endpoint
            return endpoint

    def remove(self, endpoint_id: int) -> None:
        with self._changed:
            self._endpoint(endpoint_id)
            del self.endpoints[endpoint_id]
            # Invoiced de-schedules attempts for a webhook that no longer exists.
            self.pending = [p for p in self.pending if p.endpoint_id != endpoint_id]
            self._changed.notify_all()

    def set_paused(self, endpoint_id: int, paused: bool) -> Endpoint:
        with self._changed:
            endpoint = self._endpoint(endpoint_id)
            endpoint.paused = paused
            self._changed.notify_all()
            return endpoint

    def enable(self, endpoint_id: int) -> Endpoint:
        with self._changed:
            endpoint = self._endpoint(endpoint_id)
            endpoint.enabled = True
            endpoint.disabled_reason = None
            self._changed.notify_all()
            return endpoint

    def endpoints_for(self, account: str | None = None) -> list[Endpoint]:
        with self._lock:
            return [e for e in self.endpoints.values() if account is None or e.account == account]

    def _endpoint(self, endpoint_id: int) -> Endpoint:
        try:
            return self.endpoints[endpoint_id]
        except KeyError:
            raise KeyError(f"no webhook endpoint {endpoint_id}") from None

    # -- events in ----------------------------------------------------------------------------------

    def on_event(self, account: Account, entry: EventEntry) -> None:
        """Queue an event for every enabled endpoint of its account (called with the account locked)."""
        body = dumps(entry.payload)
        with self._changed:
            now = self.clock.webhook_now()
            for endpoint in self.endpoints.values():
                if endpoint.account != account.name or not endpoint.enabled or not endpoint.wants(entry.type):
                    continue
                self._next_seq += 1
                self.pending.append(Pending(self._next_seq, endpoint.id, entry.id, entry.type, body, now))
            self._changed.notify_all()

    # -- delivery -----------------------------------------------------------------------------------

    def deliver_due(self) -> list[dict[str, Any]]:
        """Deliver every attempt that is due now, in order; returns the log entries written."""
        written: list[dict[str, Any]] = []
        with self._deliverer:
            while True:
                with self._lock:
                    item = self._pick()
                    if item is None:
                        break
                    endpoint = self.endpoints[item.endpoint_id]
                    url, secret = endpoint.url, endpoint.secret
                    self._in_flight += 1
                try:
                    outcome = self._post(url, secret, item.body)
                    duplicate: _Outcome | None = None
                    if outcome.succeeded and self._chance("duplicate_delivery_rate"):
                        duplicate = self._post(url, secret, item.body)
                finally:
                    with self._changed:
                        self._in_flight -= 1
                        written.extend(self._record(item, outcome, duplicate))
                        self._changed.notify_all()
        return written

    def _chance(self, setting: str) -> bool:
        rate: float = getattr(self.settings(), setting)
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def _eligible(self, now: float) -> list[Pending]:
        result = []
        for item in self.pending:
            endpoint = self.endpoints.get(item.endpoint_id)
            if endpoint is None or not endpoint.enabled or endpoint.paused or item.due > now:
                continue
            result.append(item)
        result.sort(key=lambda p: (p.due, p.seq))
        return result

    def _pick(self) -> Pending | None:
        """The next attempt to make (lock held), applying the out-of-order setting.

        An event picked to go out of order is held back until the next event for the same endpoint
        has been delivered; in background mode it waits up to HOLD_LIMIT_S for one to arrive.
        """
        settings = self.settings()
        eligible = self._eligible(self.clock.webhook_now())
        real_now = time.monotonic()
        for item in eligible:
            if item.held_since is not None:
                successor = any(
                    other.endpoint_id == item.endpoint_id
                    and other.seq > item.seq
                    and other.held_since is None
                    for other in eligible
                )
                waiting = (
                    settings.webhook_delivery == "background" and real_now - item.held_since < HOLD_LIMIT_S
                )
                if successor or waiting:
                    continue
                item.held_since = None
                return self._take(item)
            if (
                item.attempts == 0
                and not item.reordered
                and settings.out_of_order_rate > 0
                and self._rng.random() < settings.out_of_order_rate
            ):
                item.held_since = real_now
                item.reordered = True
                continue
            return self._take(item)
        return None

    def _take(self, item: Pending) -> Pending:
        self.pending.remove(item)
        return item

    def _post(self, url: str, secret: str, body: bytes) -> _Outcome:
        settings = self.settings()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Invoiced/1.0",
            "X-Invoiced-Signature": sign(secret, body),
        }
        try:
            response = self._session.post(
                url,
                data=body,
                headers=headers,
                timeout=(settings.webhook_connect_timeout_s, settings.webhook_timeout_s),
                allow_redirects=False,
            )
            response.close()
            return _Outcome(response.status_code, None)
        except requests.RequestException as error:
            return _Outcome(None, f"{type(error).__name__}: {error}")

    def _record(self, item: Pending, outcome: _Outcome, duplicate: _Outcome | None) -> list[dict[str, Any]]:
        """Write the attempt to the log and schedule what follows (lock held)."""
        item.attempts += 1
        now = self.clock.webhook_now()
        endpoint = self.endpoints.get(item.endpoint_id)
        entries = [self._entry(item, outcome, now, duplicate=False)]
        if duplicate is not None:
            entries.append(self._entry(item, duplicate, now, duplicate=True))
        if not outcome.succeeded and endpoint is not None:
            gone = outcome.status == 410
            if gone or item.attempts >= MAX_ATTEMPTS:
                endpoint.enabled = False
                endpoint.disabled_reason = "410 Gone" if gone else f"{MAX_ATTEMPTS} failed attempts"
                dropped = [p for p in self.pending if p.endpoint_id == endpoint.id]
                self.pending = [p for p in self.pending if p.endpoint_id != endpoint.id]
                entries[0]["disabled"] = True
                entries[0]["dropped"] = [p.event_id for p in dropped]
            else:
                item.due = now + RETRY_INTERVAL
                entries[0]["next_attempt"] = int(item.due)
                self.pending.append(item)
        self.log.extend(entries)
        return entries

    def _entry(self, item: Pending, outcome: _Outcome, now: float, *, duplicate: bool) -> dict[str, Any]:
        endpoint = self.endpoints.get(item.endpoint_id)
        return {
            "id": len(self.log) + 1 + (1 if duplicate else 0),
            "endpoint": item.endpoint_id,
            "account": endpoint.account if endpoint else None,
            "event": item.event_id,
            "event_type": item.event_type,
            "attempt": item.attempts,
            "status": outcome.status,
            "error": outcome.error,
            "succeeded": outcome.succeeded,
            "duplicate": duplicate,
            "reordered": item.reordered,
            "timestamp": int(now),
            "next_attempt": None,
            "disabled": False,
        }

    def retry_failed_now(self) -> int:
        """Make every delivery waiting for its hourly retry due now, as an admin's "retry" in Invoiced's
        webhook log does; returns how many."""
        with self._changed:
            now = self.clock.webhook_now()
            waiting = [p for p in self.pending if p.attempts > 0 and p.due > now]
            for item in waiting:
                item.due = now
            self._changed.notify_all()
        return len(waiting)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until nothing is due or in flight (deliveries scheduled later do not count)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                busy = self._in_flight > 0 or bool(self._eligible(self.clock.webhook_now()))
                if not busy:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.05))

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._changed:
                if self.settings().webhook_delivery != "background":
                    self._changed.wait(0.2)
                    continue
                eligible = self._eligible(self.clock.webhook_now())
                if not eligible:
                    upcoming = [
                        p.due
                        for p in self.pending
                        if (e := self.endpoints.get(p.endpoint_id)) is not None and e.enabled and not e.paused
                    ]
                    wait = self.clock.real_seconds_until(min(upcoming)) if upcoming else 0.2
                    self._changed.wait(min(max(wait, 0.005), 0.2))
                    continue
            if not self.deliver_due():
                time.sleep(0.02)
