"""Invoices, credit notes and estimates: line items, totals, balances and status machines.

Totals: each line's `amount = quantity x unit_cost`; `subtotal` is the sum of the lines; `total`
subtracts discounts (document and line level) and adds taxes and shipping (flat amounts).
"""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Any, ClassVar

from local.invoiced import fields as f
from local.invoiced.account import Actor, Record, Service
from local.invoiced.customers import require_customer
from local.invoiced.errors import ApiError, invalid
from local.invoiced.money import ZERO, round_money

_NET_TERMS = re.compile(r"^\s*net\s*(\d+)\s*$", re.IGNORECASE)
_RECEIPT_TERMS = ("due on receipt", "upon receipt", "due upon receipt", "cod")
DAY = 86400


def due_date_for(terms: str | None, date: int) -> int | None:
    if not terms:
        return None
    match = _NET_TERMS.match(terms)
    if match:
        return date + int(match.group(1)) * DAY
    if terms.strip().lower() in _RECEIPT_TERMS:
        return date
    return None


class DocumentService(Service):
    """What invoices, credit notes and estimates share."""

    prefix: ClassVar[str]
    default_name: ClassVar[str]
    date_filter = "date"
    base_filterable: ClassVar[frozenset[str]] = frozenset(
        {"customer", "number", "currency", "draft", "closed", "status", "date", "name", "purchase_order"}
    )
    blocked_common: ClassVar[tuple[str, ...]] = (
        "id",
        "object",
        "subtotal",
        "total",
        "status",
        "viewed",
        "created_at",
        "updated_at",
        "url",
        "pdf_url",
    )
    blocked_extra: ClassVar[tuple[str, ...]] = ()
    updatable_text: ClassVar[tuple[str, ...]] = ("notes",)

    # -- line items and rates -------------------------------------------------------------------

    def build_items(self, raw: Any, existing: list[Record], currency: str) -> list[Record]:
        entries = f.expect_list(raw, "items")
        known = {item["id"]: item for item in existing}
        items: list[Record] = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise invalid("Invalid line item", "items")
            base: Record = {}
            kept_id = f.reference_id(entry.get("id"), "items") if entry.get("id") not in (None, "") else None
            if kept_id is not None and kept_id in known:
                base = dict(known[kept_id])
            catalog_id = entry.get("catalog_item", base.get("catalog_item"))
            catalog: Record | None = None
            if catalog_id not in (None, ""):
                catalog = self.acct.items.find(str(catalog_id))
                if catalog is None:
                    raise invalid(f"No such item: {catalog_id}", "items")
            quantity = f.decimal(entry.get("quantity", base.get("quantity", 1)), "quantity")
            default_cost = catalog["unit_cost"] if catalog else Decimal("0")
            unit_cost = f.decimal(entry.get("unit_cost", base.get("unit_cost", default_cost)), "unit_cost")
            assert quantity is not None
            assert unit_cost is not None
            item: Record = {
                "id": kept_id if kept_id is not None and kept_id in known else self.acct.new_id(),
                "object": "line_item",
                "catalog_item": catalog["id"] if catalog else None,
                "type": f.text(
                    entry.get("type", base.get("type", catalog["type"] if catalog else None)), "type"
                ),
                "name": f.text(
                    entry.get("name", base.get("name", catalog["name"] if catalog else "")), "name"
                )
                or "",
                "description": f.text(
                    entry.get(
                        "description", base.get("description", catalog["description"] if catalog else None)
                    ),
                    "description",
                ),
                "quantity": quantity,
                "unit_cost": unit_cost,
                "amount": round_money(quantity * unit_cost, currency),
                "discountable": f.boolean(
                    entry.get("discountable", base.get("discountable", True)), "discountable"
                ),
                "discounts": self.build_rates(
                    entry.get("discounts", base.get("discounts", [])), "discount", currency
                ),
                "taxable": f.boolean(entry.get("taxable", base.get("taxable", True)), "taxable"),
                "taxes": self.build_rates(entry.get("taxes", base.get("taxes", [])), "tax", currency),
                "metadata": f.metadata(entry.get("metadata", base.get("metadata", {}))),
                "plan": entry.get("plan", base.get("plan")),
            }
            items.append(item)
        return items

    def build_rates(self, raw: Any, kind: str, currency: str) -> list[Record]:
        key = "discounts" if kind == "discount" else "taxes" if kind == "tax" else "shipping"
        entries = f.expect_list(raw, key)
        rates: list[Record] = []
        for entry in entries:
            if isinstance(entry, dict) and "amount" in entry:
                amount = f.decimal(entry["amount"], "amount")
                assert amount is not None
                rate: Record = {
                    "id": self.acct.new_id(),
                    "object": kind,
                    "amount": round_money(amount, currency),
                }
                if kind == "discount":
                    rate.update(coupon=None, expires=None)
                elif kind == "tax":
                    rate["tax_rate"] = None
                else:
                    rate["shipping_rate"] = None
                rates.append(rate)
            elif isinstance(entry, dict) and kind == "discount" and entry.get("coupon"):
                raise invalid(f"No such coupon: {entry['coupon']}", key)
            elif isinstance(entry, dict) and kind == "tax" and entry.get("tax_rate"):
                raise invalid(f"No such tax rate: {entry['tax_rate']}", key)
            elif isinstance(entry, str):
                noun = "coupon" if kind == "discount" else "tax rate" if kind == "tax" else "shipping rate"
                raise invalid(f"No such {noun}: {entry}", key)
            else:
                raise invalid(f"Invalid {kind}: each {kind} needs an amount", key)
        return rates

    def stage_amounts(self, staged: Record, data: Record, existing: Record | None) -> None:
        """Recalculate the document when items, discounts, taxes or shipping are given."""
        currency = staged["currency"]
        flats = {"discount": "discounts", "tax": "taxes"}
        for flat, plural in flats.items():
            if flat in data and data[flat] not in (None, ""):
                data = {**data, plural: [{"amount": data[flat]}]}
        if existing is None or "items" in data:
            staged["items"] = self.build_items(
                data.get("items", []), existing["items"] if existing else [], currency
            )
        if existing is None or "discounts" in data:
            staged["discounts"] = self.build_rates(data.get("discounts", []), "discount", currency)
        if existing is None or "taxes" in data:
            staged["taxes"] = self.build_rates(data.get("taxes", []), "tax", currency)
        if existing is None or "shipping" in data:
            staged["shipping"] = self.build_rates(data.get("shipping", []), "shipping", currency)
        subtotal = sum((item["amount"] for item in staged["items"]), ZERO)
        line_discounts = sum((r["amount"] for i in staged["items"] for r in i["discounts"]), ZERO)
        line_taxes = sum((r["amount"] for i in staged["items"] for r in i["taxes"]), ZERO)
        discounts = sum((r["amount"] for r in staged["discounts"]), ZERO)
        taxes = sum((r["amount"] for r in staged["taxes"]), ZERO)
        shipping = sum((r["amount"] for r in staged["shipping"]), ZERO)
        total = subtotal - discounts - line_discounts + taxes + line_taxes + shipping
        if total < 0:
            raise invalid("Total is invalid", "total")
        staged["subtotal"] = round_money(subtotal, currency)
        staged["total"] = round_money(total, currency)

    # -- shared fields -------------------------------------------------------------------------

    def stage_common(self, staged: Record, data: Record, *, creating: bool) -> None:
        if "name" in data:
            staged["name"] = f.text(data["name"], "name") or self.default_name
        if "number" in data:
            number = f.text(data["number"], "number", min_len=1, max_len=32)
            if number is not None and self.acct.number_taken(self.collection, number, staged.get("id")):
                noun = self.model_name.lower()
                raise invalid(f"The given {noun} number has already been taken: {number}", "number")
            staged["number"] = number
        if "date" in data:
            staged["date"] = f.timestamp(data["date"], "date", nullable=False)
        if "purchase_order" in data:
            staged["purchase_order"] = f.text(data["purchase_order"], "purchase_order", max_len=32)
        for key in self.updatable_text:
            if key in data:
                staged[key] = f.text(data[key], key)
        if "metadata" in data:
            staged["metadata"] = f.metadata(data["metadata"])
        if "sent" in data:
            staged["sent"] = f.boolean(data["sent"], "sent")
        if "ship_to" in data:
            ship_to = data["ship_to"]
            if ship_to not in (None, "") and not isinstance(ship_to, dict):
                raise invalid("Ship to must be an object", "ship_to")
            staged["ship_to"] = dict(ship_to) if ship_to else None
        if "draft" in data:
            draft = f.boolean(data["draft"], "draft")
            if not creating and draft and not staged["draft"]:
                raise invalid("Cannot save as a draft because the document has already been issued.", "draft")
            staged["draft"] = draft
        if "closed" in data:
            staged["closed"] = f.boolean(data["closed"], "closed")
        if "currency" in data and not creating:
            currency = f.currency(data["currency"])
            if currency is None:
                raise invalid("The currency cannot be unset.", "currency")
            staged["currency"] = currency

    def new_record(self, data: Record, actor: Actor) -> Record:
        f.refuse_blocked(data, self.blocked_common + self.blocked_extra, self.model_name)
        customer = require_customer(self.acct, data.get("customer"))
        currency = f.currency(data.get("currency")) or customer["currency"] or self.acct.currency
        rec: Record = {
            "id": None,
            "customer": customer["id"],
            "name": self.default_name,
            "number": None,
            "currency": currency,
            "draft": False,
            "closed": False,
            "voided": False,
            "sent": False,
            "viewed": False,
            "date": self.acct.now(),
            "purchase_order": None,
            "notes": None,
            "ship_to": None,
            "metadata": {},
        }
        self.stage_common(rec, data, creating=True)
        self.stage_amounts(rec, data, None)
        return rec

    def store_new(self, rec: Record, actor: Actor) -> Record:
        if rec["number"] is None:
            rec["number"] = self.acct.next_number(self.collection, self.prefix)
        rec["id"] = self.acct.new_id()
        rec["client_id"] = self.acct.client_id()
        self.acct.stamp_created(rec, actor)
        self.table[rec["id"]] = rec
        self.acct.set_number(self.collection, rec["id"], None, rec["number"])
        self.acct.emit(actor, f"{self.object_type}.created", self, rec)
        return rec

    def check_editable(self, rec: Record, data: Record) -> None:
        if rec["voided"]:
            raise invalid("Your changes cannot be saved because this document is voided.", "voided")
        reopening = "closed" in data and data["closed"] in (False, "0", "false", 0)
        if rec["closed"] and not reopening:
            raise invalid(
                "Your changes cannot be saved because this document is closed. Please re-open the document "
                "to make any changes.",
                "closed",
            )
        if "customer" in data and f.reference_id(data["customer"], "customer") != rec["customer"]:
            raise invalid("The customer of an existing document cannot be changed.", "customer")

    def stage_update(self, rec: Record, data: Record) -> Record:
        f.refuse_blocked(data, self.blocked_common + self.blocked_extra, self.model_name)
        self.check_editable(rec, data)
        staged = copy.deepcopy(rec)
        self.stage_common(staged, data, creating=False)
        if any(k in data for k in ("items", "discounts", "taxes", "shipping", "discount", "tax")):
            self.stage_amounts(staged, data, rec)
        if staged["number"] is None:
            raise invalid("Number must be a string of the proper length", "number")
        return staged

    def replace(self, rec: Record, staged: Record) -> None:
        """Write a staged copy over the record (inside `tracking`)."""
        self.acct.set_number(self.collection, rec["id"], rec["number"], staged["number"])
        rec.clear()
        rec.update(staged)

    def urls(self, rec: Record, path: str) -> tuple[str | None, str | None]:
        if rec["voided"]:
            return None, None
        url = self.acct.portal_url(f"{path}/{rec['client_id']}")
        return url, f"{url}/pdf"

    def render_items(self, rec: Record) -> list[Record]:
        return [
            {
                **{k: v for k, v in item.items() if k != "plan"},
                "discounts": [dict(r) for r in item["discounts"]],
                "taxes": [dict(r) for r in item["taxes"]],
                "metadata": dict(item["metadata"]),
                **({"plan": item["plan"]} if item.get("plan") else {}),
            }
            for item in rec["items"]
        ]

    def mark(self, rec: Record, flag: str, event_type: str, actor: Actor) -> Record:
        """A customer viewing the document, or the team marking it sent."""
        if rec["voided"]:
            raise invalid("Your changes cannot be saved because this document is voided.", "voided")
        with self.acct.tracking(actor, self, rec, event_type):
            rec[flag] = True
            self.refresh(rec)
        return rec

    def refresh(self, rec: Record, *, respect_closed: bool = False, previous: Record | None = None) -> None:
        """Recompute balances, flags and status after a change.

        `respect_closed` keeps a `closed` the request set explicitly; `previous` is the state before.
        """
        raise NotImplementedError

    def check_voidable(self, rec: Record) -> None:
        raise NotImplementedError

    def void(self, rec: Record, actor: Actor) -> Record:
        if rec["voided"]:
            raise invalid("This document has already been voided.")
        self.check_voidable(rec)
        with self.acct.tracking(actor, self, rec):
            rec["voided"] = True
            rec["date_voided"] = self.acct.now()
            self.refresh(rec)
        return rec

    def delete(self, rec: Record, actor: Actor) -> Record | None:
        try:
            self.check_voidable(rec)
        except ApiError as error:
            raise invalid(error.message, "voided") from None
        self.remove(rec, actor)
        return None

    def settled(self, rec: Record) -> bool:
        """True when time can no longer change the document's status."""
        return True

    def refresh_statuses(self, actor: Actor) -> None:
        """Invoiced's nightly status update: invoices past their due date become past_due, estimates
        past their expiration date become expired; each change is an `<object>.updated` event."""
        for rec in list(self.table.values()):
            if rec["voided"] or rec["draft"] or self.settled(rec):
                continue
            status = self.status(rec)
            if status != rec["status"]:
                with self.acct.tracking(actor, self, rec):
                    rec["status"] = status


