"""One Invoiced account (production or sandbox): its objects, id sequences, numbering and event log.

Every write goes through a `Service` (one per resource) so the API, seeding and the control API's
"act as a user" operations share validation, side effects and events. Records are dicts keyed by the
API's own field names, so list filters and sorts read them directly; `Service.render` adds the rest
of the public shape.
"""

from __future__ import annotations

import copy
import random
import string
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar

from local.invoiced.clock import Clock
from local.invoiced.errors import ApiError, invalid, not_found
from local.invoiced.wire import php_int

if TYPE_CHECKING:
    from local.invoiced.catalog import Items, Plans, Subscriptions
    from local.invoiced.customers import Contacts, Customers, Notes, PaymentSources
    from local.invoiced.documents import CreditNotes, Estimates, Invoices
    from local.invoiced.events import Events
    from local.invoiced.payments import Payments

Record = dict[str, Any]

# Who an event says made the change: API keys act as Invoiced's API user, the customer (user -1)
# views and approves in the customer portal, and the control API's "act as a user" operations are
# a team member using the dashboard.
API_USER: Record = {
    "id": -2,
    "first_name": None,
    "last_name": None,
    "email": None,
    "two_factor_enabled": False,
    "registered": True,
    "created_at": None,
    "updated_at": None,
}
CUSTOMER_USER: Record = {**API_USER, "id": -1}
DASHBOARD_USER: Record = {
    "id": 1946,
    "first_name": "Pat",
    "last_name": "Accountant",
    "email": "pat.accountant@example.com",
    "two_factor_enabled": True,
    "registered": True,
    "created_at": 1563810757,
    "updated_at": 1563810757,
}


@dataclass
class Actor:
    """The author of a write: the event user, and whether events are recorded at all."""

    user: Record
    quiet: bool = False
    created_at: int | None = None
    updated_at: int | None = None

    @classmethod
    def api(cls) -> Actor:
        return cls(API_USER)

    @classmethod
    def dashboard(cls) -> Actor:
        return cls(DASHBOARD_USER)

    @classmethod
    def customer(cls) -> Actor:
        return cls(CUSTOMER_USER)


@dataclass
class EventEntry:
    id: int
    type: str
    timestamp: int
    object_type: str
    object_id: Any
    associations: frozenset[tuple[str, str]]
    payload: Record


@dataclass
class Change:
    """Collects what an update did; the service may rename the event (e.g. to invoice.paid)."""

    event_type: str
    emitted: bool = False
    previous: Record = field(default_factory=dict)


def diff(old: Any, new: Any) -> Any:
    """The old values of what changed between two event objects (Invoiced's DiffCalculator)."""
    old_map = old if isinstance(old, dict) else dict(enumerate(old))
    new_map = new if isinstance(new, dict) else dict(enumerate(new))
    result: dict[Any, Any] = {}
    for key, item in new_map.items():
        if key not in old_map and item:
            result[key] = None
    for key, value in old_map.items():
        if key not in new_map:
            if value is not None:
                result[key] = value
            continue
        other = new_map[key]
        if isinstance(value, dict | list) and isinstance(other, dict | list):
            nested = diff(value, other)
            if nested:
                result[key] = value if isinstance(value, list) else nested
            continue
        if not _same_scalar(value, other):
            result[key] = value
    if set(result) == {"updated_at"}:
        return {}
    return result


def _same_scalar(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float | Decimal) and isinstance(b, int | float | Decimal):
        return Decimal(str(a)) == Decimal(str(b))
    return bool(a == b) and type(a) is type(b)


