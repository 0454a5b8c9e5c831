"""Payments and how they are applied to documents (`applied_to`).

A payment's applications move money onto documents: an `invoice` split raises the invoice's amount
paid (and flips it to paid when its balance reaches 0, which Invoiced announces as `invoice.paid`),
a `credit_note` split moves credit from a credit note onto an invoice or estimate (or onto the
customer's credit balance), `credit` adds to the credit balance and `applied_credit` spends it.
Cash splits (`invoice`, `estimate`, `credit`, `convenience_fee`) count against the payment amount;
`balance` is what is left unapplied. Every change is computed on copies and written only once all of
it is valid, so a rejected payment changes nothing.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from local.invoiced import fields as f
from local.invoiced.account import Account, Actor, Record, Service
from local.invoiced.documents import DocumentService
from local.invoiced.errors import ApiError, invalid
from local.invoiced.money import ZERO, format_money, parse_decimal, round_money

CASH_TYPES = frozenset({"invoice", "estimate", "credit", "convenience_fee"})
SPLIT_TYPES = CASH_TYPES | {"credit_note", "applied_credit"}
DOCUMENT_TYPES = ("estimate", "invoice")
# `POST /payments` validates its body against this list; anything else is refused.
CREATE_OPTIONS = frozenset(
    {
        "amount",
        "currency",
        "customer",
        "date",
        "method",
        "reference",
        "source",
        "notes",
        "ach_sender_id",
        "attachments",
        "applied_to",
        "metadata",
        "accounting_id",
        "accounting_system",
    }
)
_COLLECTIONS = {"invoice": "invoices", "estimate": "estimates", "credit_note": "credit_notes"}
_MODEL_NOUNS = {"invoice": "invoice", "estimate": "estimate", "credit_note": "credit note"}


def _documents(acct: Account, kind: str) -> DocumentService:
    service = acct.service(_COLLECTIONS[kind])
    assert isinstance(service, DocumentService)
    return service


def _apply_error(message: str) -> ApiError:
    return invalid(f"An error occurred while trying to apply payment: {message}", "applied_to")


class Payments(Service):
    collection = "payments"
    object_type = "payment"
    model_name = "Payment"
    date_filter = "date"
    filterable = frozenset(
        {
            "customer",
            "currency",
            "method",
            "reference",
            "source",
            "voided",
            "matched",
            "date",
            "amount",
            "balance",
        }
    )
    editable = (
        "amount",
        "currency",
        "customer",
        "date",
        "method",
        "reference",
        "source",
        "notes",
        "ach_sender_id",
        "applied_to",
        "metadata",
        "matched",
    )

    # -- rendering ------------------------------------------------------------------------------

    def render(self, rec: Record, include_applied: bool = False) -> Record:
        applied = rec["balance"] == 0 and rec["amount"] > 0
        pdf_url = (
            self.acct.portal_url(f"payments/{rec['client_id']}/pdf")
            if applied and not rec["voided"] and rec["customer"]
            else None
        )
        result: Record = {
            "id": rec["id"],
            "object": "payment",
            "customer": rec["customer"],
            "date": rec["date"],
            "currency": rec["currency"],
            "amount": rec["amount"],
            "balance": rec["balance"],
            "method": rec["method"],
            "reference": rec["reference"],
            "source": rec["source"],
            "notes": rec["notes"],
            "matched": rec["matched"],
            "voided": rec["voided"],
            "ach_sender_id": rec["ach_sender_id"],
            "charge": None,
            "surcharge_percentage": 0,
            "pdf_url": pdf_url,
            "created_at": rec["created_at"],
            "updated_at": rec["updated_at"],
            "metadata": dict(rec["metadata"]),
        }
        if include_applied:
            result["applied_to"] = [self.render_split(s) for s in rec["applied_to"]]
        return result

    def render_for_api(self, rec: Record, include: frozenset[str]) -> Record:
        return self.render(rec, include_applied="applied_to" in include)

    @staticmethod
    def render_split(split: Record) -> Record:
        result: Record = {"id": split["id"], "type": split["type"], "amount": split["amount"]}
        kind = split["type"]
        if kind in ("invoice", "estimate"):
            result[kind] = split[kind]
        elif kind == "credit_note":
            result["credit_note"] = split["credit_note"]
            if split.get("document_type"):
                result["document_type"] = split["document_type"]
                result[split["document_type"]] = split[split["document_type"]]
        elif kind == "applied_credit":
            result["document_type"] = split["document_type"]
            result[split["document_type"]] = split[split["document_type"]]
        return result

    def event_object(self, rec: Record) -> Record:
        obj = self.render(rec, include_applied=True)
        if rec["customer"] is not None:
            customer = self.acct.customers.find(rec["customer"])
            if customer is not None:
                obj["customer"] = self.acct.customers.render(customer)
        return obj

    def associations(self, rec: Record) -> list[tuple[str, Any]]:
        result: list[tuple[str, Any]] = [("payment", rec["id"]), ("customer", rec["customer"])]
        for split in rec["applied_to"]:
            for kind in _COLLECTIONS:
                if split.get(kind) is not None:
                    result.append((kind, split[kind]))
        return result

    # -- writes ---------------------------------------------------------------------------------

    def create(self, data: Record, actor: Actor) -> Record:
        unknown = set(data) - CREATE_OPTIONS
        if unknown:
            raise invalid(
                f"The option '{sorted(unknown)[0]}' does not exist. Defined options are: "
                + ", ".join(f"'{k}'" for k in sorted(CREATE_OPTIONS))
                + ".",
                "request",
            )
        if "amount" not in data:
            raise invalid("The required option 'amount' is missing.", "request")
        amount = self._amount(data["amount"])
        customer_id: int | None = None
        if data.get("customer") not in (None, ""):
            customer_id = f.reference_id(data["customer"], "customer")
            if customer_id is None or self.acct.customers.find(customer_id) is None:
                raise invalid(f"No such customer: {data['customer']}")
        rec: Record = {
            "id": None,
            "customer": customer_id,
            "date": f.timestamp(data.get("date"), "date") or self.acct.now(),
            "currency": None,
            "amount": amount,
            "balance": amount,
            "method": f.text(data.get("method"), "method") or "other",
            "reference": f.text(data.get("reference"), "reference"),
            "source": f.text(data.get("source"), "source") or "keyed",
            "notes": f.text(data.get("notes"), "notes"),
            "matched": None,
            "voided": False,
            "ach_sender_id": f.text(data.get("ach_sender_id"), "ach_sender_id"),
            "metadata": f.metadata(data.get("metadata")),
            "applied_to": [],
        }
        rec["currency"] = f.currency(data.get("currency")) or self._inherited_currency(customer_id)
        rec["amount"] = rec["balance"] = round_money(amount, rec["currency"])
        raw_splits = f.expect_list(data.get("applied_to"), "applied_to")
        plan = self._plan(rec, [], raw_splits)
        rec["id"] = self.acct.new_id()
        rec["client_id"] = self.acct.client_id()
        self.acct.stamp_created(rec, actor)
        self.table[rec["id"]] = rec
        self.acct.emit(actor, "payment.created", self, rec)
        plan.commit(actor)
        return rec

    def update(self, rec: Record, data: Record, actor: Actor) -> Record:
        if rec["voided"]:
            raise invalid("The payment is voided and cannot be edited.", "voided")
        staged = copy.deepcopy(rec)
        if "amount" in data:
            staged["amount"] = round_money(self._amount(data["amount"]), staged["currency"])
        if "customer" in data:
            customer_id = (
                f.reference_id(data["customer"], "customer") if data["customer"] not in (None, "") else None
            )
            if customer_id is not None and self.acct.customers.find(customer_id) is None:
                raise invalid(f"No such customer: {data['customer']}")
            staged["customer"] = customer_id
        if "currency" in data:
            currency = f.currency(data["currency"], nullable=False)
            if currency != rec["currency"] and rec["applied_to"]:
                raise invalid(
                    "The currency cannot be modified if the payment is applied. You must first unapply the "
                    "payment to change the currency."
                )
            staged["currency"] = currency
        if "date" in data:
            staged["date"] = f.timestamp(data["date"], "date", nullable=False)
        for key in ("method", "reference", "source", "notes", "ach_sender_id"):
            if key in data:
                staged[key] = f.text(data[key], key)
        if "matched" in data:
            staged["matched"] = (
                None if data["matched"] in (None, "") else f.boolean(data["matched"], "matched")
            )
        if "metadata" in data:
            staged["metadata"] = f.metadata(data["metadata"])
        if "applied_to" in data:
            raw_splits = f.expect_list(data["applied_to"], "applied_to")
        elif staged["customer"] != rec["customer"]:
            raw_splits = []  # changing the customer unapplies the payment
        else:
            raw_splits = [self.render_split(s) for s in rec["applied_to"]]
        cash = sum((s["amount"] for s in rec["applied_to"] if s["type"] in CASH_TYPES), ZERO)
        if "applied_to" not in data and staged["amount"] < cash:
            raise invalid("The amount cannot cause the balance to go below 0.", "amount")
        plan = self._plan(staged, rec["applied_to"], raw_splits)
        with self.acct.tracking(actor, self, rec):
            rec.clear()
            rec.update(staged)
        plan.commit(actor)
        return rec

    def delete(self, rec: Record, actor: Actor) -> Record | None:
        """`DELETE /payments/:id` voids the payment and reverses its applications."""
        if rec["voided"]:
            raise invalid("This payment has already been voided.")
        staged = copy.deepcopy(rec)
        plan = self._plan(staged, rec["applied_to"], [])
        plan.commit(actor)
        rec.clear()
        rec.update(staged)
        rec["voided"] = True
        rec["balance"] = rec["amount"]
        rec["updated_at"] = actor.updated_at if actor.updated_at is not None else self.acct.now()
        self.acct.emit(actor, "payment.deleted", self, rec)
        return rec

    # -- application planning -------------------------------------------------------------------

    def _amount(self, value: Any) -> Decimal:
        if value is None or isinstance(value, bool | dict | list):
            raise invalid(
                f"The option 'amount' with value {value!r} is expected to be of type 'numeric'.", "request"
            )
        try:
            amount = parse_decimal(value, "amount")
        except ApiError:
            raise invalid(
                f"The option 'amount' with value '{value}' is expected to be of type 'numeric', but is of type "
                "'string'.",
                "request",
            ) from None
        if amount < 0:
            raise invalid("The amount cannot be less than 0.", "amount")
        return amount

    def _inherited_currency(self, customer_id: int | None) -> str:
        if customer_id is not None:
            customer = self.acct.customers.find(customer_id)
            if customer is not None and customer["currency"]:
                return str(customer["currency"])
        return self.acct.currency

    def _plan(self, payment: Record, old_splits: list[Record], raw_splits: list[Any]) -> _Plan:
        """Validate the new applications, and compute every document's state after the change."""
        plan = _Plan(self)
        new_splits = self._normalize(payment, old_splits, raw_splits)
        cash = sum((s["amount"] for s in new_splits if s["type"] in CASH_TYPES), ZERO)
        if cash > payment["amount"]:
            raise _apply_error(
                f"Total amount applied ({format_money(cash, payment['currency'])}) cannot exceed the payment "
                f"amount ({format_money(payment['amount'], payment['currency'])})"
            )
        for split in old_splits:
            plan.apply(split, -1, payment)
        for split in new_splits:
            plan.apply(split, 1, payment)
        plan.validate()
        payment["applied_to"] = new_splits
        payment["balance"] = round_money(payment["amount"] - cash, payment["currency"])
        return plan

    def _normalize(self, payment: Record, old_splits: list[Record], raw_splits: list[Any]) -> list[Record]:
        result: list[Record] = []
        keys: list[str] = []
        old_by_key = {self._key(s): s for s in old_splits}
        for raw in raw_splits:
            if not isinstance(raw, dict):
                raise _apply_error("Must provide a type for each transaction.")
            kind = raw.get("type")
            if not kind:
                raise _apply_error("Must provide a type for each transaction.")
            if kind not in SPLIT_TYPES:
                raise _apply_error(f"Unrecognized split type: {kind}")
            if kind not in ("applied_credit", "credit_note", "document_adjustment"):
                if raw.get("invoice") not in (None, "") and kind != "invoice":
                    raise _apply_error("Cannot supply invoice ID to non-invoice splits.")
                if raw.get("estimate") not in (None, "") and kind != "estimate":
                    raise _apply_error("Cannot supply estimate ID to non-estimate splits.")
            split: Record = {"type": kind}
            if raw.get("amount") in (None, ""):
                raise _apply_error("Must provide an amount for each transaction.")
            try:
                amount = parse_decimal(raw["amount"], "amount")
            except ApiError:
                raise _apply_error("Must provide an amount for each transaction.") from None
            amount = round_money(amount, payment["currency"])
            if amount <= 0:
                raise _apply_error(
                    "Amount applied to document must be greater than 0. Provided: "
                    + format_money(amount, payment["currency"])
                )
            split["amount"] = amount
            if kind in ("invoice", "estimate"):
                split[kind] = self._document(kind, raw.get(kind), payment)["id"]
            elif kind == "credit_note":
                split["credit_note"] = self._document("credit_note", raw.get("credit_note"), payment)["id"]
                self._attach_document(split, raw, payment, required=False)
            elif kind == "applied_credit":
                self._attach_document(split, raw, payment, required=True)
            key = self._key(split)
            if key in keys:
                raise _apply_error(
                    f"Each document can only be applied once per payment. Detected duplicate ({key})"
                )
            keys.append(key)
            previous = old_by_key.get(key)
            split["id"] = previous["id"] if previous is not None else self.acct.new_id()
            result.append(split)
        if result and payment["customer"] is None:
            raise _apply_error("Missing customer")
        return result

    def _attach_document(self, split: Record, raw: Record, payment: Record, *, required: bool) -> None:
        document_type = raw.get("document_type")
        if not document_type:
            if required:
                raise _apply_error("Document type provided without document")
            split["document_type"] = None
            return
        if document_type not in DOCUMENT_TYPES:
            raise _apply_error(
                "Invalid document type provided. Allowed types are " + ", ".join(DOCUMENT_TYPES)
            )
        if raw.get(document_type) in (None, ""):
            raise _apply_error("Document type provided without document")
        split["document_type"] = document_type
        split[document_type] = self._document(document_type, raw[document_type], payment)["id"]

    def _document(self, kind: str, raw_id: Any, payment: Record) -> Record:
        service = _documents(self.acct, kind)
        doc = service.find(raw_id) if raw_id not in (None, "") else None
        noun = _MODEL_NOUNS[kind]
        if doc is None:
            raise _apply_error(f"Could not find {noun}: {'' if raw_id is None else raw_id}")
        if payment["customer"] is None:
            payment["customer"] = doc["customer"]
        if doc["currency"] != payment["currency"]:
            raise _apply_error(
                f"The currency of {noun} {doc['number']} ({doc['currency']}) does not match the payment "
                f"currency ({payment['currency']})"
            )
        if doc["customer"] != payment["customer"] and not self._is_parent(
            payment["customer"], doc["customer"]
        ):
            customer = self.acct.customers.find(payment["customer"])
            number = customer["number"] if customer else payment["customer"]
            raise _apply_error(
                f"The {noun} provided ({doc['number']}) does not belong to the customer that was selected to "
                f"apply payments for: {number}"
            )
        return doc

    def _is_parent(self, parent_id: int, child_id: int) -> bool:
        seen: set[int] = set()
        current = self.acct.customers.find(child_id)
        while current is not None and current["parent_customer"] is not None and current["id"] not in seen:
            seen.add(current["id"])
            if current["parent_customer"] == parent_id:
                return True
            current = self.acct.customers.find(current["parent_customer"])
        return False

    @staticmethod
    def _key(split: Record) -> str:
        kind = split["type"]
        key = str(kind)
        if split.get(kind) is not None:
            key += f":{split[kind]}"
        document_type = split.get("document_type")
        if document_type:
            key += f", {document_type}:{split[document_type]}"
        return key

    def pay_invoice(self, invoice: Record, data: Record, actor: Actor) -> Record:
        """Record a payment of an invoice, as a team member does in the dashboard."""
        amount = data.get("amount", invoice["balance"])
        payload: Record = {
            "customer": invoice["customer"],
            "currency": invoice["currency"],
            "amount": amount,
            "method": data.get("method", "check"),
            "applied_to": [{"type": "invoice", "invoice": invoice["id"], "amount": amount}],
        }
        for key in ("reference", "date", "notes", "metadata"):
            if key in data:
                payload[key] = data[key]
        return self.create(payload, actor)


