"""The Invoiced REST API of one account, as a WSGI app.

Per request, in Invoiced's order: authenticate (HTTP Basic with the key as username, or Bearer), take
a slot of the per-key concurrency limit, draw an injected fault, route, refuse card numbers, replay or
record the `Idempotency-Key`, run the route. Every answer carries `Cache-Control: no-cache, no-store`
and `WWW-Authenticate: Basic realm="Invoiced"`; errors are `{"type", "message", "param"?}`.
"""

from __future__ import annotations

import json
import logging
import math
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

from local.invoiced.account import Account, Actor, Record, Service
from local.invoiced.cards import refuse_card_numbers
from local.invoiced.documents import DocumentService
from local.invoiced.errors import ApiError, invalid
from local.invoiced.runtime import Runtime
from local.invoiced.wire import dumps, parse_form, parse_query, php_int

LOG = logging.getLogger("local.invoiced")

DEFAULT_PER_PAGE = 100
PAGE_LIMIT = 100
CURSOR_REQUIRED_OFFSET = 10000
IDEMPOTENCY_MIN = 6
IDEMPOTENCY_MAX = 64
IDEMPOTENCY_TTL = 86400  # Invoiced keeps a key's first response for a day

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_HTML = {
    502: "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
    "</center>\r\n</body>\r\n</html>\r\n",
    503: "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>"
    "503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n",
}


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    records: int = 0
    raw: bytes | None = None  # a pre-encoded body (idempotent replays, proxy pages)
    content_type: str = "application/json"


@dataclass
class Call:
    request: Request
    account: Account
    params: dict[str, str]
    query_pairs: list[tuple[str, str]]
    query: Record
    body: Record
    actor: Actor

    def include(self) -> frozenset[str]:
        return _names(self.query.get("include"))

    def expand(self) -> frozenset[str]:
        return _names(self.query.get("expand"))


def _names(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list):
        return frozenset(str(v) for v in value)
    return frozenset()


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Callable[[Call], Reply]


def _compile(template: str) -> re.Pattern[str]:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return re.compile(f"^{regex}/?$")


