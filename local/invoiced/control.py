"""The control API: set up data, act as a user, inject faults, drive webhooks and the clock.

The same operations are available in-process (`InvoicedEmulator.control`) and over HTTP under
`/_emulator/` on both listeners (JSON in and out, no authentication; an `account` field or query
parameter picks the account, defaulting to the listener's own). Seeding and "act as a user" writes
go through the same code paths as the API, so they validate, number, compute and emit events alike;
`quiet` seeding records no events and sends no webhooks (the data was there before billsync looked).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

from local.common.faults import FaultPlan, FaultSettings
from local.invoiced.account import Actor, Record
from local.invoiced.cards import bank_details, card_details, refuse_card_numbers
from local.invoiced.documents import DocumentService
from local.invoiced.errors import ApiError
from local.invoiced.runtime import PRODUCTION, Runtime
from local.invoiced.settings import InvoicedSettings
from local.invoiced.wire import dumps

SEED_ORDER = (
    "items",
    "plans",
    "customers",
    "invoices",
    "credit_notes",
    "estimates",
    "subscriptions",
    "notes",
    "payments",
)
ACTIONS = ("create", "update", "delete", "void", "pay", "approve", "view", "send", "invoice", "cancel")

StartResponse = Callable[..., Any]


class Control:
    """In-process control of both accounts (`emu.control`)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    # -- data -----------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Fresh accounts: no data or events, default settings and faults, no webhooks, clock at real time."""
        self.runtime.reset()

    def seed(self, data: dict[str, Any], *, account: str = PRODUCTION, quiet: bool = True) -> dict[str, Any]:
        """Create objects in dependency order; returns their ids and the ids of `ref`-named objects.

        Any object may carry `"ref": "acme"`; a later string value `"@acme"` is replaced by its id.
        `created_at`/`updated_at` may be given explicitly. Customers may nest `contacts` and
        `payment_sources` (`{"token": "tok_visa"}`).
        """
        unknown = set(data) - set(SEED_ORDER)
        if unknown:
            raise ValueError(f"unknown seed collections: {sorted(unknown)}; known: {list(SEED_ORDER)}")
        refuse_card_numbers(data)
        acct = self.runtime.account(account)
        refs: dict[str, Any] = {}
        result: dict[str, Any] = {"refs": refs}
        with acct.lock:
            for collection in SEED_ORDER:
                for raw in data.get(collection, []):
                    entry = _resolve(dict(raw), refs)
                    ref = entry.pop("ref", None)
                    contacts = entry.pop("contacts", []) if collection == "customers" else []
                    sources = entry.pop("payment_sources", []) if collection == "customers" else []
                    actor = _seed_actor(entry, quiet)
                    rec = acct.service(collection).create(entry, actor)
                    result.setdefault(collection, []).append(rec["id"])
                    if ref:
                        refs[str(ref)] = rec["id"]
                    for contact in contacts:
                        contact_entry = _resolve(dict(contact), refs)
                        contact_ref = contact_entry.pop("ref", None)
                        contact_rec = acct.contacts.create_for(
                            rec, contact_entry, _seed_actor(contact_entry, quiet)
                        )
                        result.setdefault("contacts", []).append(contact_rec["id"])
                        if contact_ref:
                            refs[str(contact_ref)] = contact_rec["id"]
                    for source in sources:
                        source_rec = acct.payment_sources.create_for(
                            rec, _source_request(dict(source)), _seed_actor({}, quiet)
                        )
                        result.setdefault("payment_sources", []).append(source_rec["id"])
        return result

    def dump(
        self, account: str = PRODUCTION, resources: Iterable[str] | None = None
    ) -> dict[str, list[Record]]:
        """Every object of the account in its API shape (payments with `applied_to`), plus the events."""
        acct = self.runtime.account(account)
        wanted = (
            list(resources)
            if resources is not None
            else [*SEED_ORDER, "contacts", "payment_sources", "events"]
        )
        result: dict[str, list[Record]] = {}
        with acct.lock:
            for collection in wanted:
                service = acct.service(collection)
                if collection == "events":
                    result[collection] = [e.payload for e in acct.event_log]
                    continue
                rows = sorted(service.table.values(), key=lambda r: str(r["id"]).zfill(20))
                result[collection] = [service.render_for_api(r, frozenset({"applied_to"})) for r in rows]
        plain: dict[str, list[Record]] = json.loads(dumps(result))
        return plain

    def act(
        self,
        action: str,
        resource: str,
        object_id: Any = None,
        data: dict[str, Any] | None = None,
        *,
        account: str = PRODUCTION,
    ) -> Record | None:
        """A team member (or the customer, for `view` and `approve`) changing data in Invoiced.

        Actions: create, update, delete (any resource); void (invoices, credit notes, estimates,
        payments); pay (invoices: records a payment, default the whole balance); approve (estimates,
        `data.approved` names the approver); view (documents: `<object>.viewed`); send (documents);
        invoice (estimates: generate the invoice); cancel (subscriptions).
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; known: {list(ACTIONS)}")
        payload = dict(data or {})
        refuse_card_numbers(payload)
        acct = self.runtime.account(account)
        actor = Actor.dashboard()
        with acct.lock:
            service = acct.service(resource)
            if action == "create":
                if resource == "payment_sources":
                    customer = acct.customers.get(payload.pop("customer", None))
                    rec = acct.payment_sources.create_for(customer, _source_request(payload), actor)
                elif resource == "contacts":
                    customer = acct.customers.get(payload.pop("customer", None))
                    rec = acct.contacts.create_for(customer, payload, actor)
                else:
                    rec = service.create(payload, actor)
                return _plain(service.render_for_api(rec, frozenset({"applied_to"})))
            target = service.get(object_id)
            result: Record | None
            if action == "update":
                result = service.update(target, payload, actor)
            elif action in ("delete", "cancel"):
                result = service.delete(target, actor)
            elif action == "void":
                result = (
                    service.void(target, actor)
                    if isinstance(service, DocumentService)
                    else service.delete(target, actor)
                )
            elif action == "pay":
                _require(resource == "invoices", "pay applies to invoices")
                result = acct.payments.pay_invoice(target, payload, actor)
                service = acct.payments
            elif action == "approve":
                _require(resource == "estimates", "approve applies to estimates")
                result = acct.estimates.approve(
                    target, str(payload.get("approved", "Customer")), Actor.customer()
                )
            elif action == "view":
                _require(isinstance(service, DocumentService), "view applies to documents")
                assert isinstance(service, DocumentService)
                result = service.mark(target, "viewed", f"{service.object_type}.viewed", Actor.customer())
            elif action == "send":
                _require(isinstance(service, DocumentService), "send applies to documents")
                assert isinstance(service, DocumentService)
                result = service.mark(target, "sent", f"{service.object_type}.updated", actor)
            else:
                _require(resource == "estimates", "invoice applies to estimates")
                result = acct.estimates.to_invoice(target, actor)
                service = acct.invoices
            return (
                _plain(service.render_for_api(result, frozenset({"applied_to"})))
                if result is not None
                else None
            )

    def events(self, account: str = PRODUCTION) -> list[Record]:
        """The account's events, oldest first, exactly as the API and webhooks send them."""
        acct = self.runtime.account(account)
        with acct.lock:
            return [_plain(e.payload) for e in acct.event_log]

    # -- observation ----------------------------------------------------------------------------------

    def calls(self, account: str | None = None) -> dict[str, int]:
        """API calls received, by `METHOD /route/{template}` (both accounts unless one is named)."""
        return self.runtime.call_counts(account)

    def requests(self, account: str | None = None) -> list[dict[str, Any]]:
        """The request log: account, method, route template, status, milliseconds (never request data)."""
        return [r for r in self.runtime.request_log() if account is None or r["account"] == account]

    # -- faults and settings --------------------------------------------------------------------------

    @property
    def faults(self) -> FaultPlan:
        return self.runtime.faults

    def set_faults(self, **changes: Any) -> FaultSettings:
        return self.runtime.faults.update(changes)

    @property
    def settings(self) -> InvoicedSettings:
        return self.runtime.settings

    def update_settings(self, **changes: Any) -> InvoicedSettings:
        settings = self.runtime.settings.updated(changes)
        self.runtime.apply_settings(settings)
        return settings

    # -- webhooks -------------------------------------------------------------------------------------

    def add_webhook(
        self,
        url: str,
        secret: str | None = None,
        account: str = PRODUCTION,
        events: Iterable[str] | None = None,
    ) -> int:
        """Register an endpoint for the account's events; returns its id (the secret is in `webhooks()`)."""
        self.runtime.account(account)
        endpoint = self.runtime.dispatcher.add(account, url, secret, tuple(events or ("*",)))
        return endpoint.id

    def webhooks(self, account: str | None = None) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.runtime.dispatcher.endpoints_for(account)]

    def webhook_secret(self, endpoint_id: int) -> str:
        return self.runtime.dispatcher.endpoints[endpoint_id].secret

    def remove_webhook(self, endpoint_id: int) -> None:
        self.runtime.dispatcher.remove(endpoint_id)

    def pause_webhook(self, endpoint_id: int) -> dict[str, Any]:
        return self.runtime.dispatcher.set_paused(endpoint_id, True).to_json()

    def resume_webhook(self, endpoint_id: int) -> dict[str, Any]:
        return self.runtime.dispatcher.set_paused(endpoint_id, False).to_json()

    def enable_webhook(self, endpoint_id: int) -> dict[str, Any]:
        return self.runtime.dispatcher.enable(endpoint_id).to_json()

    def deliveries(self, account: str | None = None, endpoint: int | None = None) -> list[dict[str, Any]]:
        """Every delivery attempt: endpoint, event, attempt number, status or error, webhook-clock time."""
        return [
            dict(entry)
            for entry in list(self.runtime.dispatcher.log)
            if (account is None or entry["account"] == account)
            and (endpoint is None or entry["endpoint"] == endpoint)
        ]

    def pending_deliveries(self) -> int:
        return len(self.runtime.dispatcher.pending)

    def deliver_due(self) -> list[dict[str, Any]]:
        """Deliver every attempt due now (in either delivery mode); returns the new log entries."""
        return self.runtime.dispatcher.deliver_due()

    def retry_failed_deliveries(self) -> int:
        """Retry now every delivery whose last attempt failed (instead of an hour later)."""
        return self.runtime.dispatcher.retry_failed_now()

    def wait_for_deliveries(self, timeout: float = 5.0) -> bool:
        """Background mode: wait until no delivery is due or in flight."""
        return self.runtime.dispatcher.wait_idle(timeout)

    # -- clock ----------------------------------------------------------------------------------------

    def clock(self) -> dict[str, Any]:
        clock = self.runtime.clock
        return {
            "now": int(clock.now()),
            "webhook_now": int(clock.webhook_now()),
            "offset": clock.offset,
            "webhook_clock_scale": clock.scale,
        }

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move Invoiced's time forward: timestamps, due dates (past_due) and webhook retries follow."""
        self.runtime.clock.advance(seconds)
        self.runtime.refresh_statuses()
        self.runtime.dispatcher.wake()
        return self.clock()

    # -- payment tokens -------------------------------------------------------------------------------

    def tokenize_card(
        self,
        brand: str = "Visa",
        last4: str = "4242",
        exp_month: int = 12,
        exp_year: int = 2034,
        funding: str = "credit",
    ) -> str:
        """A single-use card token, as Invoiced.js or a gateway would return (no card number needed)."""
        return self.runtime.vault.mint(card_details(brand, last4, exp_month, exp_year, funding))

    def tokenize_bank_account(
        self,
        bank_name: str = "STRIPE TEST BANK",
        last4: str = "6789",
        routing_number: str = "110000000",
        verified: bool = True,
        currency: str = "usd",
    ) -> str:
        return self.runtime.vault.mint(bank_details(bank_name, last4, routing_number, verified, currency))