class Invoices(DocumentService):
    collection = "invoices"
    object_type = "invoice"
    model_name = "Invoice"
    prefix = "INV"
    default_name = "Invoice"
    filterable = DocumentService.base_filterable | {
        "paid",
        "balance",
        "total",
        "due_date",
        "payment_terms",
        "autopay",
        "subscription",
        "attempt_count",
        "chase",
    }
    blocked_extra = (
        "paid",
        "balance",
        "attempt_count",
        "date_paid",
        "amount_paid",
        "amount_credited",
        "payment_url",
        "payment_plan",
    )

    def render(self, rec: Record) -> Record:
        url, pdf_url = self.urls(rec, "invoices")
        payable = not (rec["closed"] or rec["paid"] or rec["voided"])
        return {
            "id": rec["id"],
            "object": "invoice",
            "customer": rec["customer"],
            "ship_to": copy.deepcopy(rec["ship_to"]),
            "name": rec["name"],
            "currency": rec["currency"],
            "draft": rec["draft"],
            "closed": rec["closed"],
            "paid": rec["paid"],
            "status": rec["status"],
            "autopay": rec["autopay"],
            "attempt_count": rec["attempt_count"],
            "next_payment_attempt": rec["next_payment_attempt"],
            "subscription": rec["subscription"],
            "number": rec["number"],
            "date": rec["date"],
            "due_date": rec["due_date"],
            "payment_terms": rec["payment_terms"],
            "purchase_order": rec["purchase_order"],
            "items": self.render_items(rec),
            "notes": rec["notes"],
            "subtotal": rec["subtotal"],
            "discounts": [dict(r) for r in rec["discounts"]],
            "taxes": [dict(r) for r in rec["taxes"]],
            "shipping": [dict(r) for r in rec["shipping"]],
            "total": rec["total"],
            "balance": rec["balance"],
            "url": url,
            "payment_url": f"{url}/payment" if url and payable else None,
            "pdf_url": pdf_url,
            "created_at": rec["created_at"],
            "updated_at": rec["updated_at"],
            "metadata": dict(rec["metadata"]),
            "payment_plan": None,
        }

    def associations(self, rec: Record) -> list[tuple[str, Any]]:
        return [("invoice", rec["id"]), ("customer", rec["customer"]), ("subscription", rec["subscription"])]

    def create(self, data: Record, actor: Actor) -> Record:
        rec = self.new_record(data, actor)
        customer = self.acct.customers.get(rec["customer"])
        if customer["credit_hold"]:
            raise invalid(
                "New invoices cannot be created for this account because it has a credit hold.", "total"
            )
        rec.update(
            autopay=customer["autopay"],
            attempt_count=0,
            next_payment_attempt=None,
            subscription=None,
            amount_paid=ZERO,
            amount_credited=ZERO,
            chase=True,
            late_fees=True,
            due_date=None,
            payment_terms=None,
        )
        if "autopay" in data:
            rec["autopay"] = f.boolean(data["autopay"], "autopay")
        if "subscription" in data and data["subscription"] not in (None, ""):
            subscription = self.acct.subscriptions.find(data["subscription"])
            if subscription is None:
                raise invalid(f"No such subscription: {data['subscription']}", "subscription")
            rec["subscription"] = subscription["id"]
        for key in ("chase", "late_fees"):
            if key in data:
                rec[key] = f.boolean(data[key], key)
        if "due_date" in data:
            rec["due_date"] = f.timestamp(data["due_date"], "due_date")
        if "payment_terms" in data:
            rec["payment_terms"] = f.text(data["payment_terms"], "payment_terms", min_len=1, max_len=255)
        elif rec["due_date"] is None:
            rec["payment_terms"] = customer["payment_terms"]
        if rec["autopay"]:
            rec["payment_terms"] = "AutoPay"
        if rec["due_date"] is None:
            rec["due_date"] = due_date_for(rec["payment_terms"], rec["date"])
        limit = customer["credit_limit"]
        if limit is not None and limit > 0:
            outstanding = sum(
                (
                    i["balance"]
                    for i in self.table.values()
                    if i["customer"] == customer["id"]
                    and not (i["closed"] or i["draft"] or i["voided"])
                    and i["currency"] == rec["currency"]
                ),
                ZERO,
            )
            if outstanding + rec["total"] > limit:
                raise invalid(
                    f"This invoice cannot be created because the new amount outstanding "
                    f"({outstanding + rec['total']}) exceeds the account's credit limit ({limit}).",
                    "total",
                )
        self.refresh(rec)
        return self.store_new(rec, actor)

    def update(self, rec: Record, data: Record, actor: Actor) -> Record:
        staged = self.stage_update(rec, data)
        if "autopay" in data:
            staged["autopay"] = f.boolean(data["autopay"], "autopay")
            if staged["autopay"] and not rec["autopay"]:
                staged["payment_terms"] = "AutoPay"
        for key in ("chase", "late_fees"):
            if key in data:
                staged[key] = f.boolean(data[key], key)
        if "payment_terms" in data:
            staged["payment_terms"] = f.text(data["payment_terms"], "payment_terms", min_len=1, max_len=255)
        if "due_date" in data:
            staged["due_date"] = f.timestamp(data["due_date"], "due_date")
        elif staged["payment_terms"] and (
            staged["date"] != rec["date"] or staged["payment_terms"] != rec["payment_terms"]
        ):
            staged["due_date"] = due_date_for(staged["payment_terms"], staged["date"])
        self.refresh(staged, respect_closed="closed" in data)
        self.commit(rec, staged, actor)
        return rec

    def commit(self, rec: Record, staged: Record, actor: Actor) -> None:
        was_paid = rec["paid"]
        with self.acct.tracking(actor, self, rec) as change:
            self.replace(rec, staged)
            if rec["paid"] and not was_paid and not rec["draft"] and rec["total"] > 0:
                change.event_type = "invoice.paid"

    def refresh(self, rec: Record, *, respect_closed: bool = False, previous: Record | None = None) -> None:
        balance = rec["total"] - rec["amount_paid"] - rec["amount_credited"]
        rec["balance"] = ZERO if rec["voided"] else round_money(balance, rec["currency"])
        rec["paid"] = rec["balance"] <= 0 and not rec["draft"] and not rec["voided"]
        if rec["paid"] and not respect_closed:
            rec["closed"] = True
        rec["status"] = self.status(rec)

    def status(self, rec: Record) -> str:
        if rec["voided"]:
            return "voided"
        if rec["draft"]:
            return "draft"
        if rec["paid"]:
            return "paid"
        now = self.acct.now()
        if rec["due_date"] is None and rec["autopay"] and rec["attempt_count"] > 0:
            return "past_due"
        if rec["due_date"] and rec["due_date"] < now:
            return "past_due"
        if rec["viewed"]:
            return "viewed"
        if rec["sent"]:
            return "sent"
        return "not_sent"

    def check_voidable(self, rec: Record) -> None:
        if rec["amount_credited"] > 0:
            raise invalid("This invoice cannot be voided because it has a credit note applied.")
        if rec["amount_paid"] > 0:
            raise invalid("This invoice cannot be voided because it has a payment applied.")

    def settled(self, rec: Record) -> bool:
        return bool(rec["paid"])