class InvoicedApi:
    """The API of one account; `/_emulator/...` requests go to the control app."""

    def __init__(self, runtime: Runtime, account_name: str, control: WsgiApp) -> None:
        self.runtime = runtime
        self.account_name = account_name
        self.control = control
        self.routes = self._routes()

    @property
    def account(self) -> Account:
        return self.runtime.account(self.account_name)

    # -- WSGI ---------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.path == "/_emulator" or request.path.startswith("/_emulator/"):
            return self.control(environ, start_response)
        started = time.monotonic()
        route, params, allowed = self._match(request.method, request.path)
        template = route.template if route else "(unrecognized)"
        self.runtime.count(self.account_name, f"{request.method} {template}")
        drop = False
        try:
            reply, drop = self._handle(request, route, params, allowed)
        except Exception:
            # An unexpected failure is Invoiced's 500, never a stack trace on the wire.
            LOG.exception("unexpected failure handling %s %s", request.method, template)
            reply = self._error(ApiError(500, _server_error_message()))
        self.runtime.record_request(
            {
                "account": self.account_name,
                "method": request.method,
                "route": template,
                "status": reply.status,
                "ms": round((time.monotonic() - started) * 1000, 2),
                "dropped": drop,
            }
        )
        if drop:
            _drop_connection(environ)
        return self._send(reply, start_response)

    def _send(self, reply: Reply, start_response: StartResponse) -> Iterable[bytes]:
        if reply.raw is not None:
            payload = reply.raw
        elif reply.status == 204 or reply.body is None:
            payload = b""
        else:
            payload = dumps(reply.body)
        headers = list(reply.headers.items())
        if reply.status != 204:
            headers.append(("Content-Type", reply.content_type))
        headers.append(("Content-Length", str(len(payload))))
        start_response(f"{reply.status} {HTTP_STATUS_CODES.get(reply.status, 'Unknown')}", headers)
        return [payload]

    # -- request pipeline ---------------------------------------------------------------------------

    def _handle(
        self, request: Request, route: Route | None, params: dict[str, str], allowed: list[str]
    ) -> tuple[Reply, bool]:
        account = self.account
        try:
            self._authenticate(request, account)
        except ApiError as error:
            return self._error(error, request), False
        settings = self.runtime.settings
        if not self.runtime.limiter.acquire(account.api_key, settings.concurrency_limit):
            return self._rate_limited(request), False
        try:
            fault = self.runtime.faults.draw(self.runtime.faults.kinds)
            if fault is not None and fault != "connection_drop":
                self.runtime.faults.sleep(0)
                return self._fault(fault, request), False
            reply = self._dispatch(request, account, route, params, allowed)
            self.runtime.faults.sleep(reply.records)
            return reply, fault == "connection_drop"
        finally:
            self.runtime.limiter.release(account.api_key)

    def _dispatch(
        self,
        request: Request,
        account: Account,
        route: Route | None,
        params: dict[str, str],
        allowed: list[str],
    ) -> Reply:
        try:
            if route is None:
                if allowed:
                    raise ApiError(405, f"Method not allowed: {request.method} {request.path}")
                raise ApiError(404, f"Request was not recognized: {request.method} {request.path}")
            query_pairs, query = parse_query(request.query_string.decode("latin-1"))
            refuse_card_numbers(list(params.values()), "path")
            refuse_card_numbers(dict(query_pairs), "")
            body = self._body(request)
            refuse_card_numbers(body)
            key = self._idempotency_key(request)
        except ApiError as error:
            return self._error(error, request)
        cache_key = (account.api_key, key) if key else None
        if cache_key is not None:
            cached = self.runtime.idempotency.get(cache_key)
            if cached is not None and account.now() - cached[2] < IDEMPOTENCY_TTL:
                status, raw, _ = cached
                return Reply(status, raw=raw, headers=self._standard_headers(request), records=1)
        call = Call(request, account, params, query_pairs, query, body, Actor.api())
        try:
            with account.lock:
                reply = route.handler(call)
        except ApiError as error:
            reply = self._error(error, request)
        reply.headers = {**self._standard_headers(request), **reply.headers}
        if cache_key is not None:
            raw = dumps(reply.body) if reply.body is not None and reply.status != 204 else b""
            self.runtime.idempotency[cache_key] = (reply.status, raw, account.now())
        return reply

    def _authenticate(self, request: Request, account: Account) -> None:
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            token = header[7:].strip()
            if not token:
                raise ApiError(401, _MISSING_KEY)
            if token != account.api_key:
                raise ApiError(401, f"We could not authenticate you with the API Key: {_scrub(token)}")
            return
        auth = request.authorization
        username = auth.username if auth is not None and auth.type == "basic" else None
        password = auth.password if auth is not None and auth.type == "basic" else None
        if username and password:
            raise ApiError(401, f"We did not find an account matching the username: {username}")
        if not username:
            raise ApiError(401, _MISSING_KEY)
        if username != account.api_key:
            raise ApiError(401, f"We could not authenticate you with the API Key: {_scrub(username)}")

    def _idempotency_key(self, request: Request) -> str | None:
        key = request.headers.get("Idempotency-Key")
        if not key:
            return None
        if request.method not in ("POST", "PATCH"):
            raise invalid(
                f"Unsupported method: {request.method}. Idempotency keys can only be used with POST and PATCH "
                "requests."
            )
        if len(key) < IDEMPOTENCY_MIN:
            raise invalid(
                f"Idempotency key is too short. Must be at least {IDEMPOTENCY_MIN} characters long."
            )
        if len(key) > IDEMPOTENCY_MAX:
            raise invalid(
                f"Idempotency key is too long. Must be no longer than {IDEMPOTENCY_MAX} characters."
            )
        return key

    @staticmethod
    def _body(request: Request) -> Record:
        raw = request.get_data(cache=True)
        if not raw.strip():
            return {}
        text = raw.decode("utf-8", errors="replace")
        if request.mimetype == "application/json" or (not request.mimetype and text.lstrip().startswith("{")):
            try:
                parsed = json.loads(text)
            except ValueError:
                raise invalid("Request body is not valid JSON.") from None
            if not isinstance(parsed, dict):
                raise invalid("Request body must be a JSON object.")
            return parsed
        return parse_form(text)

    def _standard_headers(self, request: Request) -> dict[str, str]:
        headers = {"Cache-Control": "no-cache, no-store"}
        if "X-App-Version" not in request.headers:
            headers["WWW-Authenticate"] = 'Basic realm="Invoiced"'
        return headers

    def _error(self, error: ApiError, request: Request | None = None) -> Reply:
        headers = (
            self._standard_headers(request)
            if request is not None
            else {"Cache-Control": "no-cache, no-store"}
        )
        return Reply(error.status, error.body(), headers)

    def _rate_limited(self, request: Request) -> Reply:
        limit = self.runtime.settings.concurrency_limit
        message = f"Too many concurrent requests! You can only make {limit} concurrent requests at a time."
        return self._error(ApiError(429, message), request)

    def _fault(self, kind: str, request: Request) -> Reply:
        if kind == "rate_limited":
            return self._rate_limited(request)
        if kind == "server_error":
            return self._error(ApiError(500, _server_error_message()), request)
        status = 502 if kind.startswith("bad_gateway") else 503
        if kind.endswith("_html"):
            return Reply(status, raw=_HTML[status].encode(), content_type="text/html")
        return Reply(status, raw=b"", content_type="text/plain")

    # -- routing ------------------------------------------------------------------------------------

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
        allowed: list[str] = []
        for route in self.routes:
            match = route.pattern.match(path)
            if match is None:
                continue
            if route.method == method:
                return route, match.groupdict(), []
            allowed.append(route.method)
        return None, {}, allowed

    def _routes(self) -> list[Route]:
        table: list[tuple[str, str, Callable[[Call], Reply]]] = [
            ("GET", "/customers", self._lister("customers")),
            ("POST", "/customers", self._creator("customers")),
            ("GET", "/customers/{id}/balance", self._customer_balance),
            ("GET", "/customers/{id}/contacts", self._customer_list("contacts")),
            ("POST", "/customers/{id}/contacts", self._contact_create),
            ("GET", "/customers/{id}/contacts/{contact_id}", self._contact_retrieve),
            ("PATCH", "/customers/{id}/contacts/{contact_id}", self._contact_update),
            ("DELETE", "/customers/{id}/contacts/{contact_id}", self._contact_delete),
            ("GET", "/customers/{id}/notes", self._customer_list("notes")),
            ("GET", "/customers/{id}/payment_sources", self._customer_list("payment_sources")),
            ("POST", "/customers/{id}/payment_sources", self._source_create),
            ("DELETE", "/customers/{id}/cards/{source_id}", self._source_deleter("card")),
            ("DELETE", "/customers/{id}/bank_accounts/{source_id}", self._source_deleter("bank_account")),
            ("GET", "/customers/{id}", self._retriever("customers")),
            ("PATCH", "/customers/{id}", self._updater("customers")),
            ("DELETE", "/customers/{id}", self._deleter("customers")),
            ("GET", "/notes", self._lister("notes")),
            ("POST", "/notes", self._creator("notes")),
            ("PATCH", "/notes/{id}", self._updater("notes")),
            ("DELETE", "/notes/{id}", self._deleter("notes")),
            ("GET", "/invoices/{id}/notes", self._invoice_notes),
            ("POST", "/estimates/{id}/invoice", self._estimate_invoice),
            ("GET", "/events", self._lister("events")),
            ("GET", "/events/{id}", self._retriever("events")),
        ]
        for collection in ("invoices", "credit_notes", "estimates"):
            table += [
                ("GET", f"/{collection}", self._lister(collection)),
                ("POST", f"/{collection}", self._creator(collection)),
                ("POST", f"/{collection}/{{id}}/void", self._voider(collection)),
                ("GET", f"/{collection}/{{id}}", self._retriever(collection)),
                ("PATCH", f"/{collection}/{{id}}", self._updater(collection)),
                ("DELETE", f"/{collection}/{{id}}", self._deleter(collection)),
            ]
        for collection in ("subscriptions", "payments", "plans", "items"):
            table += [
                ("GET", f"/{collection}", self._lister(collection)),
                ("POST", f"/{collection}", self._creator(collection)),
                ("GET", f"/{collection}/{{id}}", self._retriever(collection)),
                ("PATCH", f"/{collection}/{{id}}", self._updater(collection)),
                ("DELETE", f"/{collection}/{{id}}", self._deleter(collection)),
            ]
        return [Route(method, template, _compile(template), handler) for method, template, handler in table]

    # -- generic handlers ---------------------------------------------------------------------------

    def _object(self, call: Call, service: Service, rec: Record) -> Record:
        obj = service.render_for_api(rec, call.include())
        return expand(call.account, obj, call.expand())

    def _lister(self, collection: str) -> Callable[[Call], Reply]:
        def handler(call: Call) -> Reply:
            service = call.account.service(collection)
            return self._paginate(call, service, service.list_records(call.query))

        return handler

    def _retriever(self, collection: str) -> Callable[[Call], Reply]:
        def handler(call: Call) -> Reply:
            service = call.account.service(collection)
            return Reply(200, self._object(call, service, service.get(call.params["id"])), records=1)

        return handler

    def _creator(self, collection: str) -> Callable[[Call], Reply]:
        def handler(call: Call) -> Reply:
            service = call.account.service(collection)
            rec = service.create(dict(call.body), call.actor)
            return Reply(201, self._object(call, service, rec), records=1)

        return handler

    def _updater(self, collection: str) -> Callable[[Call], Reply]:
        def handler(call: Call) -> Reply:
            service = call.account.service(collection)
            rec = service.update(service.get(call.params["id"]), dict(call.body), call.actor)
            return Reply(200, self._object(call, service, rec), records=1)

        return handler

    def _deleter(self, collection: str) -> Callable[[Call], Reply]:
        def handler(call: Call) -> Reply:
            service = call.account.service(collection)
            result = service.delete(service.get(call.params["id"]), call.actor)
            if result is None:
                return Reply(204)
            return Reply(200, self._object(call, service, result), records=1)

        return handler

    def _voider(self, collection: str) -> Callable[[Call], Reply]:
        def handler(call: Call) -> Reply:
            service = call.account.service(collection)
            assert isinstance(service, DocumentService)
            rec = service.void(service.get(call.params["id"]), call.actor)
            return Reply(200, self._object(call, service, rec), records=1)

        return handler

    def _customer_list(self, collection: str) -> Callable[[Call], Reply]:
        def handler(call: Call) -> Reply:
            customer = call.account.customers.get(call.params["id"])
            service = call.account.service(collection)
            query = {**call.query, "_customer": customer["id"]}
            return self._paginate(call, service, service.list_records(query))

        return handler

    # -- nested and custom routes -------------------------------------------------------------------

    def _customer_balance(self, call: Call) -> Reply:
        customer = call.account.customers.get(call.params["id"])
        return Reply(200, call.account.customers.balance(customer), records=1)

    def _contact_create(self, call: Call) -> Reply:
        customer = call.account.customers.get(call.params["id"])
        rec = call.account.contacts.create_for(customer, dict(call.body), call.actor)
        return Reply(201, self._object(call, call.account.contacts, rec), records=1)

    def _contact(self, call: Call) -> Record:
        customer = call.account.customers.get(call.params["id"])
        return call.account.contacts.get_for(customer, call.params["contact_id"])

    def _contact_retrieve(self, call: Call) -> Reply:
        return Reply(200, self._object(call, call.account.contacts, self._contact(call)), records=1)

    def _contact_update(self, call: Call) -> Reply:
        rec = call.account.contacts.update(self._contact(call), dict(call.body), call.actor)
        return Reply(200, self._object(call, call.account.contacts, rec), records=1)

    def _contact_delete(self, call: Call) -> Reply:
        call.account.contacts.delete(self._contact(call), call.actor)
        return Reply(204)

    def _source_create(self, call: Call) -> Reply:
        customer = call.account.customers.get(call.params["id"])
        rec = call.account.payment_sources.create_for(customer, dict(call.body), call.actor)
        return Reply(200, call.account.payment_sources.render(rec), records=1)

    def _source_deleter(self, kind: str) -> Callable[[Call], Reply]:
        def handler(call: Call) -> Reply:
            customer = call.account.customers.get(call.params["id"])
            sources = call.account.payment_sources
            sources.delete(sources.get_for(customer, kind, call.params["source_id"]), call.actor)
            return Reply(204)

        return handler

    def _invoice_notes(self, call: Call) -> Reply:
        invoice = call.account.invoices.get(call.params["id"])
        query = {**call.query, "_invoice": invoice["id"]}
        return self._paginate(call, call.account.notes, call.account.notes.list_records(query))

    def _estimate_invoice(self, call: Call) -> Reply:
        estimate = call.account.estimates.get(call.params["id"])
        invoice = call.account.estimates.to_invoice(estimate, call.actor)
        return Reply(201, self._object(call, call.account.invoices, invoice), records=1)

    # -- pagination ---------------------------------------------------------------------------------

    def _paginate(self, call: Call, service: Service, records: list[Record]) -> Reply:
        raw_per_page = call.query.get("per_page")
        per_page = php_int(raw_per_page) if raw_per_page not in (None, "", "0") else DEFAULT_PER_PAGE
        per_page = max(1, min(PAGE_LIMIT, per_page))
        raw_page = call.query.get("page")
        page = max(1, php_int(raw_page) if raw_page not in (None, "", "0") else 1)
        total = len(records)
        offset = (page - 1) * per_page
        natural = [key for key, _ in service.parse_sort(call.query.get("sort"))] == ["id"]
        kept = [(k, v) for k, v in call.query_pairs if k not in ("page", "per_page")]
        signature = (call.account.name, (*kept, ("per_page", str(per_page))))
        if natural and offset >= CURSOR_REQUIRED_OFFSET and (*signature, offset) not in self.runtime.cursors:
            raise invalid("You must retrieve all preceding page numbers before retrieving this page.")
        rows = records[offset : offset + per_page]
        if natural and rows:
            self.runtime.cursors.add((*signature, offset + per_page))
        body = [self._object(call, service, rec) for rec in rows]
        headers = {"X-Total-Count": str(total), "Link": self._links(call, page, per_page, total)}
        return Reply(200, body, headers, records=len(body))

    def _links(self, call: Call, page: int, per_page: int, total: int) -> str:
        page_count = max(1, math.ceil(total / per_page))
        base = self.runtime.base_urls.get(self.account_name, "") + call.request.path.rstrip("/")
        query: dict[str, str] = {}
        for key, value in call.query_pairs:
            query[key] = value
        query.pop("per_page", None)
        if per_page != DEFAULT_PER_PAGE:
            query["per_page"] = str(per_page)

        def link(number: int) -> str:
            parts = dict(query)
            parts["page"] = str(number)
            return f"{base}?{urlencode(list(parts.items()))}"

        links = [("self", link(page)), ("first", link(1))]
        if page > 1:
            links.append(("previous", link(page - 1)))
        if page < page_count:
            links.append(("next", link(page + 1)))
        links.append(("last", link(page_count)))
        return ", ".join(f'<{url}>; rel="{rel}"' for rel, url in links)


