"""Relative date literals against date and dateTime fields, evaluated in UTC at a fixed "now"."""

# Building query text from values is what these tests exercise.

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from local.salesforce.soql import SoqlError, execute, parse
from tests.emulators.salesforce.soql.fakes import FakeData, FakeField, FakeObject, FakeSchema, make_id

#: Wednesday 2024-03-13 15:45 UTC (weeks start on Sunday 2024-03-10; Q1 2024; a leap year).
NOW = datetime(2024, 3, 13, 15, 45, tzinfo=UTC)

# Hand-computed ranges [start, end) at NOW.
DAY_RANGES: dict[str, tuple[date, date]] = {
    "TODAY": (date(2024, 3, 13), date(2024, 3, 14)),
    "YESTERDAY": (date(2024, 3, 12), date(2024, 3, 13)),
    "TOMORROW": (date(2024, 3, 14), date(2024, 3, 15)),
    "THIS_WEEK": (date(2024, 3, 10), date(2024, 3, 17)),
    "LAST_WEEK": (date(2024, 3, 3), date(2024, 3, 10)),
    "NEXT_WEEK": (date(2024, 3, 17), date(2024, 3, 24)),
    "THIS_MONTH": (date(2024, 3, 1), date(2024, 4, 1)),
    "LAST_MONTH": (date(2024, 2, 1), date(2024, 3, 1)),
    "NEXT_MONTH": (date(2024, 4, 1), date(2024, 5, 1)),
    "LAST_90_DAYS": (date(2023, 12, 14), date(2024, 3, 14)),
    "NEXT_90_DAYS": (date(2024, 3, 14), date(2024, 6, 12)),
    "THIS_QUARTER": (date(2024, 1, 1), date(2024, 4, 1)),
    "LAST_QUARTER": (date(2023, 10, 1), date(2024, 1, 1)),
    "NEXT_QUARTER": (date(2024, 4, 1), date(2024, 7, 1)),
    "THIS_YEAR": (date(2024, 1, 1), date(2025, 1, 1)),
    "LAST_YEAR": (date(2023, 1, 1), date(2024, 1, 1)),
    "NEXT_YEAR": (date(2025, 1, 1), date(2026, 1, 1)),
    "LAST_N_DAYS:1": (date(2024, 3, 12), date(2024, 3, 14)),
    "LAST_N_DAYS:7": (date(2024, 3, 6), date(2024, 3, 14)),
    "NEXT_N_DAYS:7": (date(2024, 3, 14), date(2024, 3, 21)),
    "N_DAYS_AGO:3": (date(2024, 3, 10), date(2024, 3, 11)),
    "N_DAYS_AGO:0": (date(2024, 3, 13), date(2024, 3, 14)),
    "LAST_N_WEEKS:2": (date(2024, 2, 25), date(2024, 3, 10)),
    "NEXT_N_WEEKS:1": (date(2024, 3, 17), date(2024, 3, 24)),
    "N_WEEKS_AGO:1": (date(2024, 3, 3), date(2024, 3, 10)),
    "LAST_N_MONTHS:2": (date(2024, 1, 1), date(2024, 3, 1)),
    "NEXT_N_MONTHS:2": (date(2024, 4, 1), date(2024, 6, 1)),
    "N_MONTHS_AGO:3": (date(2023, 12, 1), date(2024, 1, 1)),
    "LAST_N_QUARTERS:1": (date(2023, 10, 1), date(2024, 1, 1)),
    "NEXT_N_QUARTERS:2": (date(2024, 4, 1), date(2024, 10, 1)),
    "N_QUARTERS_AGO:2": (date(2023, 7, 1), date(2023, 10, 1)),
    "LAST_N_YEARS:2": (date(2022, 1, 1), date(2024, 1, 1)),
    "NEXT_N_YEARS:1": (date(2025, 1, 1), date(2026, 1, 1)),
    "N_YEARS_AGO:1": (date(2023, 1, 1), date(2024, 1, 1)),
}
HOUR_RANGES: dict[str, tuple[datetime, datetime]] = {
    "LAST_N_HOURS:2": (datetime(2024, 3, 13, 13, tzinfo=UTC), datetime(2024, 3, 13, 16, tzinfo=UTC)),
    "NEXT_N_HOURS:3": (datetime(2024, 3, 13, 16, tzinfo=UTC), datetime(2024, 3, 13, 19, tzinfo=UTC)),
}
OPS: dict[str, Callable[[object, object, object], bool]] = {
    "=": lambda v, start, end: start <= v < end,  # type: ignore[operator]
    "!=": lambda v, start, end: not start <= v < end,  # type: ignore[operator]
    "<": lambda v, start, end: v < start,  # type: ignore[operator]
    "<=": lambda v, start, end: v < end,  # type: ignore[operator]
    ">": lambda v, start, end: v >= end,  # type: ignore[operator]
    ">=": lambda v, start, end: v >= start,  # type: ignore[operator]
}