class CreditNotes(DocumentService):
    collection = "credit_notes"
    object_type = "credit_note"
    model_name = "Credit Note"
    prefix = "CN"
    default_name = "Credit Note"
    filterable = DocumentService.base_filterable | {"paid", "balance", "total"}
    blocked_extra = ("paid", "balance", "amount_applied")

    def render(self, rec: Record) -> Record:
        url, pdf_url = self.urls(rec, "credit_notes")
        return {
            "id": rec["id"],
            "object": "credit_note",
            "customer": rec["customer"],
            "name": rec["name"],
            "currency": rec["currency"],
            "draft": rec["draft"],
            "closed": rec["closed"],
            "paid": rec["paid"],
            "status": rec["status"],
            "number": rec["number"],
            "date": rec["date"],
            "purchase_order": rec["purchase_order"],
            "items": self.render_items(rec),
            "notes": rec["notes"],
            "subtotal": rec["subtotal"],
            "discounts": [dict(r) for r in rec["discounts"]],
            "taxes": [dict(r) for r in rec["taxes"]],
            "shipping": [dict(r) for r in rec["shipping"]],
            "total": rec["total"],
            "balance": rec["balance"],
            "url": url,
            "pdf_url": pdf_url,
            "created_at": rec["created_at"],
            "updated_at": rec["updated_at"],
            "metadata": dict(rec["metadata"]),
        }

    def create(self, data: Record, actor: Actor) -> Record:
        rec = self.new_record(data, actor)
        rec["amount_applied"] = ZERO
        self.refresh(rec)
        return self.store_new(rec, actor)

    def update(self, rec: Record, data: Record, actor: Actor) -> Record:
        staged = self.stage_update(rec, data)
        self.refresh(staged, respect_closed="closed" in data)
        with self.acct.tracking(actor, self, rec):
            self.replace(rec, staged)
        return rec

    def refresh(self, rec: Record, *, respect_closed: bool = False, previous: Record | None = None) -> None:
        balance = rec["total"] - rec["amount_applied"]
        rec["balance"] = ZERO if rec["voided"] else round_money(balance, rec["currency"])
        rec["paid"] = rec["balance"] <= 0 and not rec["draft"] and not rec["voided"]
        if rec["paid"] and not respect_closed:
            rec["closed"] = True
        if rec["voided"]:
            rec["status"] = "voided"
        elif rec["draft"]:
            rec["status"] = "draft"
        elif rec["paid"]:
            rec["status"] = "paid"
        elif rec["closed"]:
            rec["status"] = "closed"
        else:
            rec["status"] = "open"

    def check_voidable(self, rec: Record) -> None:
        if rec["amount_applied"] > 0:
            raise invalid("This credit note cannot be voided because it has been applied.")


