"""Masking secrets and payment data: keys that name secrets, card numbers, tokens in free text."""

from __future__ import annotations

import pytest
from billsync.domain.redaction import MASK, is_secret_key, luhn_valid, redact, redact_text

VISA = "4111111111111111"  # a test card number: passes Luhn
AMEX = "378282246310005"


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "gateway_token",
        "Gateway_Token__c",
        "access_token",
        "secret",
        "webhook_secrets",
        "consumer_secret",
        "password",
        "api_key",
        "X-Api-Key",
        "apiKey",
        "Authorization",
        "x-invoiced-signature",
        "session_id",
        "private_key",
        "cvv",
        "card_number",
        "Account_Number__c",
        "iban",
        "pan",
    ],
)
def test_keys_that_name_a_secret_are_recognised(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["name", "author", "last4", "number", "customer", "amount", "status"])
def test_ordinary_keys_are_not(key: str) -> None:
    assert not is_secret_key(key)


def test_the_values_of_secret_keys_are_masked_at_any_depth_whatever_their_type() -> None:
    value = {
        "id": 7,
        "api_key": "sk_live_abc",
        "nested": {"payment_source": {"gateway_token": "tok_123", "brand": "Visa"}, "pin": 1234},
        "list": [{"password": "hunter2"}, {"name": "ok"}],
        "token": None,
    }
    assert redact(value) == {
        "id": 7,
        "api_key": MASK,
        "nested": {"payment_source": {"gateway_token": MASK, "brand": "Visa"}, "pin": MASK},
        "list": [{"password": MASK}, {"name": "ok"}],
        "token": None,  # nothing to hide: an absent value stays visible as absent
    }


def test_the_input_is_not_changed() -> None:
    value = {"secret": "s", "items": [VISA]}
    redact(value)
    assert value == {"secret": "s", "items": [VISA]}


@pytest.mark.parametrize(
    "number",
    [VISA, AMEX, "4111 1111 1111 1111", "4111-1111-1111-1111", "5555555555554444", "6011111111111117"],
)
def test_card_numbers_are_masked_keeping_the_last_four_digits(number: str) -> None:
    assert redact_text(f"card {number} declined") == f"card [card …{number[-4:]}] declined"


def test_a_card_number_given_as_a_number_is_masked() -> None:
    assert redact({"n": int(VISA)}) == {"n": "[card …1111]"}


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # fails Luhn
        "invoice 1234567",  # too short
        "12345678901234567890123",  # too long to be a card
        "2024-03-01T10:00:00Z",
        "phone 555-0111",
        "unix time 1700000000",
    ],
)
def test_other_numbers_are_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_tokens_inside_free_text_are_masked() -> None:
    text = 'POST failed: Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def; api_key=sk_live_123&x=1 "password": "pw"'
    masked = redact_text(text)
    assert "eyJhbGci" not in masked
    assert "sk_live_123" not in masked
    assert '"pw"' not in masked
    assert "x=1" in masked


def test_luhn() -> None:
    assert luhn_valid(VISA)
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_a_long_text_is_masked_in_one_pass() -> None:
    text = "retry with api_key=sk_live_51Hx9Qa7 " + "N" * 200_000 + " token: abc123"
    masked = redact_text(text)
    assert "sk_live_51Hx9Qa7" not in masked and "abc123" not in masked
    assert masked.startswith("retry with api_key=[masked] NNN")


def test_an_error_message_about_a_secret_field_stays_readable() -> None:
    assert redact_text("gateway_token: looks like a full card number") == (
        "gateway_token: looks like a full card number"
    )
    assert redact_text("No such token: tok_4f9a0c2e") == "No such token: [masked]"