FIRST_DAY = date(2021, 12, 1)
DAYS = 1600  # through 2026-04


def _schema() -> FakeSchema:
    return FakeSchema(
        [
            FakeObject(
                "Event__c",
                [
                    FakeField("Id", "id"),
                    FakeField("IsDeleted", "boolean"),
                    FakeField("Day__c", "date"),
                    FakeField("At__c", "datetime"),
                ],
            )
        ]
    )


def _records() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    number = 0
    for offset in range(DAYS):
        day = FIRST_DAY + timedelta(days=offset)
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        moments = [midnight, midnight + timedelta(hours=23, minutes=59, seconds=59, microseconds=999999)]
        if day == NOW.date():
            moments += [midnight + timedelta(hours=hour, minutes=30) for hour in range(24)]
        for moment in moments:
            number += 1
            rows.append({"Id": make_id("a0E", number), "IsDeleted": False, "Day__c": day, "At__c": moment})
    rows.append({"Id": make_id("a0E", 0), "IsDeleted": False, "Day__c": None, "At__c": None})
    return rows


SCHEMA = _schema()
RECORDS = _records()
DATA = FakeData({"Event__c": RECORDS})


def matching_ids(condition: str) -> set[str]:
    result = execute(parse(f"SELECT Id FROM Event__c WHERE {condition}"), SCHEMA, DATA, now=NOW)
    return {row["Id"] for row in result.rows}


def expected_ids(field: str, op: str, start: object, end: object) -> set[str]:
    test = OPS[op]
    return {
        str(row["Id"])
        for row in RECORDS
        if (row[field] is None and op == "!=") or (row[field] is not None and test(row[field], start, end))
    }


@pytest.mark.parametrize("literal", sorted(DAY_RANGES))
def test_day_literals_on_date_fields(literal: str) -> None:
    start, end = DAY_RANGES[literal]
    for op in OPS:
        assert matching_ids(f"Day__c {op} {literal}") == expected_ids("Day__c", op, start, end), op


@pytest.mark.parametrize("literal", sorted(DAY_RANGES))
def test_day_literals_on_datetime_fields(literal: str) -> None:
    start, end = DAY_RANGES[literal]
    start_at = datetime(start.year, start.month, start.day, tzinfo=UTC)
    end_at = datetime(end.year, end.month, end.day, tzinfo=UTC)
    for op in OPS:
        assert matching_ids(f"At__c {op} {literal}") == expected_ids("At__c", op, start_at, end_at), op


@pytest.mark.parametrize("literal", sorted(HOUR_RANGES))
def test_hour_literals_on_datetime_fields(literal: str) -> None:
    start, end = HOUR_RANGES[literal]
    for op in OPS:
        assert matching_ids(f"At__c {op} {literal}") == expected_ids("At__c", op, start, end), op


def test_relative_literals_in_in_lists() -> None:
    today, tomorrow = DAY_RANGES["TODAY"], DAY_RANGES["TOMORROW"]
    expected = {
        str(row["Id"])
        for row in RECORDS
        if row["Day__c"] is not None
        and (today[0] <= row["Day__c"] < today[1] or tomorrow[0] <= row["Day__c"] < tomorrow[1])  # type: ignore[operator]
    }
    assert matching_ids("Day__c IN (TODAY, TOMORROW)") == expected
    null = make_id("a0E", 0)
    assert matching_ids("Day__c IN (TODAY, null)") == {null} | {
        str(row["Id"]) for row in RECORDS if row["Day__c"] == date(2024, 3, 13)
    }
    assert null in matching_ids("Day__c NOT IN (TODAY)")


def test_now_defaults_to_the_clock_and_naive_now_is_utc() -> None:
    result = execute(
        parse("SELECT Id FROM Event__c WHERE At__c = LAST_N_DAYS:100000 OR At__c > TODAY"), SCHEMA, DATA
    )
    assert result.total_size == len(RECORDS) - 1
    naive = execute(
        parse("SELECT Id FROM Event__c WHERE Day__c = TODAY"), SCHEMA, DATA, now=NOW.replace(tzinfo=None)
    )
    assert naive.total_size == 26


def test_ranges_beyond_the_calendar_are_refused() -> None:
    text = "SELECT Id FROM Event__c WHERE Day__c > LAST_N_DAYS:2147483647"
    with pytest.raises(SoqlError) as caught:
        execute(parse(text), SCHEMA, DATA, now=NOW)
    assert caught.value.code == "MALFORMED_QUERY"
    assert "ERROR at Row:1:Column:40" in caught.value.message
