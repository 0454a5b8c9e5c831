"""Card numbers are masked in every error message, dead letter and sync-log entry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from billsync.domain.models import Change, DeadLetter, Direction, ErrorInfo, Outcome, SyncLogEntry
from billsync.domain.redaction import redact_card_numbers
from hypothesis import given
from hypothesis import strategies as st

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111111",
        "Name: data value too large: card 5555555555554444 ok",
        "amex 378282246310005.",
        "spaced 4012 8888 8888 1881 end",
        "dashed 4012-8888-8888-1881",
    ],
)
def test_card_numbers_are_removed(text: str) -> None:
    redacted = redact_card_numbers(text)
    assert "[card …" in redacted
    digits = "".join(ch for ch in text if ch.isdigit())
    assert digits not in "".join(ch for ch in redacted if ch.isdigit())


@pytest.mark.parametrize(
    "text",
    [
        "invoice 4111111111111112 (fails the Luhn check)",
        "phone 555-0100, order 123456789012 (12 digits)",
        "2026-12-03T10:00:00.000Z",
        "a 20-digit reference 41111111111111111111 is not a card number",
    ],
)
def test_other_numbers_stay(text: str) -> None:
    assert redact_card_numbers(text) == text


@given(st.text())
def test_redaction_is_idempotent_and_leaves_no_valid_card_number(text: str) -> None:
    once = redact_card_numbers(text)
    assert redact_card_numbers(once) == once


def test_errors_and_log_entries_never_hold_card_numbers() -> None:
    error = ErrorInfo(code="STRING_TOO_LONG", message="Notes: data value too large: 4111111111111111")
    assert "4111111111111111" not in error.message
    entry = SyncLogEntry(
        at=NOW,
        source="main",
        object="invoice",
        direction=Direction.TO_SALESFORCE,
        record_id="1",
        outcome=Outcome.FAILED,
        message="card 4111 1111 1111 1111",
    )
    assert entry.message == "card [card …1111]"


def test_a_dead_letter_keeps_the_change_reference_and_drops_the_record() -> None:
    change = Change(
        source="main",
        object="customer",
        direction=Direction.TO_BILLING,
        id="001000000000001AAA",
        record={"Name": "Card 4111111111111111 Holder"},
        cause="pull",
    )
    letter = DeadLetter(
        change=change, error=ErrorInfo(code="X", message="refused"), attempts=1, failed_at=NOW
    )
    assert letter.change.record is None
    assert letter.change.key == change.key
    assert "4111111111111111" not in letter.model_dump_json()
