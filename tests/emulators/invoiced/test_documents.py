"""Invoices, credit notes and estimates: shapes, money and time formats, totals and status machines."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.invoiced import InvoicedEmulator
from tests.emulators.invoiced.conftest import Api

INVOICE_FIELDS = {
    "id",
    "object",
    "customer",
    "ship_to",
    "name",
    "currency",
    "draft",
    "closed",
    "paid",
    "status",
    "autopay",
    "attempt_count",
    "next_payment_attempt",
    "subscription",
    "number",
    "date",
    "due_date",
    "payment_terms",
    "purchase_order",
    "items",
    "notes",
    "subtotal",
    "discounts",
    "taxes",
    "shipping",
    "total",
    "balance",
    "url",
    "payment_url",
    "pdf_url",
    "created_at",
    "updated_at",
    "metadata",
    "payment_plan",
}
LINE_ITEM_FIELDS = {
    "id",
    "object",
    "catalog_item",
    "type",
    "name",
    "description",
    "quantity",
    "unit_cost",
    "amount",
    "discountable",
    "discounts",
    "taxable",
    "taxes",
    "metadata",
}


def _act(invoiced: InvoicedEmulator, *args: Any) -> dict[str, Any]:
    result = invoiced.control.act(*args)
    assert result is not None
    return result


@pytest.fixture
def customer(api: Api) -> dict[str, object]:
    return api.create("/customers", {"name": "Dunder Mifflin"})


def test_invoice_shape_money_and_time_formats(api: Api, customer: dict[str, object]) -> None:
    response = api.post(
        "/invoices",
        {
            "customer": customer["id"],
            "currency": "USD",
            "items": [{"name": "Copy Paper, Case", "quantity": 3, "unit_cost": 17.05}],
            "taxes": [{"amount": 3.85}],
            "discounts": [{"amount": 0.1}],
        },
    )
    assert response.status_code == 201
    invoice = response.json()
    assert set(invoice) == INVOICE_FIELDS
    assert set(invoice["items"][0]) == LINE_ITEM_FIELDS
    assert invoice["object"] == "invoice"
    assert invoice["currency"] == "usd"
    assert invoice["number"] == "INV-0001"
    for key in ("date", "created_at", "updated_at"):
        assert isinstance(invoice[key], int)
    # Exact decimals on the wire: 3 x 17.05 = 51.15 (never 51.150000000000006), whole amounts as integers.
    assert '"amount":51.15' in response.text
    assert '"subtotal":51.15' in response.text
    assert '"total":54.9' in response.text
    assert '"unit_cost":17.05' in response.text
    assert '"quantity":3,' in response.text
    assert invoice["discounts"][0] == {
        "id": invoice["discounts"][0]["id"],
        "object": "discount",
        "amount": 0.1,
        "coupon": None,
        "expires": None,
    }
    assert invoice["taxes"][0]["object"] == "tax"


def test_line_amounts_round_half_up_to_cents(api: Api, customer: dict[str, object]) -> None:
    invoice = api.create(
        "/invoices",
        {
            "customer": customer["id"],
            "items": [
                {"name": "A", "quantity": 3, "unit_cost": 0.335},
                {"name": "B", "quantity": 0.5, "unit_cost": 0.01},
            ],
        },
    )
    assert [i["amount"] for i in invoice["items"]] == [1.01, 0.01]
    assert invoice["total"] == 1.02


def test_line_item_ids_are_unique_and_kept_on_update(api: Api, customer: dict[str, object]) -> None:
    invoice = api.create(
        "/invoices",
        {
            "customer": customer["id"],
            "draft": True,
            "items": [{"name": "A", "unit_cost": 1}, {"name": "B", "unit_cost": 2}],
        },
    )
    first, second = (i["id"] for i in invoice["items"])
    assert isinstance(first, int) and first != second

    updated = api.ok(
        api.patch(
            f"/invoices/{invoice['id']}",
            {"items": [{"id": first, "quantity": 4}, {"name": "C", "unit_cost": 3}]},
        )
    )
    assert updated["items"][0]["id"] == first
    assert updated["items"][0]["amount"] == 4
    assert updated["items"][1]["id"] not in (first, second)
    assert updated["total"] == 7


def test_catalog_items_fill_in_line_items(api: Api, customer: dict[str, object]) -> None:
    api.create("/items", {"id": "delivery", "name": "Delivery", "unit_cost": 10, "type": "service"})
    invoice = api.create(
        "/invoices", {"customer": customer["id"], "items": [{"catalog_item": "delivery", "quantity": 2}]}
    )
    item = invoice["items"][0]
    assert (item["catalog_item"], item["name"], item["type"], item["amount"]) == (
        "delivery",
        "Delivery",
        "service",
        20,
    )
    missing = api.post("/invoices", {"customer": customer["id"], "items": [{"catalog_item": "nope"}]})
    assert missing.status_code == 400
    assert missing.json() == {"type": "invalid_request", "message": "No such item: nope", "param": "items"}


def test_form_encoded_bodies_with_bracket_notation(api: Api, customer: dict[str, object]) -> None:
    response = api.session.post(
        api.url("/invoices"),
        data={
            "customer": str(customer["id"]),
            "items[0][name]": "Paper",
            "items[0][quantity]": "2",
            "items[0][unit_cost]": "4.5",
            "items[1][name]": "Toner",
            "items[1][unit_cost]": "30",
            "metadata[salesforce_id]": "006XX000004C1AbQAK",
            "draft": "1",
        },
        timeout=5,
    )
    assert response.status_code == 201, response.text
    invoice = response.json()
    assert [(i["name"], i["amount"]) for i in invoice["items"]] == [("Paper", 9), ("Toner", 30)]
    assert invoice["metadata"] == {"salesforce_id": "006XX000004C1AbQAK"}
    assert invoice["draft"] is True


def test_invoice_status_machine(invoiced: InvoicedEmulator, api: Api, customer: dict[str, object]) -> None:
    invoice = api.create(
        "/invoices",
        {
            "customer": customer["id"],
            "draft": True,
            "payment_terms": "NET 14",
            "items": [{"name": "A", "unit_cost": 100}],
        },
    )
    flags = ("status", "draft", "closed", "paid")
    assert [invoice[k] for k in flags] == ["draft", True, False, False]
    assert invoice["due_date"] - invoice["date"] == 14 * 86400
    invoice_id = invoice["id"]

    invoice = api.ok(api.patch(f"/invoices/{invoice_id}", {"draft": False}))
    assert [invoice[k] for k in flags] == ["not_sent", False, False, False]
    assert _act(invoiced, "send", "invoices", invoice_id)["status"] == "sent"
    assert _act(invoiced, "view", "invoices", invoice_id)["status"] == "viewed"

    invoiced.control.advance_clock(15 * 86400)
    assert api.ok(api.get(f"/invoices/{invoice_id}"))["status"] == "past_due"

    invoiced.control.act("pay", "invoices", invoice_id, {"amount": 100})
    invoice = api.ok(api.get(f"/invoices/{invoice_id}"))
    assert [invoice[k] for k in flags] == ["paid", False, True, True]
    assert invoice["balance"] == 0
    assert invoice["payment_url"] is None

    types = [e["type"] for e in invoiced.control.events() if e["data"]["object"].get("object") == "invoice"]
    assert types == [
        "invoice.created",
        "invoice.updated",
        "invoice.updated",
        "invoice.viewed",
        "invoice.updated",
        "invoice.paid",
    ]


def test_back_to_draft_and_edits_of_closed_or_voided_invoices_are_refused(
    api: Api, customer: dict[str, object]
) -> None:
    invoice = api.create("/invoices", {"customer": customer["id"], "items": [{"name": "A", "unit_cost": 10}]})
    path = f"/invoices/{invoice['id']}"
    draft = api.patch(path, {"draft": True})
    assert draft.json() == {
        "type": "invalid_request",
        "message": "Cannot save as a draft because the document has already been issued.",
        "param": "draft",
    }
    assert api.patch(path, {"closed": True}).status_code == 200
    closed = api.patch(path, {"notes": "late edit"})
    assert closed.status_code == 400
    assert closed.json()["param"] == "closed"
    assert api.patch(path, {"closed": False, "notes": "reopened"}).json()["notes"] == "reopened"

    voided = api.ok(api.post(f"{path}/void"))
    assert (voided["status"], voided["balance"], voided["url"], voided["paid"]) == ("voided", 0, None, False)
    again = api.post(f"{path}/void")
    assert again.json() == {"type": "invalid_request", "message": "This document has already been voided."}
    edit = api.patch(path, {"notes": "x"})
    assert edit.json()["message"] == "Your changes cannot be saved because this document is voided."


def test_deleting_invoices(invoiced: InvoicedEmulator, api: Api, customer: dict[str, object]) -> None:
    paid = api.create("/invoices", {"customer": customer["id"], "items": [{"name": "A", "unit_cost": 10}]})
    invoiced.control.act("pay", "invoices", paid["id"], {"amount": 4})
    refused = api.delete(f"/invoices/{paid['id']}")
    assert refused.status_code == 400
    assert refused.json() == {
        "type": "invalid_request",
        "message": "This invoice cannot be voided because it has a payment applied.",
        "param": "voided",
    }

    unpaid = api.create("/invoices", {"customer": customer["id"], "items": [{"name": "B", "unit_cost": 5}]})
    response = api.delete(f"/invoices/{unpaid['id']}")
    assert (response.status_code, response.content) == (204, b"")
    deleted = invoiced.control.events()[-1]
    assert deleted["type"] == "invoice.deleted"
    assert deleted["data"]["object"]["id"] == unpaid["id"]
    assert api.get(f"/invoices/{unpaid['id']}").status_code == 404


def test_expand_customer(api: Api, customer: dict[str, object]) -> None:
    invoice = api.create("/invoices", {"customer": customer["id"], "items": [{"name": "A", "unit_cost": 1}]})
    expanded = api.ok(api.get(f"/invoices/{invoice['id']}", {"expand": "customer"}))
    assert expanded["customer"]["id"] == customer["id"]
    assert expanded["customer"]["object"] == "customer"
    listed = api.ok(api.get("/invoices", {"expand": "customer"}))
    assert listed[0]["customer"]["name"] == "Dunder Mifflin"


def test_unknown_customer_and_negative_totals(api: Api, customer: dict[str, object]) -> None:
    assert api.post("/invoices", {"items": []}).json() == {
        "type": "invalid_request",
        "message": "Customer is missing",
        "param": "customer",
    }
    assert api.post("/invoices", {"customer": 424242}).json()["message"] == "No such customer: 424242"
    negative = api.post(
        "/invoices",
        {"customer": customer["id"], "items": [{"name": "A", "unit_cost": 5}], "discounts": [{"amount": 6}]},
    )
    assert negative.json() == {"type": "invalid_request", "message": "Total is invalid", "param": "total"}


def test_credit_notes(api: Api, customer: dict[str, object]) -> None:
    draft = api.create(
        "/credit_notes",
        {"customer": customer["id"], "draft": True, "items": [{"name": "Refund", "unit_cost": 20}]},
    )
    assert (draft["object"], draft["status"], draft["number"], draft["balance"]) == (
        "credit_note",
        "draft",
        "CN-0001",
        20,
    )
    issued = api.ok(api.patch(f"/credit_notes/{draft['id']}", {"draft": False}))
    assert issued["status"] == "open"
    voided = api.ok(api.post(f"/credit_notes/{draft['id']}/void"))
    assert voided["status"] == "voided"


def test_estimate_approval_and_conversion(
    invoiced: InvoicedEmulator, api: Api, customer: dict[str, object]
) -> None:
    estimate = api.create(
        "/estimates",
        {
            "customer": customer["id"],
            "expiration_date": 4102444800,
            "payment_terms": "NET 30",
            "items": [{"name": "Project", "unit_cost": 1200}],
        },
    )
    assert (estimate["status"], estimate["number"], estimate["approved"], estimate["invoice"]) == (
        "not_sent",
        "EST-0001",
        None,
        None,
    )

    approved = _act(invoiced, "approve", "estimates", estimate["id"], {"approved": "Michael Scott"})
    assert (approved["status"], approved["approved"], approved["closed"]) == (
        "approved",
        "Michael Scott",
        True,
    )
    event = invoiced.control.events()[-1]
    assert event["type"] == "estimate.approved"
    assert event["data"]["previous"]["status"] == "not_sent"
    assert event["user"]["id"] == -1  # the customer approved it

    response = api.post(f"/estimates/{estimate['id']}/invoice")
    assert response.status_code == 201
    invoice = response.json()
    assert (invoice["object"], invoice["total"], invoice["payment_terms"]) == ("invoice", 1200, "NET 30")
    assert invoice["items"][0]["id"] != estimate["items"][0]["id"]
    converted = api.ok(api.get(f"/estimates/{estimate['id']}"))
    assert (converted["status"], converted["invoice"]) == ("invoiced", invoice["id"])
    refused = api.post(f"/estimates/{estimate['id']}/void")
    assert refused.json()["message"] == "This estimate cannot be voided because it has already been invoiced."


def test_dump_is_plain_json(invoiced: InvoicedEmulator, api: Api, customer: dict[str, object]) -> None:
    api.create("/invoices", {"customer": customer["id"], "items": [{"name": "A", "unit_cost": 2.5}]})
    dump = invoiced.control.dump()
    assert json.loads(json.dumps(dump)) == dump
    assert dump["invoices"][0]["total"] == 2.5
    assert [e["type"] for e in dump["events"]] == ["customer.created", "invoice.created"]


def test_catalog_items_and_plans(api: Api) -> None:
    item = api.create("/items", {"name": "Copy Paper, Case", "unit_cost": 45.5})
    assert (item["id"], item["object"], item["unit_cost"], item["currency"]) == (
        "copy-paper-case",
        "item",
        45.5,
        "usd",
    )
    assert api.ok(api.patch(f"/items/{item['id']}", {"unit_cost": 50}))["unit_cost"] == 50
    assert [i["id"] for i in api.ok(api.get("/items"))] == ["copy-paper-case"]
    assert api.delete(f"/items/{item['id']}").status_code == 204
    assert api.get(f"/items/{item['id']}").json()["message"] == "Item was not found: copy-paper-case"

    plan = api.create(
        "/plans", {"id": "pro", "name": "Pro", "amount": 99, "interval": "month", "interval_count": 3}
    )
    assert (plan["object"], plan["amount"], plan["interval_count"], plan["tiers"]) == ("plan", 99, 3, None)
    taken = api.post("/plans", {"id": "pro", "name": "Pro again", "amount": 1, "interval": "month"})
    assert taken.json() == {
        "type": "invalid_request",
        "message": "The given plan ID has already been taken: pro",
        "param": "id",
    }
    assert api.patch("/plans/pro", {"amount": 100}).status_code == 400
    assert api.ok(api.patch("/plans/pro", {"name": "Professional"}))["name"] == "Professional"
    bad_interval = api.post("/plans", {"name": "Odd", "amount": 1, "interval": "fortnight"})
    assert bad_interval.json()["message"] == "Interval must be one of the allowed values"