class Account:
    """All state of one account; every read and write holds `lock`."""

    customers: Customers
    contacts: Contacts
    notes: Notes
    payment_sources: PaymentSources
    invoices: Invoices
    credit_notes: CreditNotes
    estimates: Estimates
    plans: Plans
    items: Items
    subscriptions: Subscriptions
    payments: Payments
    events: Events

    def __init__(
        self,
        name: str,
        api_key: str,
        clock: Clock,
        *,
        currency: str = "usd",
        id_base: int = 1000,
        event_id_base: int = 90000,
        slug: str = "billsync",
    ) -> None:
        self.name = name
        self.api_key = api_key
        self.clock = clock
        self.currency = currency
        self.slug = slug
        self.lock = threading.RLock()
        self._id_base = id_base
        self._event_id_base = event_id_base
        self.services: dict[str, Service] = {}
        self.listeners: list[Callable[[Account, EventEntry], None]] = []
        self.tables: dict[str, dict[Any, Record]] = {}
        self.event_log: list[EventEntry] = []
        self.reset()

    # -- lifecycle --------------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            for table in self.tables.values():
                table.clear()
            self.event_log = []
            self._events_by_id: dict[int, EventEntry] = {}
            self._next_id = self._id_base
            self._next_event_id = self._event_id_base
            self._numbers: dict[str, int] = {}
            self._number_owners: dict[str, dict[str, Any]] = {}
            self.credit_balances: dict[tuple[int, str], Decimal] = {}
            self.rng = random.Random(f"{self.name}-objects")

    def register(self, service: Service) -> None:
        self.services[service.collection] = service
        self.tables.setdefault(service.collection, {})

    def service(self, collection: str) -> Service:
        try:
            return self.services[collection]
        except KeyError:
            raise KeyError(f"unknown resource: {collection}") from None

    # -- identity, time, numbering ----------------------------------------------------------------

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def now(self) -> int:
        return int(self.clock.now())

    def client_id(self) -> str:
        alphabet = string.ascii_letters + string.digits
        return "".join(self.rng.choice(alphabet) for _ in range(24))

    def portal_url(self, path: str) -> str:
        return f"https://{self.slug}.invoiced.localhost/{path}"

    def next_number(self, collection: str, prefix: str) -> str:
        count = self._numbers.get(collection, 0)
        while True:
            count += 1
            candidate = f"{prefix}-{count:04d}"
            if not self.number_taken(collection, candidate, None):
                self._numbers[collection] = count
                return candidate

    def number_taken(self, collection: str, number: str, exclude_id: Any) -> bool:
        owner = self._number_owners.get(collection, {}).get(number.strip().lower())
        return owner is not None and owner != exclude_id

    def set_number(self, collection: str, rec_id: Any, old: str | None, new: str | None) -> None:
        """Keep the uniqueness index of document and customer numbers (case-insensitive) current."""
        owners = self._number_owners.setdefault(collection, {})
        if old is not None and owners.get(old.strip().lower()) == rec_id:
            del owners[old.strip().lower()]
        if new is not None:
            owners[new.strip().lower()] = rec_id

    def credit_balance(self, customer_id: int, currency: str) -> Decimal:
        return self.credit_balances.get((customer_id, currency), Decimal("0"))

    # -- events -----------------------------------------------------------------------------------

    def emit(
        self,
        actor: Actor,
        event_type: str,
        service: Service,
        rec: Record,
        *,
        obj: Record | None = None,
        previous: Record | None = None,
    ) -> EventEntry | None:
        if actor.quiet:
            return None
        payload_object = obj if obj is not None else service.event_object(rec)
        data: Record = {"object": payload_object}
        if previous:
            data["previous"] = previous
        self._next_event_id += 1
        timestamp = self.now()
        entry = EventEntry(
            id=self._next_event_id,
            type=event_type,
            timestamp=timestamp,
            object_type=service.object_type,
            object_id=rec["id"],
            associations=frozenset(
                (kind, str(obj_id)) for kind, obj_id in service.associations(rec) if obj_id is not None
            ),
            payload={
                "id": self._next_event_id,
                "object": "event",
                "type": event_type,
                "timestamp": timestamp,
                "data": copy.deepcopy(data),
                "user": dict(actor.user),
            },
        )
        self.event_log.append(entry)
        self._events_by_id[entry.id] = entry
        for listener in self.listeners:
            listener(self, entry)
        return entry

    def event(self, event_id: int) -> EventEntry | None:
        return self._events_by_id.get(event_id)

    @contextmanager
    def tracking(
        self, actor: Actor, service: Service, rec: Record, event_type: str | None = None
    ) -> Iterator[Change]:
        """Wrap an update: bump `updated_at` and emit `<object>.updated` with `previous` if anything changed."""
        before = service.event_object(rec)
        change = Change(event_type or f"{service.object_type}.updated")
        yield change
        if not diff(before, service.event_object(rec)):
            return
        rec["updated_at"] = (
            actor.updated_at if actor.updated_at is not None else max(self.now(), rec["created_at"])
        )
        after = service.event_object(rec)
        change.previous = diff(before, after)
        change.emitted = True
        self.emit(actor, change.event_type, service, rec, obj=after, previous=change.previous)

    def stamp_created(self, rec: Record, actor: Actor) -> None:
        created = actor.created_at if actor.created_at is not None else self.now()
        rec["created_at"] = created
        rec["updated_at"] = actor.updated_at if actor.updated_at is not None else created


