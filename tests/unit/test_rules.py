"""Pure rules: ownership, staleness, error meaning, pull windows, backoff."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from billsync.domain.models import Side
from billsync.domain.rules import (
    PARENT_NOT_FOUND,
    Ownership,
    backoff_seconds,
    classify_salesforce_error,
    fields_from_billing,
    infer_origin,
    is_stale,
    owner_of,
    pull_window,
)

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def test_origin_wins_gives_the_content_to_the_system_that_created_the_record() -> None:
    assert owner_of(Ownership.ORIGIN, Side.BILLING) is Side.BILLING
    assert owner_of(Ownership.ORIGIN, Side.SALESFORCE) is Side.SALESFORCE
    assert owner_of(Ownership.BILLING, Side.SALESFORCE) is Side.BILLING
    assert owner_of(Ownership.SALESFORCE, Side.BILLING) is Side.SALESFORCE


def test_billing_changes_of_salesforce_records_write_only_billing_facts() -> None:
    assert fields_from_billing(Ownership.ORIGIN, Side.BILLING) == "all"
    assert fields_from_billing(Ownership.ORIGIN, Side.SALESFORCE) == "billing"
    assert fields_from_billing(Ownership.BILLING, Side.SALESFORCE) == "all"


def test_origin_is_inferred_from_what_each_side_remembers() -> None:
    assert infer_origin(Side.BILLING) is Side.BILLING
    assert infer_origin(Side.BILLING, billing_remembers_salesforce_id=True) is Side.SALESFORCE
    assert infer_origin(Side.SALESFORCE) is Side.SALESFORCE
    assert infer_origin(Side.SALESFORCE, salesforce_says_billing=True) is Side.BILLING
    assert infer_origin(Side.SALESFORCE, linked=True) is Side.BILLING


def test_only_strictly_older_versions_are_stale() -> None:
    assert is_stale(T0, T0 + timedelta(seconds=1))
    assert not is_stale(T0, T0)
    assert not is_stale(T0 + timedelta(seconds=1), T0)
    assert not is_stale(T0, None)
    assert not is_stale(None, T0)


def test_a_missing_parent_by_external_id_means_wait_not_fail() -> None:
    error = classify_salesforce_error(
        "INVALID_FIELD",
        "Foreign key external ID: main:3100 not found for field Billing_Id__c in entity Account",
        ("Account__r",),
    )
    assert error.code == PARENT_NOT_FOUND
    assert error.retryable
    assert "Account with Billing_Id__c = main:3100" in error.message


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        ("UNABLE_TO_LOCK_ROW", True),
        ("SERVER_UNAVAILABLE", True),
        ("STRING_TOO_LONG", False),
        ("INVALID_FIELD", False),
        ("REQUIRED_FIELD_MISSING", False),
        ("DUPLICATE_VALUE", False),
    ],
)
def test_salesforce_codes_are_classified(code: str, retryable: bool) -> None:
    assert classify_salesforce_error(code, "whatever").retryable is retryable


def test_the_pull_window_stops_short_of_now_and_looks_back_over_the_cursor() -> None:
    window = pull_window(
        T0, T0 + timedelta(minutes=5), lookback=timedelta(seconds=60), safety_lag=timedelta(seconds=5)
    )
    assert window is not None
    assert window.start == T0 - timedelta(seconds=60)
    assert window.end == T0 + timedelta(minutes=5) - timedelta(seconds=5)


def test_a_first_pull_reads_from_the_configured_start_or_everything() -> None:
    window = pull_window(None, T0, lookback=timedelta(0), safety_lag=timedelta(0))
    assert window is not None and window.start is None
    since = T0 - timedelta(days=3)
    window = pull_window(None, T0, lookback=timedelta(0), safety_lag=timedelta(0), initial_since=since)
    assert window is not None and window.start == since


def test_no_window_when_the_cursor_is_already_at_the_signpost() -> None:
    assert pull_window(T0, T0, lookback=timedelta(0), safety_lag=timedelta(0)) is None


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(7)
    first = [backoff_seconds(1, base=30, cap=900, rng=rng) for _ in range(50)]
    late = [backoff_seconds(10, base=30, cap=900, rng=rng) for _ in range(50)]
    assert all(15 <= s <= 30 for s in first)
    assert all(450 <= s <= 900 for s in late)
