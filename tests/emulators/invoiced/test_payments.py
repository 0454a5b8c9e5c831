"""Recording payments: applications move balances, flip paid status, and voiding reverses them."""

from __future__ import annotations

from typing import Any

import pytest

from local.invoiced import InvoicedEmulator
from tests.emulators.invoiced.conftest import Api


@pytest.fixture
def setup(api: Api) -> dict[str, Any]:
    customer = api.create("/customers", {"name": "Acme"})
    first = api.create("/invoices", {"customer": customer["id"], "items": [{"name": "A", "unit_cost": 120}]})
    second = api.create("/invoices", {"customer": customer["id"], "items": [{"name": "B", "unit_cost": 80}]})
    return {"customer": customer, "first": first, "second": second}


def _invoice(api: Api, invoice_id: int) -> dict[str, Any]:
    result: dict[str, Any] = api.ok(api.get(f"/invoices/{invoice_id}"))
    return result


def test_partial_then_full_payment(invoiced: InvoicedEmulator, api: Api, setup: dict[str, Any]) -> None:
    customer, first = setup["customer"], setup["first"]
    partial = api.create(
        "/payments",
        {
            "customer": customer["id"],
            "amount": 150,
            "method": "check",
            "reference": "1042",
            "applied_to": [{"type": "invoice", "invoice": first["id"], "amount": 100}],
        },
    )
    assert (partial["amount"], partial["balance"], partial["currency"]) == (150, 50, "usd")
    assert "applied_to" not in partial
    invoice = _invoice(api, first["id"])
    assert (invoice["balance"], invoice["status"], invoice["paid"]) == (20, "not_sent", False)

    api.create(
        "/payments",
        {
            "customer": customer["id"],
            "amount": 20,
            "applied_to": [{"type": "invoice", "invoice": first["id"], "amount": 20}],
        },
    )
    invoice = _invoice(api, first["id"])
    assert (invoice["balance"], invoice["status"], invoice["paid"], invoice["closed"]) == (
        0,
        "paid",
        True,
        True,
    )

    invoice_events = [e for e in invoiced.control.events() if e["data"]["object"].get("id") == first["id"]]
    assert [e["type"] for e in invoice_events] == ["invoice.created", "invoice.updated", "invoice.paid"]
    assert invoice_events[1]["data"]["previous"]["balance"] == 120
    previous = dict(invoice_events[2]["data"]["previous"])
    previous.pop("updated_at", None)  # present when the payment landed in a later second
    assert previous == {
        "balance": 20,
        "paid": False,
        "closed": False,
        "status": "not_sent",
        "payment_url": invoice_events[1]["data"]["object"]["payment_url"],
    }
    assert (
        invoice_events[2]["data"]["object"]["customer"]["id"] == customer["id"]
    )  # events expand the customer


def test_applied_to_is_only_returned_when_included(api: Api, setup: dict[str, Any]) -> None:
    payment = api.create(
        "/payments",
        {
            "customer": setup["customer"]["id"],
            "amount": 200,
            "applied_to": [
                {"type": "invoice", "invoice": setup["first"]["id"], "amount": 120},
                {"type": "invoice", "invoice": setup["second"]["id"], "amount": 80},
            ],
        },
    )
    plain = api.ok(api.get(f"/payments/{payment['id']}"))
    assert "applied_to" not in plain
    included = api.ok(api.get(f"/payments/{payment['id']}", {"include": "applied_to"}))
    applied = included["applied_to"]
    assert [(a["type"], a["invoice"], a["amount"]) for a in applied] == [
        ("invoice", setup["first"]["id"], 120),
        ("invoice", setup["second"]["id"], 80),
    ]
    assert all(isinstance(a["id"], int) for a in applied)
    assert included["balance"] == 0
    assert included["pdf_url"] is not None
    listed = api.ok(api.get("/payments", {"include": "applied_to"}))
    assert listed[0]["applied_to"] == applied


