"""The catalog (plans and items, with string ids) and subscriptions to plans."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from local.invoiced import fields as f
from local.invoiced.account import Actor, Record, Service
from local.invoiced.customers import require_customer
from local.invoiced.errors import invalid, missing
from local.invoiced.money import ZERO, round_money

INTERVALS = ("day", "week", "month", "year")
_SLUG = re.compile(r"[^a-z0-9]+")


def _slug(name: str) -> str:
    return _SLUG.sub("-", name.lower()).strip("-") or "item"


class CatalogService(Service):
    """Shared by plans and items: ids chosen by the user (or derived from the name), no events."""

    string_ids = True
    blocked = ("object", "created_at", "updated_at")

    def new_id(self, data: Record) -> str:
        raw = data.get("id")
        if raw not in (None, ""):
            object_id = f.text(raw, "id", min_len=1, max_len=255)
            assert object_id is not None
            if object_id in self.table:
                raise invalid(
                    f"The given {self.model_name.lower()} ID has already been taken: {object_id}", "id"
                )
            return object_id
        base = _slug(str(data.get("name") or self.object_type))
        candidate, counter = base, 1
        while candidate in self.table:
            counter += 1
            candidate = f"{base}-{counter}"
        return candidate

    def delete(self, rec: Record, actor: Actor) -> Record | None:
        del self.table[rec["id"]]
        return None


class Items(CatalogService):
    collection = "items"
    object_type = "item"
    model_name = "Item"
    filterable = frozenset({"name", "currency", "type", "taxable", "discountable"})

    def render(self, rec: Record) -> Record:
        return {
            "id": rec["id"],
            "object": "item",
            "name": rec["name"],
            "currency": rec["currency"],
            "unit_cost": rec["unit_cost"],
            "description": rec["description"],
            "type": rec["type"],
            "taxes": [],
            "gl_account": None,
            "discountable": rec["discountable"],
            "taxable": rec["taxable"],
            "avalara_tax_code": None,
            "avalara_location_code": None,
            "created_at": rec["created_at"],
            "updated_at": rec["updated_at"],
            "metadata": dict(rec["metadata"]),
        }

    def create(self, data: Record, actor: Actor) -> Record:
        f.refuse_blocked(data, self.blocked, self.model_name)
        rec: Record = {
            "id": self.new_id(data),
            "name": f.required_text(data, "name"),
            "currency": self.acct.currency,
            "unit_cost": ZERO,
            "description": None,
            "type": None,
            "discountable": True,
            "taxable": True,
            "metadata": {},
        }
        self._apply(rec, data)
        self.acct.stamp_created(rec, actor)
        self.table[rec["id"]] = rec
        return rec

    def update(self, rec: Record, data: Record, actor: Actor) -> Record:
        f.refuse_blocked({k: v for k, v in data.items() if k != "id" or v != rec["id"]}, self.blocked, "Item")
        staged = dict(rec)
        self._apply(staged, data)
        staged["updated_at"] = self.acct.now()
        rec.update(staged)
        return rec

    def _apply(self, rec: Record, data: Record) -> None:
        if "name" in data:
            rec["name"] = f.required_text(data, "name")
        if "currency" in data:
            rec["currency"] = f.currency(data["currency"], nullable=False)
        if "unit_cost" in data:
            unit_cost = f.decimal(data["unit_cost"], "unit_cost")
            assert unit_cost is not None
            rec["unit_cost"] = unit_cost
        for key in ("description", "type"):
            if key in data:
                rec[key] = f.text(data[key], key)
        for key in ("discountable", "taxable"):
            if key in data:
                rec[key] = f.boolean(data[key], key)
        if "metadata" in data:
            rec["metadata"] = f.metadata(data["metadata"])


class Plans(CatalogService):
    collection = "plans"
    object_type = "plan"
    model_name = "Plan"
    filterable = frozenset({"name", "currency", "interval", "interval_count", "catalog_item", "amount"})

    def render(self, rec: Record) -> Record:
        return {
            "id": rec["id"],
            "object": "plan",
            "name": rec["name"],
            "currency": rec["currency"],
            "amount": rec["amount"],
            "interval": rec["interval"],
            "interval_count": rec["interval_count"],
            "catalog_item": rec["catalog_item"],
            "pricing_mode": "per_unit",
            "quantity_type": rec["quantity_type"],
            "tiers": None,
            "created_at": rec["created_at"],
            "updated_at": rec["updated_at"],
            "metadata": dict(rec["metadata"]),
        }

    def create(self, data: Record, actor: Actor) -> Record:
        f.refuse_blocked(data, self.blocked, self.model_name)
        if data.get("amount") in (None, ""):
            raise missing("amount")
        if data.get("interval") in (None, ""):
            raise missing("interval")
        rec: Record = {
            "id": self.new_id(data),
            "name": f.required_text(data, "name"),
            "currency": self.acct.currency,
            "amount": ZERO,
            "interval": "month",
            "interval_count": 1,
            "catalog_item": None,
            "quantity_type": "constant",
            "metadata": {},
        }
        self._apply(rec, data)
        self.acct.stamp_created(rec, actor)
        self.table[rec["id"]] = rec
        return rec

    def update(self, rec: Record, data: Record, actor: Actor) -> Record:
        f.refuse_blocked(data, self.blocked, self.model_name)
        for key in ("amount", "interval", "interval_count", "currency"):
            if key in data and data[key] != rec[key]:
                raise invalid(f"The {key.replace('_', ' ')} of a plan cannot be changed.", key)
        staged = dict(rec)
        self._apply(staged, data)
        staged["updated_at"] = self.acct.now()
        rec.update(staged)
        return rec

    def _apply(self, rec: Record, data: Record) -> None:
        if "name" in data:
            rec["name"] = f.required_text(data, "name")
        if "currency" in data:
            rec["currency"] = f.currency(data["currency"], nullable=False)
        if "amount" in data:
            amount = f.decimal(data["amount"], "amount")
            assert amount is not None
            rec["amount"] = round_money(amount, rec["currency"])
        if "interval" in data:
            rec["interval"] = f.choice(data["interval"], "interval", INTERVALS)
        if "interval_count" in data:
            rec["interval_count"] = f.integer(
                data["interval_count"], "interval_count", nullable=False, minimum=1
            )
        if "catalog_item" in data:
            item_id = data["catalog_item"]
            if item_id not in (None, "") and self.acct.items.find(item_id) is None:
                raise invalid(f"No such item: {item_id}", "catalog_item")
            rec["catalog_item"] = item_id or None
        if "quantity_type" in data:
            rec["quantity_type"] = f.choice(data["quantity_type"], "quantity_type", ("constant", "usage"))
        if "metadata" in data:
            rec["metadata"] = f.metadata(data["metadata"])


def add_interval(timestamp: int, interval: str, count: int) -> int:
    moment = datetime.fromtimestamp(timestamp, UTC)
    if interval == "day":
        return timestamp + 86400 * count
    if interval == "week":
        return timestamp + 7 * 86400 * count
    months = count * (12 if interval == "year" else 1)
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


_MONTHS_PER_INTERVAL = {
    "day": Decimal(12) / Decimal(365),
    "week": Decimal(12) / Decimal(52),
    "month": Decimal(1),
}


class Subscriptions(Service):
    collection = "subscriptions"
    object_type = "subscription"
    model_name = "Subscription"
    filterable = frozenset({"customer", "plan", "status", "quantity", "cancel_at_period_end", "paused"})
    blocked = (
        "id",
        "object",
        "status",
        "period_start",
        "period_end",
        "canceled_at",
        "recurring_total",
        "mrr",
        "created_at",
        "updated_at",
        "url",
    )

    def render(self, rec: Record) -> Record:
        return {
            "id": rec["id"],
            "object": "subscription",
            "customer": rec["customer"],
            "ship_to": None,
            "plan": rec["plan"],
            "cycles": rec["cycles"],
            "quantity": rec["quantity"],
            "start_date": rec["start_date"],
            "period_start": rec["period_start"],
            "period_end": rec["period_end"],
            "cancel_at_period_end": rec["cancel_at_period_end"],
            "canceled_at": rec["canceled_at"],
            "status": rec["status"],
            "addons": [dict(a) for a in rec["addons"]],
            "discounts": [],
            "taxes": [],
            "recurring_total": rec["recurring_total"],
            "mrr": rec["mrr"],
            "url": self.acct.portal_url(f"subscriptions/{rec['client_id']}"),
            "created_at": rec["created_at"],
            "updated_at": rec["updated_at"],
            "metadata": dict(rec["metadata"]),
            "bill_in": rec["bill_in"],
            "bill_in_advance_days": rec["bill_in_advance_days"],
            "contract_period_start": None,
            "contract_period_end": None,
            "contract_renewal_cycles": None,
            "contract_renewal_mode": rec["contract_renewal_mode"],
            "paused": rec["paused"],
        }

    def create(self, data: Record, actor: Actor) -> Record:
        f.refuse_blocked(data, self.blocked, self.model_name)
        customer = require_customer(self.acct, data.get("customer"))
        if data.get("plan") in (None, ""):
            raise missing("plan")
        now = self.acct.now()
        rec: Record = {
            "id": None,
            "customer": customer["id"],
            "plan": None,
            "quantity": 1,
            "cycles": None,
            "start_date": now,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "addons": [],
            "bill_in": "advance",
            "bill_in_advance_days": 0,
            "contract_renewal_mode": "none",
            "paused": False,
            "metadata": {},
        }
        self._apply(rec, data, now)
        rec["period_start"] = rec["start_date"]
        plan = self.acct.plans.get(rec["plan"])
        rec["period_end"] = add_interval(rec["start_date"], plan["interval"], plan["interval_count"])
        rec["status"] = "not_started" if rec["start_date"] > now else "active"
        self._totals(rec)
        rec["id"] = self.acct.new_id()
        rec["client_id"] = self.acct.client_id()
        self.acct.stamp_created(rec, actor)
        for addon in rec["addons"]:
            addon["created_at"] = addon["updated_at"] = rec["created_at"]
        self.table[rec["id"]] = rec
        self.acct.emit(actor, "subscription.created", self, rec)
        return rec

    def update(self, rec: Record, data: Record, actor: Actor) -> Record:
        f.refuse_blocked(data, self.blocked, self.model_name)
        if rec["status"] == "canceled":
            raise invalid("Canceled subscriptions cannot be modified.", "status")
        if "customer" in data and f.reference_id(data["customer"], "customer") != rec["customer"]:
            raise invalid("The customer of an existing subscription cannot be changed.", "customer")
        staged = {**rec, "addons": [dict(a) for a in rec["addons"]]}
        self._apply(staged, data, self.acct.now())
        self._totals(staged)
        with self.acct.tracking(actor, self, rec):
            rec.update(staged)
        return rec

    def _apply(self, rec: Record, data: Record, now: int) -> None:
        if "plan" in data:
            plan = self.acct.plans.find(data["plan"]) if data["plan"] not in (None, "") else None
            if plan is None:
                raise invalid(f"No such plan: {data['plan']}", "plan")
            rec["plan"] = plan["id"]
        if "quantity" in data:
            rec["quantity"] = f.integer(data["quantity"], "quantity", nullable=False, minimum=1)
        if "cycles" in data:
            rec["cycles"] = f.integer(data["cycles"], "cycles", minimum=1)
        if "start_date" in data and rec.get("id") is None:
            rec["start_date"] = f.timestamp(data["start_date"], "start_date") or now
        if "cancel_at_period_end" in data:
            rec["cancel_at_period_end"] = f.boolean(data["cancel_at_period_end"], "cancel_at_period_end")
        if "bill_in" in data:
            rec["bill_in"] = f.choice(data["bill_in"], "bill_in", ("advance", "arrears"))
        if "bill_in_advance_days" in data:
            rec["bill_in_advance_days"] = f.integer(
                data["bill_in_advance_days"], "bill_in_advance_days", nullable=False, minimum=0
            )
        if "contract_renewal_mode" in data:
            rec["contract_renewal_mode"] = f.choice(
                data["contract_renewal_mode"],
                "contract_renewal_mode",
                ("auto", "manual", "renew_once", "none"),
            )
        if "paused" in data:
            rec["paused"] = f.boolean(data["paused"], "paused")
        for key in ("discounts", "taxes"):
            if key in data and f.expect_list(data[key], key):
                noun = "coupon" if key == "discounts" else "tax rate"
                raise invalid(f"No such {noun}: {f.expect_list(data[key], key)[0]}", key)
        if "addons" in data:
            rec["addons"] = self._addons(data["addons"], rec.get("addons") or [])
        if "metadata" in data:
            rec["metadata"] = f.metadata(data["metadata"])

    def _addons(self, raw: Any, existing: list[Record]) -> list[Record]:
        known = {a["plan"]: a for a in existing}
        result: list[Record] = []
        for entry in f.expect_list(raw, "addons"):
            if not isinstance(entry, dict):
                raise invalid("Invalid addon", "addons")
            plan = self.acct.plans.find(entry.get("plan")) if entry.get("plan") not in (None, "") else None
            if plan is None:
                raise invalid(f"No such plan: {entry.get('plan')}", "addons")
            previous = known.get(plan["id"])
            now = self.acct.now()
            result.append(
                {
                    "id": previous["id"] if previous else self.acct.new_id(),
                    "object": "subscription_addon",
                    "plan": plan["id"],
                    "quantity": f.integer(entry.get("quantity", 1), "quantity", nullable=False, minimum=1),
                    "description": f.text(entry.get("description"), "description") or "",
                    "created_at": previous["created_at"] if previous else now,
                    "updated_at": now,
                }
            )
        return result

    def _totals(self, rec: Record) -> None:
        plan = self.acct.plans.get(rec["plan"])
        total = plan["amount"] * rec["quantity"]
        for addon in rec["addons"]:
            addon_plan = self.acct.plans.get(addon["plan"])
            total += addon_plan["amount"] * addon["quantity"]
        months = _MONTHS_PER_INTERVAL.get(plan["interval"], Decimal(12)) * plan["interval_count"]
        rec["recurring_total"] = round_money(total, plan["currency"])
        rec["mrr"] = round_money(total / months, plan["currency"])

    def delete(self, rec: Record, actor: Actor) -> Record | None:
        """`DELETE /subscriptions/:id` cancels the subscription (event `subscription.deleted`)."""
        if rec["status"] == "canceled":
            raise invalid("This subscription has already been canceled.")
        rec["status"] = "canceled"
        rec["canceled_at"] = self.acct.now()
        rec["updated_at"] = actor.updated_at if actor.updated_at is not None else rec["canceled_at"]
        self.acct.emit(actor, "subscription.deleted", self, rec)
        return rec
