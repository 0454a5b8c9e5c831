"""Customers and what hangs off them: contacts, notes and tokenised payment sources."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from local.invoiced import fields as f
from local.invoiced.account import DASHBOARD_USER, Account, Actor, Record, Service
from local.invoiced.cards import BankDetails, CardDetails, TokenVault
from local.invoiced.errors import ApiError, invalid, missing, not_found

CUSTOMER_TYPES = ("company", "government", "non_profit", "person")
_CUSTOMER_TEXT = {
    "attention_to": None,
    "address1": None,
    "address2": None,
    "city": None,
    "state": None,
    "postal_code": None,
    "tax_id": None,
    "phone": None,
    "notes": None,
    "avalara_entity_use_code": None,
    "avalara_exemption_number": None,
}
_CUSTOMER_BOOLS = ("chase", "credit_hold", "taxable", "bill_to_parent", "consolidated")


class Customers(Service):
    collection = "customers"
    object_type = "customer"
    model_name = "Customer"
    filterable = frozenset(
        {
            "name",
            "number",
            "email",
            "type",
            "autopay",
            "payment_terms",
            "country",
            "currency",
            "language",
            "chase",
            "credit_hold",
            "owner",
            "parent_customer",
            "taxable",
            "tax_id",
            "city",
            "state",
            "postal_code",
            "phone",
        }
    )
    blocked = (
        "id",
        "object",
        "created_at",
        "updated_at",
        "statement_pdf_url",
        "sign_up_url",
        "credit_balance",
    )

    def render(self, rec: Record) -> Record:
        source = None
        if rec.get("default_source") is not None:
            source_rec = self.acct.payment_sources.table.get(rec["default_source"])
            if source_rec is not None:
                source = self.acct.payment_sources.render(source_rec)
        return {
            "id": rec["id"],
            "object": "customer",
            "name": rec["name"],
            "number": rec["number"],
            "email": rec["email"],
            "autopay": rec["autopay"],
            "payment_terms": rec["payment_terms"],
            "payment_source": source,
            "taxes": list(rec["taxes"]),
            "type": rec["type"],
            "attention_to": rec["attention_to"],
            "address1": rec["address1"],
            "address2": rec["address2"],
            "city": rec["city"],
            "state": rec["state"],
            "postal_code": rec["postal_code"],
            "country": rec["country"],
            "language": rec["language"],
            "currency": rec["currency"],
            "tax_id": rec["tax_id"],
            "phone": rec["phone"],
            "notes": rec["notes"],
            "sign_up_page": None,
            "sign_up_url": None,
            "statement_pdf_url": self.acct.portal_url(f"statements/{rec['client_id']}/pdf"),
            "created_at": rec["created_at"],
            "updated_at": rec["updated_at"],
            "metadata": dict(rec["metadata"]),
            "autopay_delay_days": rec["autopay_delay_days"],
            "avalara_entity_use_code": rec["avalara_entity_use_code"],
            "avalara_exemption_number": rec["avalara_exemption_number"],
            "bill_to_parent": rec["bill_to_parent"],
            "chase": rec["chase"],
            "chasing_cadence": None,
            "next_chase_step": None,
            "consolidated": rec["consolidated"],
            "credit_hold": rec["credit_hold"],
            "credit_limit": rec["credit_limit"],
            "owner": rec["owner"],
            "parent_customer": rec["parent_customer"],
            "taxable": rec["taxable"],
            "ach_gateway": None,
            "cc_gateway": None,
        }

    def event_object(self, rec: Record) -> Record:
        return self.render(rec)

    def associations(self, rec: Record) -> list[tuple[str, Any]]:
        return [("customer", rec["id"])]

    def create(self, data: Record, actor: Actor) -> Record:
        f.refuse_blocked(data, self.blocked, self.model_name)
        if "external_id" in data and "number" not in data:
            data = {**data, "number": data["external_id"]}
        rec: Record = {
            "id": 0,
            "name": f.required_text(data, "name"),
            "number": None,
            "email": None,
            "type": "company",
            "autopay": False,
            "payment_terms": None,
            "taxes": [],
            "country": "US",
            "language": None,
            "currency": None,
            "autopay_delay_days": -1,
            "chase": True,
            "credit_hold": False,
            "credit_limit": None,
            "owner": None,
            "parent_customer": None,
            "taxable": True,
            "bill_to_parent": False,
            "consolidated": False,
            "metadata": {},
            "default_source": None,
            **dict(_CUSTOMER_TEXT),
        }
        self._apply(rec, data, creating=True)
        if rec["number"] is None:
            rec["number"] = self.acct.next_number(self.collection, "CUST")
        rec["id"] = self.acct.new_id()
        rec["client_id"] = self.acct.client_id()
        self.acct.stamp_created(rec, actor)
        self.table[rec["id"]] = rec
        self.acct.set_number(self.collection, rec["id"], None, rec["number"])
        self.acct.emit(actor, "customer.created", self, rec)
        return rec

    def update(self, rec: Record, data: Record, actor: Actor) -> Record:
        f.refuse_blocked(data, self.blocked, self.model_name)
        if "external_id" in data and "number" not in data:
            data = {**data, "number": data["external_id"]}
        staged = dict(rec)
        self._apply(staged, data, creating=False)
        self.acct.set_number(self.collection, rec["id"], rec["number"], staged["number"])
        with self.acct.tracking(actor, self, rec):
            rec.update(staged)
        return rec

    def _apply(self, rec: Record, data: Record, *, creating: bool) -> None:
        if "name" in data:
            rec["name"] = f.required_text(data, "name")
        if "number" in data:
            number = f.text(data["number"], "number", min_len=1, max_len=32)
            if number is not None and self.acct.number_taken(self.collection, number, rec.get("id")):
                raise invalid(f"The given customer number has already been taken: {number}", "number")
            if number is None and not creating:
                raise invalid("Number must be a string of the proper length", "number")
            rec["number"] = number
        if "email" in data:
            rec["email"] = f.email(data["email"])
        if "type" in data:
            rec["type"] = f.choice(data["type"], "type", CUSTOMER_TYPES)
        if "autopay" in data:
            rec["autopay"] = f.boolean(data["autopay"], "autopay")
        if "payment_terms" in data:
            rec["payment_terms"] = f.text(data["payment_terms"], "payment_terms", min_len=1, max_len=255)
        if rec["autopay"] and ("autopay" in data or creating):
            rec["payment_terms"] = None
        if "country" in data:
            rec["country"] = f.country(data["country"]) or "US"
        if "language" in data:
            language = f.text(data["language"], "language", min_len=2, max_len=2)
            rec["language"] = language.lower() if language else None
        if "currency" in data:
            rec["currency"] = f.currency(data["currency"])
        for key in _CUSTOMER_TEXT:
            if key in data:
                rec[key] = f.text(data[key], key)
        for key in _CUSTOMER_BOOLS:
            if key in data:
                rec[key] = f.boolean(data[key], key)
        if "autopay_delay_days" in data:
            rec["autopay_delay_days"] = f.integer(
                data["autopay_delay_days"], "autopay_delay_days", nullable=False
            )
        if "credit_limit" in data:
            rec["credit_limit"] = f.decimal(data["credit_limit"], "credit_limit", nullable=True)
        if "owner" in data:
            owner = f.reference_id(data["owner"], "owner")
            if owner is not None and owner != DASHBOARD_USER["id"]:
                raise invalid(f"No such user: {owner}", "owner")
            rec["owner"] = owner
        if "parent_customer" in data:
            parent = f.reference_id(data["parent_customer"], "parent_customer")
            if parent is not None:
                if parent == rec.get("id"):
                    raise invalid("Cannot set parent customer as self.", "parent_customer")
                if self.find(parent) is None:
                    raise invalid(f"No such customer: {parent}", "parent_customer")
            rec["parent_customer"] = parent
        if "taxes" in data:
            taxes = f.expect_list(data["taxes"], "taxes")
            if taxes:
                raise invalid(f"No such tax rate: {taxes[0]}", "taxes")
            rec["taxes"] = []
        if "metadata" in data:
            rec["metadata"] = f.metadata(data["metadata"])

    def delete(self, rec: Record, actor: Actor) -> Record | None:
        customer_id = rec["id"]
        if any(p["customer"] == customer_id for p in self.acct.payments.table.values()):
            raise invalid("Customers with transactions cannot be deleted")
        if any(
            s["customer"] == customer_id and s["status"] not in ("canceled", "finished")
            for s in self.acct.subscriptions.table.values()
        ):
            raise invalid("Customers with an active subscription cannot be deleted")
        self.remove(rec, actor)
        for service in (
            self.acct.contacts,
            self.acct.notes,
            self.acct.payment_sources,
            self.acct.invoices,
            self.acct.credit_notes,
            self.acct.estimates,
            self.acct.subscriptions,
        ):
            for dependant in [r for r in service.table.values() if r.get("customer") == customer_id]:
                service.forget(dependant)
        return None

    def balance(self, rec: Record) -> Record:
        currency = rec["currency"] or self.acct.currency
        now = self.acct.now()
        outstanding = Decimal("0")
        due_now = Decimal("0")
        past_due = False
        for invoice in self.acct.invoices.table.values():
            if invoice["customer"] != rec["id"] or invoice["currency"] != currency:
                continue
            if invoice["draft"] or invoice["voided"] or invoice["paid"] or invoice["closed"]:
                continue
            outstanding += invoice["balance"]
            if invoice["due_date"] is None or invoice["due_date"] <= now:
                due_now += invoice["balance"]
            if invoice["status"] == "past_due":
                past_due = True
        return {
            "available_credits": self.acct.credit_balance(rec["id"], currency),
            "currency": currency,
            "history": [],
            "past_due": past_due,
            "total_outstanding": outstanding,
            "due_now": due_now,
        }


_CONTACT_TEXT = (
    "title",
    "email",
    "phone",
    "department",
    "address1",
    "address2",
    "city",
    "state",
    "postal_code",
)
MAX_CONTACTS_PER_CUSTOMER = 100


class Contacts(Service):
    collection = "contacts"
    object_type = "contact"
    model_name = "Contact"
    filterable = frozenset({"name", "email", "primary", "department", "title", "phone"})
    blocked = ("id", "object", "created_at", "updated_at", "customer")

    def render(self, rec: Record) -> Record:
        return {
            "id": rec["id"],
            "object": "contact",
            "customer": rec["customer"],
            "name": rec["name"],
            "title": rec["title"],
            "email": rec["email"],
            "phone": rec["phone"],
            "primary": rec["primary"],
            "sms_enabled": rec["sms_enabled"],
            "department": rec["department"],
            "address1": rec["address1"],
            "address2": rec["address2"],
            "city": rec["city"],
            "state": rec["state"],
            "postal_code": rec["postal_code"],
            "country": rec["country"],
            "created_at": rec["created_at"],
            "updated_at": rec["updated_at"],
        }

    def get_for(self, customer: Record, raw_id: Any) -> Record:
        rec = self.find(raw_id)
        if rec is None or rec["customer"] != customer["id"]:
            raise not_found(self.model_name, raw_id)
        return rec

    def create_for(self, customer: Record, data: Record, actor: Actor) -> Record:
        f.refuse_blocked({k: v for k, v in data.items() if k != "customer"}, self.blocked, self.model_name)
        count = sum(1 for c in self.table.values() if c["customer"] == customer["id"])
        if count >= MAX_CONTACTS_PER_CUSTOMER:
            raise invalid(
                f"The maximum number of contacts ({MAX_CONTACTS_PER_CUSTOMER}) per customer has been reached."
            )
        rec: Record = {
            "id": 0,
            "customer": customer["id"],
            "name": f.required_text(data, "name"),
            "primary": True,
            "sms_enabled": None,
            "country": customer["country"],
            **dict.fromkeys(_CONTACT_TEXT),
        }
        self._apply(rec, data)
        rec["id"] = self.acct.new_id()
        self.acct.stamp_created(rec, actor)
        self.table[rec["id"]] = rec
        self.acct.emit(actor, "contact.created", self, rec)
        return rec

    def create(self, data: Record, actor: Actor) -> Record:
        customer_id = data.get("customer")
        if customer_id is None:
            raise invalid("Customer missing", "customer")
        customer = self.acct.customers.get(customer_id)
        return self.create_for(customer, {k: v for k, v in data.items() if k != "customer"}, actor)

    def update(self, rec: Record, data: Record, actor: Actor) -> Record:
        f.refuse_blocked(data, self.blocked, self.model_name)
        staged = dict(rec)
        self._apply(staged, data)
        with self.acct.tracking(actor, self, rec):
            rec.update(staged)
        return rec

    def _apply(self, rec: Record, data: Record) -> None:
        if "name" in data:
            rec["name"] = f.required_text(data, "name")
        for key in _CONTACT_TEXT:
            if key in data:
                rec[key] = f.email(data[key]) if key == "email" else f.text(data[key], key)
        if "primary" in data:
            rec["primary"] = f.boolean(data["primary"], "primary")
        if "sms_enabled" in data:
            rec["sms_enabled"] = (
                None if data["sms_enabled"] is None else f.boolean(data["sms_enabled"], "sms_enabled")
            )
        if "country" in data:
            rec["country"] = f.country(data["country"])

    def delete(self, rec: Record, actor: Actor) -> Record | None:
        self.remove(rec, actor)
        return None

    def scope(self, records: list[Record], query: Record) -> list[Record]:
        customer_id = query.get("_customer")
        return [r for r in records if customer_id is None or r["customer"] == customer_id]


class Notes(Service):
    collection = "notes"
    object_type = "note"
    model_name = "Note"
    filterable = frozenset({"customer", "invoice"})
    updated_filter = False
    metadata_filter = False

    def render(self, rec: Record) -> Record:
        result: Record = {
            "id": rec["id"],
            "object": "note",
            "customer": rec["customer"],
            "invoice": rec["invoice"],
            "notes": rec["notes"],
            "created_at": rec["created_at"],
            "updated_at": rec["updated_at"],
        }
        if rec.get("user") is not None:
            result["user"] = dict(rec["user"])
        return result

    def associations(self, rec: Record) -> list[tuple[str, Any]]:
        return [("note", rec["id"]), ("customer", rec["customer"]), ("invoice", rec["invoice"])]

    def create(self, data: Record, actor: Actor) -> Record:
        customer: Record | None = None
        invoice: Record | None = None
        if data.get("customer_id") not in (None, ""):
            customer = self.acct.customers.get(data["customer_id"])
        if data.get("invoice_id") not in (None, ""):
            invoice = self.acct.invoices.get(data["invoice_id"])
            customer = self.acct.customers.get(invoice["customer"])
        if customer is None:
            raise invalid("Missing customer!", "customer")
        notes = data.get("notes")
        if notes is None or notes == "":
            raise missing("notes")
        rec: Record = {
            "id": self.acct.new_id(),
            "customer": customer["id"],
            "invoice": invoice["id"] if invoice else None,
            "notes": f.text(notes, "notes", nullable=False),
            "user": dict(actor.user) if actor.user["id"] > 0 else None,
        }
        self.acct.stamp_created(rec, actor)
        self.table[rec["id"]] = rec
        self.acct.emit(actor, "note.created", self, rec)
        return rec

    def update(self, rec: Record, data: Record, actor: Actor) -> Record:
        if "notes" not in data:
            return rec
        notes = data["notes"]
        if notes is None or notes == "":
            raise missing("notes")
        value = f.text(notes, "notes", nullable=False)
        with self.acct.tracking(actor, self, rec):
            rec["notes"] = value
        return rec

    def delete(self, rec: Record, actor: Actor) -> Record | None:
        self.remove(rec, actor)
        return None

    def scope(self, records: list[Record], query: Record) -> list[Record]:
        if query.get("_customer") is not None:
            records = [r for r in records if r["customer"] == query["_customer"]]
        if query.get("_invoice") is not None:
            records = [r for r in records if r["invoice"] == query["_invoice"]]
        return records


CARD_METHODS = ("card", "credit_card")
BANK_METHODS = ("ach", "bank_account", "direct_debit")


class PaymentSources(Service):
    """Cards and bank accounts, created only from gateway tokens."""

    collection = "payment_sources"
    object_type = "payment_source"
    model_name = "Payment Source"
    updated_filter = False
    metadata_filter = False

    def __init__(self, acct: Account, vault: TokenVault) -> None:
        super().__init__(acct)
        self.vault = vault

    def render(self, rec: Record) -> Record:
        if rec["object"] == "card":
            return {
                "id": rec["id"],
                "object": "card",
                "brand": rec["brand"],
                "last4": rec["last4"],
                "exp_month": rec["exp_month"],
                "exp_year": rec["exp_year"],
                "funding": rec["funding"],
                "chargeable": True,
                "gateway": "stripe",
                "gateway_id": rec["gateway_id"],
                "gateway_customer": None,
                "merchant_account": None,
                "failure_reason": None,
                "receipt_email": None,
                "created_at": rec["created_at"],
                "updated_at": rec["updated_at"],
            }
        return {
            "id": rec["id"],
            "object": "bank_account",
            "bank_name": rec["bank_name"],
            "last4": rec["last4"],
            "routing_number": rec["routing_number"],
            "verified": rec["verified"],
            "updated_at": rec["updated_at"],
            "currency": rec["currency"],
        }

    def event_object(self, rec: Record) -> Record:
        return self.render(rec)

    def scope(self, records: list[Record], query: Record) -> list[Record]:
        customer_id = query.get("_customer")
        return [r for r in records if customer_id is None or r["customer"] == customer_id]

    def create_for(self, customer: Record, data: Record, actor: Actor) -> Record:
        method = data.get("method") or "credit_card"
        if method not in CARD_METHODS + BANK_METHODS:
            raise invalid(f"Unsupported payment method: {method}", "method")
        invoiced_token = data.get("invoiced_token")
        gateway_token = data.get("gateway_token")
        if invoiced_token and gateway_token:
            raise invalid("Only one of invoiced_token or gateway_token can be supplied.")
        raw_token = invoiced_token or gateway_token
        if not raw_token or not isinstance(raw_token, str):
            raise invalid("Missing payment information. Either invoiced_token or gateway_token is required.")
        token = self.vault.peek(raw_token)
        if token is None:
            raise invalid(f"No such token: {raw_token}")
        if token.details is None:
            raise invalid("Your card was declined.")
        wants_card = method in CARD_METHODS
        if wants_card != isinstance(token.details, CardDetails):
            kind = "card" if wants_card else "bank account"
            raise invalid(f"The supplied token is not a {kind} token.", "method")
        make_default = f.boolean(data["make_default"], "make_default") if "make_default" in data else False
        self.vault.redeem(raw_token)
        details = token.details
        rec: Record = {"id": self.acct.new_id(), "customer": customer["id"]}
        if isinstance(details, CardDetails):
            rec.update(
                object="card",
                brand=details.brand,
                last4=details.last4,
                exp_month=details.exp_month,
                exp_year=details.exp_year,
                funding=details.funding,
                gateway_id=f"card_{self.acct.client_id()}",
            )
        else:
            assert isinstance(details, BankDetails)
            rec.update(
                object="bank_account",
                bank_name=details.bank_name,
                last4=details.last4,
                routing_number=details.routing_number,
                verified=details.verified,
                currency=details.currency,
            )
        self.acct.stamp_created(rec, actor)
        self.table[rec["id"]] = rec
        self.acct.emit(actor, "payment_source.created", self, rec)
        if make_default or customer.get("default_source") is None:
            with self.acct.tracking(actor, self.acct.customers, customer):
                customer["default_source"] = rec["id"]
        return rec

    def get_for(self, customer: Record, kind: str, raw_id: Any) -> Record:
        rec = self.find(raw_id)
        model = "Card" if kind == "card" else "Bank Account"
        if rec is None or rec["object"] != kind or rec["customer"] != customer["id"]:
            raise not_found(model, raw_id)
        return rec

    def delete(self, rec: Record, actor: Actor) -> Record | None:
        customer = self.acct.customers.find(rec["customer"])
        if customer is None or customer.get("default_source") != rec["id"]:
            self.remove(rec, actor)
            return None
        # The customer loses its default source: payment_source.deleted, then customer.updated.
        with self.acct.tracking(actor, self.acct.customers, customer):
            self.remove(rec, actor)
            customer["default_source"] = None
        return None


def require_customer(acct: Account, value: Any, key: str = "customer") -> Record:
    """The customer a document or payment names; 400 when it is missing or unknown."""
    if value is None or value == "":
        raise missing(key)
    customer_id = f.reference_id(value, key)
    customer = acct.customers.find(customer_id) if customer_id is not None else None
    if customer is None:
        raise ApiError(400, f"No such customer: {value}", key)
    return customer