def _resolve(value: Any, refs: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("@") and value[1:] in refs:
        return refs[value[1:]]
    if isinstance(value, dict):
        return {k: _resolve(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, refs) for v in value]
    return value


def _seed_actor(entry: Record, quiet: bool) -> Actor:
    created = entry.pop("created_at", None)
    updated = entry.pop("updated_at", None)
    actor = Actor.api()
    actor.quiet = quiet
    actor.created_at = int(created) if created is not None else None
    actor.updated_at = int(updated) if updated is not None else actor.created_at
    return actor


def _source_request(source: Record) -> Record:
    request = dict(source)
    if "token" in request:
        request["gateway_token"] = request.pop("token")
    return request


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _plain(value: Record) -> Record:
    result: Record = json.loads(dumps(value))
    return result


class ControlApp:
    """`/_emulator/...` over HTTP; `account` defaults to the listener's own account."""

    def __init__(self, control: Control, default_account: str) -> None:
        self.control = control
        self.default_account = default_account

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            body = json.loads(request.get_data() or b"{}") if request.method in ("POST", "PATCH") else {}
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
            status, result = self._route(request, body)
        except ApiError as error:
            status, result = error.status, error.body()
        except (ValueError, KeyError, TypeError) as error:
            status, result = 400, {"error": str(error).strip("'\"")}
        payload = b"" if status == 204 else dumps(result)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, 'Unknown')}", headers)
        return [payload]

    def _account(self, request: Request, body: Record) -> str:
        return str(body.get("account") or request.args.get("account") or self.default_account)

    def _route(self, request: Request, body: Record) -> tuple[int, Any]:
        c = self.control
        method = request.method
        parts = [p for p in request.path.split("/") if p][1:]
        account = self._account(request, body)
        match (method, parts):
            case ("POST", ["reset"]):
                c.reset()
                return 200, {"reset": True}
            case ("POST", ["seed"]):
                return 200, c.seed(
                    body.get("data") or {}, account=account, quiet=bool(body.get("quiet", True))
                )
            case ("GET", ["dump"]):
                resources = request.args.get("resources")
                return 200, c.dump(account, resources.split(",") if resources else None)
            case ("GET", ["events"]):
                return 200, c.events(account)
            case ("POST", ["act"]):
                return 200, c.act(
                    str(body.get("action")),
                    str(body.get("resource")),
                    body.get("id"),
                    body.get("data"),
                    account=account,
                )
            case ("GET", ["calls"]):
                return 200, c.calls(request.args.get("account"))
            case ("GET", ["requests"]):
                return 200, c.requests(request.args.get("account"))
            case ("GET", ["faults"]):
                return 200, {"settings": c.faults.settings.to_json(), "injected": dict(c.faults.injected)}
            case ("PATCH", ["faults"]):
                return 200, {"settings": c.set_faults(**body).to_json(), "injected": dict(c.faults.injected)}
            case ("GET", ["settings"]):
                return 200, c.settings.to_json()
            case ("PATCH", ["settings"]):
                return 200, c.update_settings(**body).to_json()
            case ("GET", ["webhooks"]):
                return 200, c.webhooks(request.args.get("account"))
            case ("POST", ["webhooks"]):
                endpoint_id = c.add_webhook(
                    str(body["url"]), body.get("secret"), account=account, events=body.get("events")
                )
                return 201, next(w for w in c.webhooks() if w["id"] == endpoint_id)
            case ("DELETE", ["webhooks", endpoint_id]):
                c.remove_webhook(int(endpoint_id))
                return 204, None
            case ("POST", ["webhooks", endpoint_id, "pause"]):
                return 200, c.pause_webhook(int(endpoint_id))
            case ("POST", ["webhooks", endpoint_id, "resume"]):
                return 200, c.resume_webhook(int(endpoint_id))
            case ("POST", ["webhooks", endpoint_id, "enable"]):
                return 200, c.enable_webhook(int(endpoint_id))
            case ("GET", ["deliveries"]):
                endpoint = request.args.get("endpoint")
                return 200, c.deliveries(request.args.get("account"), int(endpoint) if endpoint else None)
            case ("POST", ["deliver_due"]):
                return 200, c.deliver_due()
            case ("GET", ["clock"]):
                return 200, c.clock()
            case ("POST", ["clock", "advance"]):
                return 200, c.advance_clock(float(body.get("seconds", 0)))
            case ("POST", ["tokens"]):
                kind = body.pop("type", "card")
                body.pop("account", None)
                token = c.tokenize_card(**body) if kind == "card" else c.tokenize_bank_account(**body)
                return 201, {"token": token}
            case ("GET", ["info"]):
                return 200, {"accounts": list(c.runtime.accounts), "base_urls": dict(c.runtime.base_urls)}
        raise ApiError(404, f"Control route not recognized: {method} {request.path}")