class Estimates(DocumentService):
    collection = "estimates"
    object_type = "estimate"
    model_name = "Estimate"
    prefix = "EST"
    default_name = "Estimate"
    filterable = DocumentService.base_filterable | {
        "invoice",
        "expiration_date",
        "payment_terms",
        "deposit_paid",
    }
    blocked_extra = ("invoice_id", "approval_id", "last_sent", "approval")

    def render(self, rec: Record) -> Record:
        url, pdf_url = self.urls(rec, "estimates")
        return {
            "id": rec["id"],
            "object": "estimate",
            "customer": rec["customer"],
            "invoice": rec["invoice"],
            "ship_to": copy.deepcopy(rec["ship_to"]),
            "name": rec["name"],
            "currency": rec["currency"],
            "draft": rec["draft"],
            "closed": rec["closed"],
            "status": rec["status"],
            "approved": rec["approved"],
            "approval": None,
            "number": rec["number"],
            "date": rec["date"],
            "expiration_date": rec["expiration_date"],
            "payment_terms": rec["payment_terms"],
            "purchase_order": rec["purchase_order"],
            "items": self.render_items(rec),
            "notes": rec["notes"],
            "subtotal": rec["subtotal"],
            "discounts": [dict(r) for r in rec["discounts"]],
            "taxes": [dict(r) for r in rec["taxes"]],
            "shipping": [dict(r) for r in rec["shipping"]],
            "total": rec["total"],
            "deposit": rec["deposit"],
            "deposit_paid": rec["deposit_paid"],
            "url": url,
            "pdf_url": pdf_url,
            "created_at": rec["created_at"],
            "updated_at": rec["updated_at"],
            "metadata": dict(rec["metadata"]),
        }

    def create(self, data: Record, actor: Actor) -> Record:
        rec = self.new_record(data, actor)
        customer = self.acct.customers.get(rec["customer"])
        rec.update(
            invoice=None,
            approved=None,
            expiration_date=None,
            payment_terms=customer["payment_terms"],
            deposit=ZERO,
            deposit_paid=False,
        )
        self.stage_estimate(rec, data, rec)
        self.refresh(rec)
        return self.store_new(rec, actor)

    def update(self, rec: Record, data: Record, actor: Actor) -> Record:
        staged = self.stage_update(rec, data)
        self.stage_estimate(staged, data, rec)
        self.refresh(staged, previous=rec)
        with self.acct.tracking(actor, self, rec):
            self.replace(rec, staged)
        return rec

    def stage_estimate(self, staged: Record, data: Record, current: Record) -> None:
        if "expiration_date" in data:
            staged["expiration_date"] = f.timestamp(data["expiration_date"], "expiration_date")
        if "payment_terms" in data:
            staged["payment_terms"] = f.text(data["payment_terms"], "payment_terms", min_len=1, max_len=255)
        if "approved" in data:
            staged["approved"] = f.text(data["approved"], "approved")
        if "deposit" in data:
            deposit = f.decimal(data["deposit"], "deposit")
            assert deposit is not None
            staged["deposit"] = round_money(deposit, staged["currency"])
        if "deposit_paid" in data:
            staged["deposit_paid"] = f.boolean(data["deposit_paid"], "deposit_paid")
        if (
            "invoice" in data
            and data["invoice"] not in (None, "")
            and data["invoice"] != current.get("invoice")
        ):
            invoice = self.acct.invoices.find(data["invoice"])
            if invoice is None:
                raise invalid(f"No such invoice: {data['invoice']}", "invoice")
            staged["invoice"] = invoice["id"]

    def refresh(self, rec: Record, *, respect_closed: bool = False, previous: Record | None = None) -> None:
        before = previous if previous is not None else {"closed": rec["closed"], "invoice": None}
        if not rec["closed"] and before["closed"] == rec["closed"]:
            if rec["approved"] and (not rec["deposit"] or rec["deposit_paid"]):
                rec["closed"] = True
            if rec["invoice"] and rec["invoice"] != before["invoice"]:
                rec["closed"] = True
        rec["status"] = self.status(rec)

    def status(self, rec: Record) -> str:
        if rec["voided"]:
            return "voided"
        if rec["draft"]:
            return "draft"
        if rec["invoice"]:
            return "invoiced"
        if rec["approved"]:
            return "approved"
        if rec["closed"]:
            return "declined"
        expires = rec["expiration_date"]
        if expires and expires < self.acct.now():
            return "expired"
        if rec["viewed"]:
            return "viewed"
        if rec["sent"]:
            return "sent"
        return "not_sent"

    def settled(self, rec: Record) -> bool:
        return bool(rec["closed"] or rec["invoice"])

    def check_voidable(self, rec: Record) -> None:
        if rec["invoice"]:
            raise invalid("This estimate cannot be voided because it has already been invoiced.")
        if rec["deposit_paid"]:
            raise invalid("This estimate cannot be voided because it has a deposit payment applied.")

    def approve(self, rec: Record, approved_by: str, actor: Actor) -> Record:
        """The customer approving the estimate in the customer portal."""
        if rec["voided"]:
            raise invalid("Your changes cannot be saved because this document is voided.", "voided")
        with self.acct.tracking(actor, self, rec, "estimate.approved"):
            previous = dict(rec)
            rec["approved"] = approved_by
            self.refresh(rec, previous=previous)
        return rec

    def to_invoice(self, rec: Record, actor: Actor) -> Record:
        """Generate an invoice from the estimate (`POST /estimates/:id/invoice`)."""
        data: Record = {
            "customer": rec["customer"],
            "currency": rec["currency"],
            "date": self.acct.now(),
            "payment_terms": rec["payment_terms"],
            "purchase_order": rec["purchase_order"],
            "notes": rec["notes"],
            "ship_to": copy.deepcopy(rec["ship_to"]),
            "metadata": dict(rec["metadata"]),
            "items": [
                {
                    "catalog_item": i["catalog_item"],
                    "type": i["type"],
                    "name": i["name"],
                    "description": i["description"],
                    "quantity": i["quantity"],
                    "unit_cost": i["unit_cost"],
                    "discountable": i["discountable"],
                    "taxable": i["taxable"],
                    "discounts": [{"amount": r["amount"]} for r in i["discounts"]],
                    "taxes": [{"amount": r["amount"]} for r in i["taxes"]],
                    "metadata": dict(i["metadata"]),
                }
                for i in rec["items"]
            ],
            "discounts": [{"amount": r["amount"]} for r in rec["discounts"]],
            "taxes": [{"amount": r["amount"]} for r in rec["taxes"]],
            "shipping": [{"amount": r["amount"]} for r in rec["shipping"]],
        }
        if rec["name"] != self.default_name:
            data["name"] = rec["name"]
        if data["payment_terms"] is None:
            del data["payment_terms"]
        invoice = self.acct.invoices.create(data, actor)
        # A voided estimate cannot be saved any more: the invoice is generated, the estimate stays as it is.
        if not rec["voided"]:
            with self.acct.tracking(actor, self, rec):
                previous = dict(rec)
                rec["invoice"] = invoice["id"]
                self.refresh(rec, previous=previous)
        return invoice