@pytest.mark.parametrize(
    ("applied_to", "message"),
    [
        (
            [
                {"type": "invoice", "invoice": "@first", "amount": 130},
                {"type": "invoice", "invoice": "@second", "amount": 80},
            ],
            "Total amount applied ($210.00) cannot exceed the payment amount ($200.00)",
        ),
        ([{"invoice": "@first", "amount": 10}], "Must provide a type for each transaction."),
        ([{"type": "gift", "amount": 10}], "Unrecognized split type: gift"),
        ([{"type": "invoice", "invoice": "@first"}], "Must provide an amount for each transaction."),
        (
            [{"type": "invoice", "invoice": "@first", "amount": 0}],
            "Amount applied to document must be greater than 0. Provided: $0.00",
        ),
        ([{"type": "invoice", "invoice": 999999, "amount": 5}], "Could not find invoice: 999999"),
        (
            [
                {"type": "invoice", "invoice": "@first", "amount": 5},
                {"type": "invoice", "invoice": "@first", "amount": 5},
            ],
            "Each document can only be applied once per payment. Detected duplicate (invoice:@first)",
        ),
        (
            [{"type": "credit", "invoice": "@first", "amount": 5}],
            "Cannot supply invoice ID to non-invoice splits.",
        ),
    ],
)
def test_invalid_applications_change_nothing(
    invoiced: InvoicedEmulator,
    api: Api,
    setup: dict[str, Any],
    applied_to: list[dict[str, Any]],
    message: str,
) -> None:
    ids = {"@first": setup["first"]["id"], "@second": setup["second"]["id"]}
    splits = [{k: ids.get(v, v) if isinstance(v, str) else v for k, v in s.items()} for s in applied_to]
    events_before = len(invoiced.control.events())

    response = api.post(
        "/payments", {"customer": setup["customer"]["id"], "amount": 200, "applied_to": splits}
    )

    for name, value in ids.items():
        message = message.replace(name, str(value))
    assert response.status_code == 400
    assert response.json() == {
        "type": "invalid_request",
        "message": f"An error occurred while trying to apply payment: {message}",
        "param": "applied_to",
    }
    assert api.ok(api.get("/payments")) == []
    assert _invoice(api, setup["first"]["id"])["balance"] == 120
    assert len(invoiced.control.events()) == events_before


def test_payment_amount_is_required_and_not_negative(api: Api) -> None:
    assert api.post("/payments", {"currency": "usd"}).json() == {
        "type": "invalid_request",
        "message": "The required option 'amount' is missing.",
        "param": "request",
    }
    assert api.post("/payments", {"amount": -1}).json()["message"] == "The amount cannot be less than 0."


def test_the_customer_comes_from_the_document_and_must_match(api: Api, setup: dict[str, Any]) -> None:
    payment = api.create(
        "/payments",
        {"amount": 120, "applied_to": [{"type": "invoice", "invoice": setup["first"]["id"], "amount": 120}]},
    )
    assert payment["customer"] == setup["customer"]["id"]

    stranger = api.create("/customers", {"name": "Stranger"})
    response = api.post(
        "/payments",
        {
            "customer": stranger["id"],
            "amount": 80,
            "applied_to": [{"type": "invoice", "invoice": setup["second"]["id"], "amount": 80}],
        },
    )
    assert response.json()["message"] == (
        "An error occurred while trying to apply payment: The invoice provided (INV-0002) does not belong to the "
        "customer that was selected to apply payments for: CUST-0002"
    )
    euro = api.post(
        "/payments",
        {
            "currency": "eur",
            "amount": 80,
            "applied_to": [{"type": "invoice", "invoice": setup["second"]["id"], "amount": 80}],
        },
    )
    assert euro.json()["message"].endswith(
        "The currency of invoice INV-0002 (usd) does not match the payment currency (eur)"
    )


def test_voiding_reverses_the_applications(
    invoiced: InvoicedEmulator, api: Api, setup: dict[str, Any]
) -> None:
    first = setup["first"]
    payment = api.create(
        "/payments",
        {"amount": 120, "applied_to": [{"type": "invoice", "invoice": first["id"], "amount": 120}]},
    )
    assert _invoice(api, first["id"])["status"] == "paid"

    voided = api.delete(f"/payments/{payment['id']}")
    assert voided.status_code == 200
    body = voided.json()
    assert (body["voided"], body["balance"], body["amount"]) == (True, 120, 120)
    invoice = _invoice(api, first["id"])
    assert (invoice["balance"], invoice["status"], invoice["paid"], invoice["closed"]) == (
        120,
        "not_sent",
        False,
        False,
    )
    assert api.ok(api.get(f"/payments/{payment['id']}", {"include": "applied_to"}))["applied_to"] == []

    last_two = invoiced.control.events()[-2:]
    assert [e["type"] for e in last_two] == ["invoice.updated", "payment.deleted"]
    assert last_two[0]["data"]["previous"]["status"] == "paid"
    assert last_two[1]["data"]["object"]["voided"] is True

    again = api.delete(f"/payments/{payment['id']}")
    assert again.json() == {"type": "invalid_request", "message": "This payment has already been voided."}
    edit = api.patch(f"/payments/{payment['id']}", {"notes": "x"})
    assert edit.json() == {
        "type": "invalid_request",
        "message": "The payment is voided and cannot be edited.",
        "param": "voided",
    }
    assert api.ok(api.post(f"/invoices/{first['id']}/void"))["status"] == "voided"


