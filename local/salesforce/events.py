"""Change Data Capture events, in the envelope Salesforce Event Relay delivers to Amazon EventBridge.

Each committed create, update, delete and undelete of an object with CDC enabled (a
PlatformEventChannelMember in the package) becomes one event. All events of one transaction share
a ``transactionKey`` and number their ``sequenceNumber`` from 1. ``changeOrigin`` names the API and
the client from the request's ``Sforce-Call-Options: client=<name>`` header, so a sync can drop its
own echoes. Date/time values in the payload are ISO strings (the CometD/JSON form) or epoch
milliseconds (the Pub/Sub-derived form), as configured.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from local.salesforce.formats import format_datetime_z, format_time
from local.salesforce.schema import FieldDef, ObjectDef
from local.salesforce.store import Change, Record

__all__ = ["EventLog", "build_events"]

#: Fields a change event never carries in its payload.
_SKIPPED = frozenset({"Id", "IsDeleted", "SystemModstamp", "LastViewedDate", "LastReferencedDate"})


def event_name(obj: ObjectDef) -> str:
    return obj.name[:-3] + "__ChangeEvent" if obj.name.endswith("__c") else obj.name + "ChangeEvent"


def _encode(value: Any, encoding: str) -> Any:
    if isinstance(value, datetime):
        if encoding == "epoch_ms":
            return int(value.timestamp() * 1000)
        return format_datetime_z(value)
    if isinstance(value, date):
        if encoding == "epoch_ms":
            return (value - date(1970, 1, 1)).days
        return value.isoformat()
    if isinstance(value, time):
        return format_time(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


def _cdc_key(fdef: FieldDef) -> str:
    """A compound component's name in change events: ``City`` of ``BillingAddress``, ``LastName`` of ``Name``."""
    compound = fdef.compound or ""
    if compound.endswith("Address"):
        return fdef.name[len(compound) - len("Address") :]
    return fdef.name


def _payload_fields(obj: ObjectDef, names: Iterable[str], record: Record, encoding: str) -> dict[str, Any]:
    """Field values for a payload; compound components nest under their compound field."""
    out: dict[str, Any] = {}
    for name in names:
        fdef = obj.fields.get(name.lower())
        if fdef is None or fdef.name in _SKIPPED or fdef.compound_parts:
            continue
        value = _encode(record.get(fdef.name), encoding)
        if fdef.compound:
            out.setdefault(fdef.compound, {})[_cdc_key(fdef)] = value
        else:
            out[fdef.name] = value
    return out


def _changed(obj: ObjectDef, old: Record, new: Record) -> tuple[list[str], list[str]]:
    changed: list[str] = []
    nulled: list[str] = []
    for fdef in obj.field_list:
        name = fdef.name
        if name in _SKIPPED or fdef.compound_parts or (fdef.calculated and not fdef.formula):
            continue
        if old.get(name) != new.get(name):
            label = f"{fdef.compound}.{_cdc_key(fdef)}" if fdef.compound else name
            changed.append(label)
            if new.get(name) is None:
                nulled.append(label)
    return changed, nulled


def _schema_id(obj: ObjectDef) -> str:
    digest = hashlib.sha256(("|".join(f.name for f in obj.field_list)).encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def build_events(
    changes: list[Change],
    *,
    org_id: str,
    user_id: str,
    origin: str,
    encoding: str,
    now: datetime,
    account: str,
    region: str,
    channel_id: str,
    commit_number: int,
) -> list[dict[str, Any]]:
    """EventBridge envelopes for the CDC-enabled changes of one committed transaction."""
    relevant = [c for c in changes if c.obj.cdc_enabled]
    if not relevant:
        return []
    transaction_key = str(uuid.uuid4())
    commit_ms = int(now.timestamp() * 1000)
    envelopes = []
    sequence = 0
    for change in relevant:
        obj = change.obj
        header: dict[str, Any] = {
            "entityName": obj.name,
            "recordIds": [change.record_id],
            "changeType": change.kind,
            "changeOrigin": origin,
            "transactionKey": transaction_key,
            "sequenceNumber": 0,
            "commitTimestamp": commit_ms,
            "commitNumber": commit_number,
            "commitUser": user_id,
            "nulledFields": [],
            "diffFields": [],
            "changedFields": [],
        }
        body: dict[str, Any] = {}
        if change.kind == "UPDATE":
            assert change.old is not None
            assert change.new is not None
            changed, nulled = _changed(obj, change.old, change.new)
            if not [c for c in changed if c not in ("LastModifiedDate", "LastModifiedById")]:
                continue
            if "LastModifiedDate" not in changed:
                # Salesforce lists it on every update, even two updates in the same millisecond.
                changed = [*changed, "LastModifiedDate"]
            header["changedFields"] = changed
            header["nulledFields"] = nulled
            names = [_component(obj, c) if "." in c else c for c in changed]
            body = _payload_fields(obj, names, change.new, encoding)
        elif change.kind in ("CREATE", "UNDELETE"):
            assert change.new is not None
            names = [f.name for f in obj.field_list if change.new.get(f.name) is not None]
            body = _payload_fields(obj, names, change.new, encoding)
        sequence += 1
        header["sequenceNumber"] = sequence
        payload = {"ChangeEventHeader": header, **body}
        event_id = str(uuid.uuid4())
        envelopes.append(
            {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": event_name(obj),
                "source": f"aws.partner/salesforce.com/{org_id}/{channel_id}",
                "account": account,
                "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": region,
                "resources": [],
                "detail": {"payload": payload, "schemaId": _schema_id(obj), "id": event_id},
            }
        )
    return envelopes


def _component(obj: ObjectDef, label: str) -> str:
    compound, key = label.split(".", 1)
    for fdef in obj.field_list:
        if fdef.compound == compound and _cdc_key(fdef) == key:
            return fdef.name
    return compound


class EventLog:
    """A bounded buffer of delivered envelopes, numbered from 1, plus the delivery callback."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._events: deque[tuple[int, dict[str, Any]]] = deque(maxlen=capacity)
        self._last = 0
        self._commits = 0

    def next_commit_number(self) -> int:
        with self._lock:
            self._commits += 1
            return self._commits

    def deliver(
        self, envelopes: list[dict[str, Any]], callback: Callable[[dict[str, Any]], None] | None
    ) -> None:
        with self._lock:
            for envelope in envelopes:
                self._last += 1
                self._events.append((self._last, envelope))
        if callback is not None:
            for envelope in envelopes:
                callback(envelope)

    def after(self, number: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Envelopes numbered above ``number``, and the number of the latest one."""
        with self._lock:
            return [e for n, e in self._events if n > number], self._last

    def clear(self, capacity: int | None = None) -> None:
        with self._lock:
            self._events = deque(maxlen=capacity or self._events.maxlen)
            self._last = 0
