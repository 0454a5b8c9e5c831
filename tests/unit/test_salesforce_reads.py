"""SOQL is built only with proper quoting: no value can change a query."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from billsync.domain.models import Direction
from billsync.domain.rules import Window
from billsync.usecases.salesforce_reads import (
    SalesforceReads,
    parse_sf_datetime,
    soql_datetime,
    soql_string,
    split_external_id,
)
from hypothesis import given
from hypothesis import strategies as st

from local.salesforce import soql
from local.salesforce.soql_syntax import Comparison, Junction, Not

HOSTILE_NAMES = [
    "O'Brien",
    "back\\slash",
    "trailing backslash\\",
    "100% off",
    "under_score",
    "%",
    "_",
    "new\nline",
    "carriage\rreturn\ttab",
    'quote"d',
    "' OR Name != '",
    "\\' OR Id != null OR Name = '",
    "x') OR (Name LIKE '%",
]


def assert_one_literal(value: str) -> None:
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


@given(st.text())
def test_any_string_value_stays_one_literal_with_exactly_its_value(value: str) -> None:
    assert_one_literal(value)


@pytest.mark.parametrize("value", HOSTILE_NAMES)
def test_hostile_names_cannot_change_a_query(value: str) -> None:
    assert_one_literal(value)
    literal = soql_string(value)
    assert literal.startswith("'") and literal.endswith("'")
    assert "\n" not in literal and "\r" not in literal


def test_hostile_ids_and_positions_stay_literals_in_pull_and_id_queries() -> None:
    reads = SalesforceReads(*_account_mappings())
    for value in HOSTILE_NAMES:
        window = Window(start=datetime(2024, 1, 1, tzinfo=UTC), end=datetime(2024, 1, 2, tzinfo=UTC))
        query = reads.pull_query(
            window, source_key="main", default_source=True, after=f"2024-01-01T00:00:00Z|{value}"
        )
        parsed = soql.parse(query)
        assert parsed.select.sobject == "Account"
        assert value in _string_values(parsed.select.where)
        by_ids = soql.parse(reads.by_ids([value, "001000000000001AAA"]))
        assert _string_values(by_ids.select.where) == [value, "001000000000001AAA"]


def _string_values(node: object) -> list[str]:
    if isinstance(node, Junction):
        return [v for operand in node.operands for v in _string_values(operand)]
    if isinstance(node, Not):
        return _string_values(node.operand)
    if isinstance(node, Comparison):
        return [v.value for v in node.values if v.kind == "string"]
    return []


def _account_mappings():  # type: ignore[no-untyped-def]
    from billsync.mappings import MappingSet

    registry = MappingSet()
    return (
        registry.require("invoiced", "customer", Direction.TO_BILLING),
        registry.get("invoiced", "customer", Direction.TO_SALESFORCE),
    )


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