def test_updating_applications_moves_balances(
    invoiced: InvoicedEmulator, api: Api, setup: dict[str, Any]
) -> None:
    first, second = setup["first"], setup["second"]
    payment = api.create(
        "/payments",
        {"amount": 120, "applied_to": [{"type": "invoice", "invoice": first["id"], "amount": 120}]},
    )
    applied_before = api.ok(api.get(f"/payments/{payment['id']}", {"include": "applied_to"}))["applied_to"]

    updated = api.ok(
        api.patch(
            f"/payments/{payment['id']}",
            {
                "applied_to": [
                    {"type": "invoice", "invoice": first["id"], "amount": 40},
                    {"type": "invoice", "invoice": second["id"], "amount": 80},
                ]
            },
        )
    )
    assert updated["balance"] == 0
    assert (_invoice(api, first["id"])["balance"], _invoice(api, second["id"])["balance"]) == (80, 0)
    applied = api.ok(api.get(f"/payments/{payment['id']}", {"include": "applied_to"}))["applied_to"]
    assert applied[0]["id"] == applied_before[0]["id"]  # the same application, a new amount
    types = [e["type"] for e in invoiced.control.events()[-3:]]
    assert types == ["payment.updated", "invoice.updated", "invoice.paid"]

    raised = api.ok(api.patch(f"/payments/{payment['id']}", {"amount": 150}))
    assert raised["balance"] == 30
    lowered = api.patch(f"/payments/{payment['id']}", {"amount": 100})
    assert lowered.json() == {
        "type": "invalid_request",
        "message": "The amount cannot cause the balance to go below 0.",
        "param": "amount",
    }


def test_credit_notes_applied_to_invoices(
    invoiced: InvoicedEmulator, api: Api, setup: dict[str, Any]
) -> None:
    note = api.create(
        "/credit_notes", {"customer": setup["customer"]["id"], "items": [{"name": "Credit", "unit_cost": 50}]}
    )
    payment = api.create(
        "/payments",
        {
            "amount": 0,
            "customer": setup["customer"]["id"],
            "applied_to": [
                {
                    "type": "credit_note",
                    "credit_note": note["id"],
                    "document_type": "invoice",
                    "invoice": setup["second"]["id"],
                    "amount": 50,
                }
            ],
        },
    )
    assert payment["balance"] == 0
    assert _invoice(api, setup["second"]["id"])["balance"] == 30
    credit_note = api.ok(api.get(f"/credit_notes/{note['id']}"))
    assert (credit_note["balance"], credit_note["status"], credit_note["paid"]) == (0, "paid", True)
    assert api.post(f"/credit_notes/{note['id']}/void").json()["message"] == (
        "This credit note cannot be voided because it has been applied."
    )
    overdrawn = api.post(
        "/payments",
        {
            "amount": 0,
            "customer": setup["customer"]["id"],
            "applied_to": [
                {
                    "type": "credit_note",
                    "credit_note": note["id"],
                    "document_type": "invoice",
                    "invoice": setup["first"]["id"],
                    "amount": 1,
                }
            ],
        },
    )
    assert overdrawn.status_code == 400


def test_customer_credit_balance(api: Api, setup: dict[str, Any]) -> None:
    customer_id = setup["customer"]["id"]
    api.create(
        "/payments", {"customer": customer_id, "amount": 30, "applied_to": [{"type": "credit", "amount": 30}]}
    )
    assert api.ok(api.get(f"/customers/{customer_id}/balance"))["available_credits"] == 30
    api.create(
        "/payments",
        {
            "customer": customer_id,
            "amount": 0,
            "applied_to": [
                {
                    "type": "applied_credit",
                    "document_type": "invoice",
                    "invoice": setup["first"]["id"],
                    "amount": 30,
                }
            ],
        },
    )
    balance = api.ok(api.get(f"/customers/{customer_id}/balance"))
    assert (balance["available_credits"], balance["total_outstanding"], balance["currency"]) == (
        0,
        170,
        "usd",
    )
    overspent = api.post(
        "/payments",
        {
            "customer": customer_id,
            "amount": 0,
            "applied_to": [
                {
                    "type": "applied_credit",
                    "document_type": "invoice",
                    "invoice": setup["first"]["id"],
                    "amount": 1,
                }
            ],
        },
    )
    assert "credit balance to become -$1.00" in overspent.json()["message"]


def test_estimate_deposits(api: Api, setup: dict[str, Any]) -> None:
    estimate = api.create(
        "/estimates",
        {
            "customer": setup["customer"]["id"],
            "deposit": 100,
            "items": [{"name": "Project", "unit_cost": 1000}],
        },
    )
    api.create(
        "/payments",
        {"amount": 100, "applied_to": [{"type": "estimate", "estimate": estimate["id"], "amount": 100}]},
    )
    assert api.ok(api.get(f"/estimates/{estimate['id']}"))["deposit_paid"] is True


def test_unknown_payment_options_are_refused(api: Api) -> None:
    response = api.post("/payments", {"amount": 10, "matched": True})
    assert response.status_code == 400
    body = response.json()
    assert body["param"] == "request"
    assert body["message"].startswith(
        "The option 'matched' does not exist. Defined options are: 'accounting_id', "
    )