class _Plan:
    """Working copies of the documents (and credit balances) a payment change touches."""

    def __init__(self, payments: Payments) -> None:
        self.payments = payments
        self.acct = payments.acct
        self.docs: dict[tuple[str, int], Record] = {}
        self.order: list[tuple[str, int]] = []
        self.credits: dict[tuple[int, str], Decimal] = {}

    def doc(self, kind: str, doc_id: int) -> Record:
        key = (kind, doc_id)
        if key not in self.docs:
            service = self.acct.service(_COLLECTIONS[kind])
            self.docs[key] = copy.deepcopy(service.get(doc_id))
            self.order.append(key)
        return self.docs[key]

    def credit(self, payment: Record, delta: Decimal) -> None:
        key = (payment["customer"], payment["currency"])
        current = self.credits.get(key, self.acct.credit_balance(*key))
        self.credits[key] = current + delta

    def apply(self, split: Record, sign: int, payment: Record) -> None:
        amount = split["amount"] * sign
        kind = split["type"]
        if kind == "invoice":
            self._pay_invoice(split["invoice"], amount, "amount_paid")
        elif kind == "estimate":
            self._pay_estimate(split["estimate"], amount)
        elif kind == "credit":
            self.credit(payment, amount)
        elif kind == "credit_note":
            note = self.doc("credit_note", split["credit_note"])
            if sign > 0 and (note["voided"] or note["draft"]):
                state = "voided" if note["voided"] else "a draft"
                raise _apply_error(f"Could not apply transaction to credit note: the credit note is {state}.")
            note["amount_applied"] += amount
            self._to_document(split, amount, payment, "amount_credited")
        elif kind == "applied_credit":
            self.credit(payment, -amount)
            self._to_document(split, amount, payment, "amount_paid")

    def _to_document(self, split: Record, amount: Decimal, payment: Record, field_name: str) -> None:
        document_type = split.get("document_type")
        if document_type == "invoice":
            self._pay_invoice(split["invoice"], amount, field_name)
        elif document_type == "estimate":
            self._pay_estimate(split["estimate"], amount)
        elif split["type"] == "credit_note":
            self.credit(payment, amount)

    def _pay_invoice(self, invoice_id: int, amount: Decimal, field_name: str) -> None:
        invoice = self.doc("invoice", invoice_id)
        if amount > 0 and invoice["voided"]:
            raise _apply_error(
                "Could not apply payment to invoice: Your changes cannot be saved because this document is voided."
            )
        invoice[field_name] += amount
        if invoice["draft"] and amount > 0:
            invoice["draft"] = False
        if amount < 0:
            invoice["closed"] = False

    def _pay_estimate(self, estimate_id: int, amount: Decimal) -> None:
        estimate = self.doc("estimate", estimate_id)
        if amount > 0 and estimate["voided"]:
            raise _apply_error(
                "Could not apply payment to estimate: Your changes cannot be saved because this document is voided."
            )
        # Invoiced marks an unpaid deposit as paid and never unmarks it when the payment goes away.
        if amount > 0 and estimate["deposit"] > 0 and not estimate["deposit_paid"]:
            estimate["deposit_paid"] = True

    def validate(self) -> None:
        for (kind, _), doc in self.docs.items():
            if kind == "credit_note" and doc["amount_applied"] > doc["total"]:
                raise _apply_error(
                    "Could not apply transaction to credit note: the amount applied exceeds the credit note balance."
                )
        for (_, currency), balance in self.credits.items():
            if balance < 0:
                raise _apply_error(
                    "Could not write this change because it caused the customer's credit balance to become "
                    f"{format_money(balance, currency)}"
                )

    def commit(self, actor: Actor) -> None:
        for key, balance in self.credits.items():
            self.acct.credit_balances[key] = balance
        for kind, doc_id in self.order:
            service = _documents(self.acct, kind)
            working = self.docs[(kind, doc_id)]
            original = service.get(doc_id)
            service.refresh(working, previous=original)
            was_paid = bool(original.get("paid"))
            with self.acct.tracking(actor, service, original) as change:
                original.clear()
                original.update(working)
                if kind == "invoice" and original["paid"] and not was_paid and original["total"] > 0:
                    change.event_type = "invoice.paid"
