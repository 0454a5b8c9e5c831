"""SOQL is built only with proper quoting: no value can change a query."""

from __future__ import annotations

from datetime import UTC, datetime

from billsync.usecases.salesforce_reads import (
    parse_sf_datetime,
    soql_datetime,
    soql_string,
    split_external_id,
)
from hypothesis import given
from hypothesis import strategies as st

from local.salesforce import soql
from local.salesforce.soql_syntax import Comparison, Junction


@given(st.text())
def test_any_string_value_stays_one_literal_with_exactly_its_value(value: str) -> None:
    # The emulator's parser follows Salesforce's grammar: the quoted value must parse back to itself
    # and the query must keep its shape (one AND of two comparisons).
    query = f"SELECT Id FROM Account WHERE Name = {soql_string(value)} AND Id != null"
    where = soql.parse(query).select.where
    assert isinstance(where, Junction) and where.op == "AND" and len(where.operands) == 2
    first, second = where.operands
    assert isinstance(first, Comparison) and isinstance(second, Comparison)
    assert first.path.text == "Name" and first.op == "="
    assert [v.kind for v in first.values] == ["string"]
    assert first.values[0].value == value
    assert second.path.text == "Id" and second.values[0].kind == "null"


def test_hostile_names_are_escaped() -> None:
    for value in [
        "O'Brien",
        "back\\slash",
        "100% off",
        "under_score",
        "new\nline",
        'quote"d',
        "' OR Name != '",
    ]:
        literal = soql_string(value)
        assert literal.startswith("'") and literal.endswith("'")
        assert "\n" not in literal


def test_datetimes_round_trip_in_salesforce_formats() -> None:
    moment = datetime(2024, 3, 1, 10, 0, 5, 123000, tzinfo=UTC)
    assert soql_datetime(moment) == "2024-03-01T10:00:05.123Z"
    assert parse_sf_datetime("2024-03-01T10:00:05.123+0000") == moment
    assert parse_sf_datetime("2024-03-01T10:00:05.123Z") == moment
    assert parse_sf_datetime("2024-03-01T12:00:05.123+02:00") == moment


def test_external_ids_split_only_for_their_own_source() -> None:
    assert split_external_id("main:3100", "main") == "3100"
    assert split_external_id("eu:3100", "main") is None
    assert split_external_id("3100", "main") is None
    assert split_external_id(None, "main") is None
