"""Fixtures for the SOQL engine tests: a small schema, its records and a query runner."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from local.salesforce.soql import QueryResult, execute, parse
from tests.emulators.salesforce.soql.fakes import FakeData, FakeSchema, build_data, build_schema

#: The fixed "now" relative date literals are evaluated against (a Wednesday).
NOW = datetime(2024, 3, 13, 15, 45, 0, tzinfo=UTC)

Run = Callable[..., QueryResult]


@pytest.fixture
def schema() -> FakeSchema:
    return build_schema()


@pytest.fixture
def data() -> FakeData:
    return build_data()


@pytest.fixture
def run(schema: FakeSchema, data: FakeData) -> Run:
    def run_query(text: str, *, include_deleted: bool = False, now: datetime = NOW) -> QueryResult:
        return execute(parse(text), schema, data, include_deleted=include_deleted, now=now)

    return run_query
