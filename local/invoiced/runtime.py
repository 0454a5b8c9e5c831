"""Everything the two listeners share: both accounts, settings, faults, clock, webhooks and counters."""

from __future__ import annotations

import secrets
import threading
from collections import Counter, deque
from dataclasses import replace
from typing import Any

from local.common.faults import FaultPlan
from local.invoiced.account import Account, Actor
from local.invoiced.cards import TokenVault
from local.invoiced.catalog import Items, Plans, Subscriptions
from local.invoiced.clock import Clock
from local.invoiced.customers import Contacts, Customers, Notes, PaymentSources
from local.invoiced.documents import CreditNotes, Estimates, Invoices
from local.invoiced.events import Events
from local.invoiced.payments import Payments
from local.invoiced.settings import FAULT_KINDS, InvoicedSettings
from local.invoiced.webhooks import WebhookDispatcher

PRODUCTION = "production"
SANDBOX = "sandbox"
ACCOUNTS = (PRODUCTION, SANDBOX)


def build_account(
    name: str,
    api_key: str,
    clock: Clock,
    vault: TokenVault,
    *,
    currency: str,
    id_base: int,
    event_id_base: int,
) -> Account:
    acct = Account(
        name,
        api_key,
        clock,
        currency=currency,
        id_base=id_base,
        event_id_base=event_id_base,
        slug="billsync" if name == PRODUCTION else "billsync-sandbox",
    )
    acct.customers = Customers(acct)
    acct.contacts = Contacts(acct)
    acct.notes = Notes(acct)
    acct.payment_sources = PaymentSources(acct, vault)
    acct.invoices = Invoices(acct)
    acct.credit_notes = CreditNotes(acct)
    acct.estimates = Estimates(acct)
    acct.items = Items(acct)
    acct.plans = Plans(acct)
    acct.subscriptions = Subscriptions(acct)
    acct.payments = Payments(acct)
    acct.events = Events(acct)
    for service in (
        acct.customers,
        acct.contacts,
        acct.notes,
        acct.payment_sources,
        acct.invoices,
        acct.credit_notes,
        acct.estimates,
        acct.items,
        acct.plans,
        acct.subscriptions,
        acct.payments,
        acct.events,
    ):
        acct.register(service)
    return acct


class ConcurrencyLimiter:
    """Invoiced's rate limit: at most N requests in flight per API key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()

    def acquire(self, key: str, limit: int) -> bool:
        with self._lock:
            if self._in_flight[key] >= limit:
                return False
            self._in_flight[key] += 1
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self._in_flight[key] -= 1
            if self._in_flight[key] <= 0:
                del self._in_flight[key]

    def in_flight(self, key: str) -> int:
        with self._lock:
            return self._in_flight[key]


class Runtime:
    def __init__(self, settings: InvoicedSettings, ca_file: str) -> None:
        settings.validate()
        self.initial_settings = replace(settings, faults=replace(settings.faults))
        self.settings = settings
        self.api_keys = {
            PRODUCTION: settings.api_key or f"live_{secrets.token_hex(16)}",
            SANDBOX: settings.sandbox_api_key or f"sandbox_{secrets.token_hex(16)}",
        }
        self.clock = Clock(settings.webhook_clock_scale)
        self.vault = TokenVault()
        self.faults = FaultPlan(replace(settings.faults), kinds=FAULT_KINDS)
        self.limiter = ConcurrencyLimiter()
        self.dispatcher = WebhookDispatcher(self.clock, lambda: self.settings, ca_file)
        self.accounts = {
            PRODUCTION: build_account(
                PRODUCTION,
                self.api_keys[PRODUCTION],
                self.clock,
                self.vault,
                currency=settings.currency,
                id_base=1000,
                event_id_base=90000,
            ),
            SANDBOX: build_account(
                SANDBOX,
                self.api_keys[SANDBOX],
                self.clock,
                self.vault,
                currency=settings.currency,
                id_base=700000,
                event_id_base=990000,
            ),
        }
        for acct in self.accounts.values():
            acct.listeners.append(self.dispatcher.on_event)
        self.base_urls: dict[str, str] = {}
        self._counts_lock = threading.Lock()
        self.calls: dict[str, Counter[str]] = {name: Counter() for name in ACCOUNTS}
        self.requests: deque[dict[str, Any]] = deque(maxlen=20000)
        self.idempotency: dict[tuple[str, str], tuple[int, bytes, int]] = {}
        self.cursors: set[tuple[str, tuple[tuple[str, str], ...], int]] = set()

    def account(self, name: str) -> Account:
        try:
            return self.accounts[name]
        except KeyError:
            raise KeyError(f"unknown account {name!r}; use 'production' or 'sandbox'") from None

    def count(self, account: str, route: str) -> None:
        with self._counts_lock:
            self.calls[account][route] += 1

    def call_counts(self, account: str | None = None) -> dict[str, int]:
        with self._counts_lock:
            total: Counter[str] = Counter()
            for name in [account] if account else list(self.calls):
                total.update(self.calls[name])
            return dict(total)

    def request_log(self) -> list[dict[str, Any]]:
        with self._counts_lock:
            return [dict(r) for r in self.requests]

    def record_request(self, entry: dict[str, Any]) -> None:
        with self._counts_lock:
            self.requests.append(entry)

    def apply_settings(self, settings: InvoicedSettings) -> None:
        if settings.webhook_clock_scale != self.settings.webhook_clock_scale:
            self.clock.set_scale(settings.webhook_clock_scale)
        if settings.webhook_seed != self.settings.webhook_seed:
            self.dispatcher.reseed(settings.webhook_seed)
        self.settings = settings
        self.dispatcher.wake()

    def reset(self) -> None:
        """Back to a fresh pair of accounts: data, events, faults, counts, webhooks, clock and settings."""
        self.settings = replace(self.initial_settings, faults=replace(self.initial_settings.faults))
        self.faults.configure(replace(self.settings.faults))
        self.clock.reset(self.settings.webhook_clock_scale)
        self.dispatcher.reset()
        self.vault.reset()
        for acct in self.accounts.values():
            with acct.lock:
                acct.reset()
        with self._counts_lock:
            for counter in self.calls.values():
                counter.clear()
            self.requests.clear()
            self.idempotency.clear()
            self.cursors.clear()

    def refresh_statuses(self) -> None:
        for acct in self.accounts.values():
            with acct.lock:
                acct.invoices.refresh_statuses(Actor.api())
                acct.estimates.refresh_statuses(Actor.api())
