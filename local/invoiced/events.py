"""The events feed (`GET /events`): newest first, filterable by object, event type, date and relation."""

from __future__ import annotations

from typing import Any

from local.invoiced.account import EventEntry, Record, Service
from local.invoiced.errors import invalid, not_found
from local.invoiced.wire import php_int

# The object types `?type=` accepts (Invoiced's object type names); `payment_source` covers cards and bank accounts.
OBJECT_TYPES = frozenset(
    {
        "bank_account",
        "card",
        "charge",
        "contact",
        "coupon",
        "credit_note",
        "customer",
        "estimate",
        "invoice",
        "item",
        "line_item",
        "note",
        "payment",
        "payment_plan",
        "plan",
        "refund",
        "subscription",
        "task",
        "transaction",
    }
)


class Events(Service):
    collection = "events"
    object_type = "event"
    model_name = "Event"
    filterable = frozenset({"type", "user_id", "timestamp"})
    updated_filter = False
    metadata_filter = False
    default_sort = (("id", True),)

    def find(self, raw_id: Any) -> Record | None:
        key = self.parse_id(raw_id)
        entry = self.acct.event(key) if key is not None else None
        return _as_record(entry) if entry is not None else None

    def get(self, raw_id: Any) -> Record:
        rec = self.find(raw_id)
        if rec is None:
            raise not_found(self.model_name, raw_id)
        return rec

    def render(self, rec: Record) -> Record:
        payload: Record = rec["_entry"].payload
        return payload

    def list_records(self, query: Record, records: list[Record] | None = None) -> list[Record]:
        entries = list(self.acct.event_log)
        object_type = query.get("type")
        if object_type not in (None, ""):
            if object_type == "payment_source":
                entries = [e for e in entries if e.object_type == "payment_source"]
            elif object_type in ("card", "bank_account"):
                entries = [e for e in entries if e.payload["data"]["object"].get("object") == object_type]
            elif object_type in OBJECT_TYPES:
                entries = [e for e in entries if e.object_type == object_type]
            else:
                raise invalid(f"Object type not recognized: {object_type}")
        related = str(query.get("related_to") or "").split(",")
        if len(related) == 2:
            related_type, related_id = related
            if related_type not in OBJECT_TYPES | {"payment_source"}:
                raise invalid(f"Object type not recognized: {related_type}")
            entries = [e for e in entries if (related_type, related_id) in e.associations]
        start = php_int(query.get("start_date"))
        end = php_int(query.get("end_date"))
        if start > 0:
            entries = [e for e in entries if e.timestamp >= start]
        if end > 0:
            entries = [e for e in entries if e.timestamp <= end]
        return super().list_records(query, [_as_record(e) for e in entries])


def _as_record(entry: EventEntry) -> Record:
    return {
        "id": entry.id,
        "type": entry.type,
        "timestamp": entry.timestamp,
        "user_id": entry.payload["user"]["id"],
        "_entry": entry,
    }