class Service:
    """One API resource: lookup, rendering, list filters and writes."""

    collection: ClassVar[str]
    object_type: ClassVar[str]
    model_name: ClassVar[str]
    string_ids: ClassVar[bool] = False
    filterable: ClassVar[frozenset[str]] = frozenset()
    sortable_extra: ClassVar[frozenset[str]] = frozenset({"id", "created_at", "updated_at"})
    updated_filter: ClassVar[bool] = True
    date_filter: ClassVar[str | None] = None
    metadata_filter: ClassVar[bool] = True
    default_sort: ClassVar[tuple[tuple[str, bool], ...]] = (("id", False),)

    def __init__(self, acct: Account) -> None:
        self.acct = acct

    @property
    def table(self) -> dict[Any, Record]:
        return self.acct.tables[self.collection]

    def parse_id(self, raw: Any) -> Any:
        if self.string_ids:
            return str(raw)
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        text = str(raw)
        return int(text) if text.isdigit() else None

    def find(self, raw_id: Any) -> Record | None:
        key = self.parse_id(raw_id)
        return self.table.get(key) if key is not None else None

    def get(self, raw_id: Any) -> Record:
        rec = self.find(raw_id)
        if rec is None:
            raise not_found(self.model_name, raw_id)
        return rec

    def render(self, rec: Record) -> Record:
        raise NotImplementedError

    def render_for_api(self, rec: Record, include: frozenset[str]) -> Record:
        """The API response shape; `include` names optional parts asked for with `?include=`."""
        return self.render(rec)

    def event_object(self, rec: Record) -> Record:
        """The object in this resource's events: the API shape with the customer expanded."""
        obj = self.render(rec)
        customer_id = obj.get("customer")
        if isinstance(customer_id, int) and not isinstance(customer_id, bool):
            customer = self.acct.customers.find(customer_id)
            if customer is not None:
                obj["customer"] = self.acct.customers.render(customer)
        return obj

    def associations(self, rec: Record) -> list[tuple[str, Any]]:
        result: list[tuple[str, Any]] = [(self.object_type, rec["id"])]
        if isinstance(rec.get("customer"), int):
            result.append(("customer", rec["customer"]))
        return result

    def create(self, data: Record, actor: Actor) -> Record:
        raise invalid(f"{self.model_name} cannot be created")

    def update(self, rec: Record, data: Record, actor: Actor) -> Record:
        raise invalid(f"{self.model_name} cannot be modified")

    def delete(self, rec: Record, actor: Actor) -> Record | None:
        """Remove (or void/cancel) a record; a returned record is answered with 200 instead of 204."""
        raise invalid(f"{self.model_name} cannot be deleted")

    def remove(self, rec: Record, actor: Actor) -> None:
        """Delete the record and emit `<object>.deleted` with its last state."""
        obj = self.event_object(rec)
        self.forget(rec)
        self.acct.emit(actor, f"{self.object_type}.deleted", self, rec, obj=obj)

    def forget(self, rec: Record) -> None:
        """Drop the record from its table (and its number from the uniqueness index)."""
        self.table.pop(rec["id"], None)
        if rec.get("number"):
            self.acct.set_number(self.collection, rec["id"], rec["number"], None)

    # -- lists ------------------------------------------------------------------------------------

    def scope(self, records: list[Record], query: Record) -> list[Record]:
        """Resource-specific list filters beyond the generic ones (override when needed)."""
        return records

    def list_records(self, query: Record, records: list[Record] | None = None) -> list[Record]:
        rows = list(self.table.values()) if records is None else records
        rows = self.scope(rows, query)
        filters = query.get("filter") or {}
        if filters == "":
            filters = {}
        if not isinstance(filters, dict):
            raise invalid("Invalid value for `filter` parameter")
        for key, value in filters.items():
            if key not in self.filterable:
                raise invalid(f"Invalid filter parameter: {key}")
            if isinstance(value, dict | list):
                raise invalid(f"Invalid value for `{key}` filter parameter")
            rows = [r for r in rows if _matches(r.get(key), value)]
        wanted_metadata = query.get("metadata")
        if self.metadata_filter and isinstance(wanted_metadata, dict):
            for key, value in wanted_metadata.items():
                rows = [r for r in rows if _metadata_matches(r.get("metadata") or {}, str(key), value)]
        if self.updated_filter:
            after = php_int(query.get("updated_after"))
            before = php_int(query.get("updated_before"))
            if after > 0:
                rows = [r for r in rows if r["updated_at"] > after]
            if before > 0:
                rows = [r for r in rows if r["updated_at"] < before]
        if self.date_filter:
            start = php_int(query.get("start_date"))
            end = php_int(query.get("end_date"))
            if start > 0:
                rows = [r for r in rows if (r.get(self.date_filter) or 0) >= start]
            if end > 0:
                rows = [r for r in rows if (r.get(self.date_filter) or 0) <= end]
        return self.sort(rows, query.get("sort"))

    def sort(self, rows: list[Record], raw_sort: Any) -> list[Record]:
        order = self.parse_sort(raw_sort)
        for key, descending in reversed([*order, ("id", order[-1][1] if order else False)]):
            rows = sorted(rows, key=_field_key(key), reverse=descending)
        return rows

    def parse_sort(self, raw_sort: Any) -> list[tuple[str, bool]]:
        if not raw_sort or not isinstance(raw_sort, str):
            return list(self.default_sort)
        order: list[tuple[str, bool]] = []
        for part in raw_sort.split(","):
            words = part.split()
            if not words:
                continue
            key = words[0]
            direction = words[1].lower() if len(words) > 1 else "asc"
            if key not in self.filterable | self.sortable_extra or direction not in ("asc", "desc"):
                raise invalid(f"Invalid sort parameter: {part.strip()}")
            order.append((key, direction == "desc"))
        return order or list(self.default_sort)


def _field_key(key: str) -> Callable[[Record], tuple[int, Any]]:
    def sort_key(rec: Record) -> tuple[int, Any]:
        return _sort_key(rec.get(key))

    return sort_key


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float | Decimal):
        return (1, Decimal(str(value)))
    return (2, str(value).casefold())


def _matches(actual: Any, wanted: Any) -> bool:
    """The simple filter's equality, with MySQL's case-insensitive string comparison."""
    wanted_text = "" if wanted is None else str(wanted)
    if actual is None:
        return wanted_text in ("", "null")
    if isinstance(actual, bool):
        return wanted_text.strip().lower() in (("1", "true") if actual else ("0", "false", ""))
    if isinstance(actual, int | Decimal | float):
        try:
            return Decimal(str(actual)) == Decimal(wanted_text.strip())
        except InvalidOperation:
            return False
    return str(actual).casefold() == wanted_text.casefold()


def _metadata_matches(metadata: Record, key: str, wanted: Any) -> bool:
    if key not in metadata:
        return False
    return _matches(metadata[key], wanted)


def ensure(condition: bool, error: ApiError) -> None:
    if not condition:
        raise error
