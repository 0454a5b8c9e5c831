"""The engine answers typical queries over ~100k records well under a second."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from local.salesforce.soql import QueryResult, execute, parse
from tests.emulators.salesforce.soql.fakes import FakeData, FakeSchema, build_schema, make_id

RECORDS = 100_000
BUDGET_SECONDS = 1.0
START = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def big() -> tuple[FakeSchema, FakeData]:
    users = [
        {"Id": make_id("005", n), "IsDeleted": False, "Name": f"User {n}", "ManagerId": None}
        for n in range(10)
    ]
    accounts = [
        {
            "Id": make_id("001", n),
            "IsDeleted": n % 50 == 0,
            "Name": f"Account {n:06d}",
            "Billing_Id__c": f"CUST-{n}",
            "AnnualRevenue": Decimal(n),
            "Active__c": n % 3 == 0,
            "Type": ("Prospect", "Customer", "Partner")[n % 3],
            "OwnerId": users[n % 10]["Id"],
            "SystemModstamp": START + timedelta(seconds=(n * 7919) % RECORDS),
        }
        for n in range(RECORDS)
    ]
    return build_schema(), FakeData({"Account": accounts, "User": users})


def timed(big: tuple[FakeSchema, FakeData], text: str) -> tuple[QueryResult, float]:
    schema, data = big
    started = time.perf_counter()
    result = execute(parse(text), schema, data)
    return result, time.perf_counter() - started


def test_equality_on_a_text_field(big: tuple[FakeSchema, FakeData]) -> None:
    result, seconds = timed(big, "SELECT Id, Name FROM Account WHERE Billing_Id__c = 'cust-77777'")
    assert [row["Name"] for row in result.rows] == ["Account 077777"]
    assert seconds < BUDGET_SECONDS


def test_range_filters(big: tuple[FakeSchema, FakeData]) -> None:
    result, seconds = timed(big, "SELECT Id FROM Account WHERE AnnualRevenue >= 90000 AND Active__c = true")
    assert result.total_size == len([n for n in range(90_000, RECORDS) if n % 3 == 0 and n % 50 != 0])
    assert seconds < BUDGET_SECONDS


def test_the_incremental_paging_query(big: tuple[FakeSchema, FakeData]) -> None:
    text = (
        "SELECT Id, Name, Billing_Id__c, SystemModstamp, Owner.Name FROM Account "
        "WHERE SystemModstamp > 2024-01-01T10:00:00Z ORDER BY SystemModstamp ASC, Id ASC LIMIT 2000"
    )
    result, seconds = timed(big, text)
    assert result.total_size == 2000
    stamps = [row["SystemModstamp"] for row in result.rows]
    assert stamps == sorted(stamps)
    assert stamps[0] == START + timedelta(seconds=36001)
    assert seconds < BUDGET_SECONDS


def test_every_row_with_a_parent_field(big: tuple[FakeSchema, FakeData]) -> None:
    result, seconds = timed(big, "SELECT Id, Name, Owner.Name FROM Account ORDER BY Name DESC")
    assert result.total_size == RECORDS - RECORDS // 50
    assert result.rows[0]["Name"] == "Account 099999"
    assert seconds < BUDGET_SECONDS * 2


def test_count_with_like(big: tuple[FakeSchema, FakeData]) -> None:
    result, seconds = timed(
        big, "SELECT COUNT() FROM Account WHERE Name LIKE '%7' AND Type IN ('Customer', 'Partner')"
    )
    assert result.total_size == len([n for n in range(RECORDS) if n % 10 == 7 and n % 3 != 0 and n % 50 != 0])
    assert seconds < BUDGET_SECONDS
