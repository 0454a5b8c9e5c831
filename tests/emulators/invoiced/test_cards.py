"""Payment sources only from tokens, and card numbers refused everywhere, leaving no trace."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.invoiced import InvoicedEmulator
from local.invoiced.cards import contains_card_number
from tests.emulators.invoiced.conftest import Api, Receiver

PAN = "4111111111111111"
AMEX = "378282246310005"
CARD_FIELDS = {
    "id",
    "object",
    "brand",
    "last4",
    "exp_month",
    "exp_year",
    "funding",
    "chargeable",
    "gateway",
    "gateway_id",
    "gateway_customer",
    "merchant_account",
    "failure_reason",
    "receipt_email",
    "created_at",
    "updated_at",
}


@pytest.fixture
def customer(api: Api) -> dict[str, Any]:
    return api.create("/customers", {"name": "Acme"})


def test_a_card_from_a_token_exposes_only_safe_fields(
    invoiced: InvoicedEmulator, api: Api, customer: dict[str, Any]
) -> None:
    token = invoiced.control.tokenize_card(
        brand="MasterCard", last4="4444", exp_month=3, exp_year=2030, funding="debit"
    )
    response = api.post(
        f"/customers/{customer['id']}/payment_sources",
        {"method": "card", "gateway_token": token, "make_default": True},
    )
    assert response.status_code == 200
    card = response.json()
    assert set(card) == CARD_FIELDS
    assert (
        card["object"],
        card["brand"],
        card["last4"],
        card["exp_month"],
        card["exp_year"],
        card["funding"],
    ) == (
        "card",
        "MasterCard",
        "4444",
        3,
        2030,
        "debit",
    )
    assert api.ok(api.get(f"/customers/{customer['id']}"))["payment_source"]["id"] == card["id"]


def test_a_bank_account_from_a_token(invoiced: InvoicedEmulator, api: Api, customer: dict[str, Any]) -> None:
    token = invoiced.control.tokenize_bank_account(bank_name="Wells Fargo", last4="7890", verified=True)
    account = api.ok(
        api.post(f"/customers/{customer['id']}/payment_sources", {"method": "ach", "invoiced_token": token})
    )
    assert account == {
        "id": account["id"],
        "object": "bank_account",
        "bank_name": "Wells Fargo",
        "last4": "7890",
        "routing_number": "110000000",
        "verified": True,
        "updated_at": account["updated_at"],
        "currency": "usd",
    }
    assert api.delete(f"/customers/{customer['id']}/bank_accounts/{account['id']}").status_code == 204
    assert api.delete(f"/customers/{customer['id']}/cards/{account['id']}").status_code == 404


def test_tokens_are_single_use_and_checked(
    invoiced: InvoicedEmulator, api: Api, customer: dict[str, Any]
) -> None:
    path = f"/customers/{customer['id']}/payment_sources"
    token = invoiced.control.tokenize_card()
    assert api.post(path, {"method": "card", "gateway_token": token}).status_code == 200
    reused = api.post(path, {"method": "card", "gateway_token": token})
    assert reused.json() == {"type": "invalid_request", "message": f"No such token: {token}"}
    assert api.post(path, {"method": "card", "gateway_token": "tok_visa"}).status_code == 200
    assert api.post(path, {"method": "card", "gateway_token": "tok_visa"}).status_code == 200
    declined = api.post(path, {"method": "card", "gateway_token": "tok_chargeDeclined"})
    assert declined.json()["message"] == "Your card was declined."
    wrong_kind = api.post(path, {"method": "card", "gateway_token": "btok_us"})
    assert wrong_kind.json()["message"] == "The supplied token is not a card token."
    neither = api.post(path, {"method": "card"})
    assert (
        neither.json()["message"]
        == "Missing payment information. Either invoiced_token or gateway_token is required."
    )
    both = api.post(path, {"method": "card", "gateway_token": "tok_visa", "invoiced_token": "tok_visa"})
    assert both.status_code == 400


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/customers/{customer}/payment_sources", {"method": "card", "gateway_token": PAN}, "gateway_token"),
        (
            "/customers/{customer}/payment_sources",
            {"method": "card", "card": {"number": "4111 1111 1111 1111"}},
            "card[number]",
        ),
        ("/customers", {"name": "Acme", "metadata": {"card": "4111-1111-1111-1111"}}, "metadata[card]"),
        (
            "/invoices",
            {"customer": "{customer}", "items": [{"name": f"Card {PAN} on file"}]},
            "items[0][name]",
        ),
        (
            "/notes",
            {"customer_id": "{customer}", "notes": "Customer read out 3782 822463 10005 on the phone"},
            "notes",
        ),
        ("/customers", {"name": "Acme", "phone": 4111111111111111}, "phone"),
    ],
)
def test_card_numbers_are_refused_in_any_field(
    invoiced: InvoicedEmulator,
    api: Api,
    receiver: Receiver,
    customer: dict[str, Any],
    path: str,
    body: dict[str, Any],
    param: str,
) -> None:
    invoiced.control.add_webhook(receiver.url)
    events_before = invoiced.control.events()
    body = json.loads(json.dumps(body).replace('"{customer}"', str(customer["id"])))

    response = api.post(path.format(customer=customer["id"]), body)

    assert response.status_code == 400
    error = response.json()
    assert (error["type"], error["param"]) == ("invalid_request", param)
    assert "Tokenize the card" in error["message"]
    assert invoiced.control.events() == events_before
    invoiced.control.wait_for_deliveries()
    traces = json.dumps(
        [invoiced.control.dump(), invoiced.control.requests(), invoiced.control.deliveries(), response.text]
    )
    squashed = traces.replace(" ", "").replace("-", "")
    assert PAN not in squashed
    assert AMEX not in squashed


def test_card_numbers_are_refused_in_queries_and_paths(api: Api) -> None:
    assert api.get("/customers", {"filter[name]": PAN}).json()["param"] == "filter[name]"
    in_path = api.get(f"/customers/{PAN}")
    assert in_path.status_code == 400
    assert PAN not in in_path.text


def test_seeding_and_acting_refuse_card_numbers_too(invoiced: InvoicedEmulator) -> None:
    with pytest.raises(Exception, match="Card numbers"):
        invoiced.control.seed({"customers": [{"name": "Acme", "notes": PAN}]})
    with pytest.raises(Exception, match="Card numbers"):
        invoiced.control.act("create", "customers", data={"name": "Acme", "notes": PAN})
    assert invoiced.control.dump(resources=["customers"]) == {"customers": []}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4111111111111111", True),
        ("4111 1111 1111 1111", True),
        ("4111-1111-1111-1111", True),
        ("Call 555 4242 4242 4242 4242 today", True),
        ("3782 822463 10005", True),  # 15-digit Amex
        ("4111111111111112", False),  # fails Luhn
        ("411111111111", False),  # 12 digits
        ("41111111111111111111111", False),  # a 23-digit reference, not a card
        ("INV-0042 for 1,200.00 on 1700000000", False),
        ("006XX000004C1AbQAK", False),
    ],
)
def test_card_number_detection(text: str, expected: bool) -> None:
    assert contains_card_number(text) is expected