_EXPANDABLE = {
    "customer": "customers",
    "invoice": "invoices",
    "estimate": "estimates",
    "credit_note": "credit_notes",
    "subscription": "subscriptions",
    "payment": "payments",
}


def expand(account: Account, obj: Record, names: frozenset[str]) -> Record:
    """`?expand=customer,invoice`: replace id properties with the objects they name."""
    for name in names:
        collection = _EXPANDABLE.get(name)
        value = obj.get(name)
        if collection is None or not isinstance(value, int) or isinstance(value, bool):
            continue
        service = account.service(collection)
        rec = service.find(value)
        if rec is not None:
            obj[name] = service.render(rec)
    return obj


_MISSING_KEY = (
    "Missing API key! HINT: You can pass in your API key as the username parameter using HTTP Basic Auth."
)


def _scrub(key: str) -> str:
    if len(key) <= 6:
        return key
    return key[:3] + "*" * (len(key) - 6) + key[-3:]


def _server_error_message() -> str:
    return (
        "There was an error processing your request. Our engineers have been notified and will be looking into "
        "it soon. If you would like help then you can reach us at support@invoiced.com.\n\n"
        f"Correlation ID: {uuid.uuid4()}"
    )


def _drop_connection(environ: dict[str, Any]) -> None:
    """Close the client's connection before it gets an answer (the request has been processed)."""
    sock = environ.get("werkzeug.socket")
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        return
