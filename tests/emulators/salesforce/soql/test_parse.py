"""Parsing: literals, escapes, grammar, refusals and Salesforce's located error layout."""

# Building query text from values is what these tests exercise.

from __future__ import annotations

import time as clock
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from local.salesforce.soql import SoqlError, parse
from local.salesforce.soql_syntax import Comparison, FieldPath, Junction, Not, Select, parse_text


def layout(text: str, row: int, column: int, description: str) -> str:
    line = text.split("\n")[row - 1]
    return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{description}"


def parse_error(text: str) -> SoqlError:
    with pytest.raises(SoqlError) as caught:
        parse_text(text)
    return caught.value


def where_of(text: str) -> Comparison:
    condition = parse_text(text).select.where
    assert isinstance(condition, Comparison)
    return condition


def soql_quote(value: str) -> str:
    """Salesforce's standard string escaping (what client libraries send)."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("\b", "\\b")
        .replace("\f", "\\f")
    )
    return f"'{escaped}'"


# -- the statement -------------------------------------------------------------------------------


def test_keywords_are_case_insensitive_and_clauses_are_kept() -> None:
    query = parse_text(
        "select Id, name, Account.Owner.Name from Contact c where Name = 'x' "
        "order by Name desc nulls last, Id limit 10 offset 5"
    )
    select = query.select
    assert query.sobject == "Contact"
    assert select.alias == "c"
    assert [item.text for item in select.items if isinstance(item, FieldPath)] == [
        "Id",
        "name",
        "Account.Owner.Name",
    ]
    assert select.items[2] == FieldPath(("Account", "Owner", "Name"), "Account.Owner.Name", 17)
    assert [(o.path.text, o.descending, o.nulls_first) for o in select.order_by] == [
        ("Name", True, False),
        ("Id", False, True),
    ]
    assert (select.limit, select.offset) == (10, 5)
    assert not query.is_count


def test_count_and_child_subqueries_parse() -> None:
    count = parse_text("SELECT COUNT() FROM Account LIMIT 3")
    assert count.is_count
    assert count.select.items == ()
    assert count.select.limit == 3
    query = parse_text(
        "SELECT Id, (SELECT Id, Name FROM Lines__r l WHERE Name != null ORDER BY Name LIMIT 2) FROM X"
    )
    child = query.select.items[1]
    assert isinstance(child, Select)
    assert (child.sobject, child.alias, child.limit) == ("Lines__r", "l", 2)


def test_queries_are_cached_by_text() -> None:
    text = "SELECT Id FROM Account WHERE Name = 'cache me'"
    assert parse(text) is parse(text)


def test_multi_line_whitespace_is_insignificant() -> None:
    query = parse_text("SELECT\n  Id,\r\n\tName\nFROM   Account\nWHERE\nName='a'")
    assert query.sobject == "Account"
    assert where_of("SELECT\n  Id\nFROM   Account\nWHERE\nName='a'").path.pos == 33


# -- literals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "kind", "value"),
    [
        ("'abc'", "string", "abc"),
        ("''", "string", ""),
        ("42", "number", Decimal(42)),
        ("-1.5", "number", Decimal("-1.5")),
        ("+7", "number", Decimal(7)),
        (".25", "number", Decimal("0.25")),
        ("true", "boolean", True),
        ("FALSE", "boolean", False),
        ("null", "null", None),
        ("NULL", "null", None),
        ("2024-03-01", "date", date(2024, 3, 1)),
        ("2024-03-01T10:00:00Z", "datetime", datetime(2024, 3, 1, 10, tzinfo=UTC)),
        ("2024-03-01T10:00:00+02:00", "datetime", datetime(2024, 3, 1, 8, tzinfo=UTC)),
        ("2024-03-01T10:00:00-05:00", "datetime", datetime(2024, 3, 1, 15, tzinfo=UTC)),
        ("2024-03-01T10:00:00+0530", "datetime", datetime(2024, 3, 1, 4, 30, tzinfo=UTC)),
        ("2024-03-01T10:00:00.123Z", "datetime", datetime(2024, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)),
        ("2024-03-01T00:30:00.5+01:00", "datetime", datetime(2024, 2, 29, 23, 30, 0, 500000, tzinfo=UTC)),
        ("10:15:30.250Z", "time", time(10, 15, 30, 250000)),
        ("08:00:00Z", "time", time(8, 0)),
        ("TODAY", "relative", "TODAY"),
        ("this_month", "relative", "THIS_MONTH"),
    ],
)
def test_literal_kinds(literal: str, kind: str, value: object) -> None:
    comparison = where_of(f"SELECT Id FROM Account WHERE F = {literal}")
    parsed = comparison.values[0]
    assert (parsed.kind, parsed.value) == (kind, value)


def test_relative_literals_with_an_argument() -> None:
    value = where_of("SELECT Id FROM A WHERE D = LAST_N_DAYS : 30").values[0]
    assert (value.kind, value.value, value.n) == ("relative", "LAST_N_DAYS", 30)
    assert value.text == "LAST_N_DAYS : 30"
    assert where_of("SELECT Id FROM A WHERE D > n_days_ago:0").values[0].n == 0


@pytest.mark.parametrize(
    ("escaped", "value"),
    [
        (r"'it\'s'", "it's"),
        (r"'back\\slash'", "back\\slash"),
        (r"'a\nb\rc\td'", "a\nb\rc\td"),
        (r"'\"quoted\"'", '"quoted"'),
        (r"'\b\f'", "\b\f"),
        (r"'\\\''", "\\'"),
        ("'raw\nnewline'", "raw\nnewline"),
        ("'caf\u00e9 \u6771\u4eac'", "caf\u00e9 \u6771\u4eac"),
    ],
)
def test_string_escapes(escaped: str, value: str) -> None:
    assert where_of(f"SELECT Id FROM A WHERE Name = {escaped}").values[0].value == value


def test_like_escapes_mark_literal_wildcards() -> None:
    value = where_of(r"SELECT Id FROM A WHERE Name LIKE '50\% off\_%'").values[0]
    assert value.value == "50% off_%"
    assert value.literal_wildcards == frozenset({2, 7})


@pytest.mark.parametrize("sequence", ["\\q", "\\u0041", "\\0", "\\ "])
def test_unknown_escape_sequences_are_refused(sequence: str) -> None:
    text = f"SELECT Id FROM A WHERE Name = 'x{sequence}y'"
    error = parse_error(text)
    assert error.code == "MALFORMED_QUERY"
    assert error.message == layout(
        text,
        1,
        31,
        f"Invalid string literal 'x{sequence}y'. Illegal character sequence '\\{sequence[1]}' in string literal.",
    )


def test_wildcard_escapes_are_refused_outside_like() -> None:
    error = parse_error(r"SELECT Id FROM A WHERE Name = '50\%'")
    assert error.code == "MALFORMED_QUERY"
    assert "only valid in a LIKE pattern" in error.message
    assert parse_error(r"SELECT Id FROM A WHERE Name IN ('a\_b')").code == "MALFORMED_QUERY"


@pytest.mark.parametrize(
    "literal",
    ["2024-02-30", "2024-13-01T00:00:00Z", "2024-01-01T24:00:00Z", "25:00:00Z", "2024-01-01T10:00:00+25:00"],
)
def test_impossible_dates_are_refused(literal: str) -> None:
    error = parse_error(f"SELECT Id FROM A WHERE D = {literal}")
    assert error.code == "MALFORMED_QUERY"
    assert "ERROR at Row:1:Column:28" in error.message


# -- WHERE structure -----------------------------------------------------------------------------


def test_and_or_need_parentheses_to_mix() -> None:
    text = "SELECT Id FROM A WHERE X = 1 AND Y = 2 OR Z = 3"
    error = parse_error(text)
    assert error.code == "MALFORMED_QUERY"
    assert error.message == layout(text, 1, 40, "unexpected token: 'OR'")
    nested = parse_text("SELECT Id FROM A WHERE X = 1 AND (Y = 2 OR Z = 3) AND NOT W = 4").select.where
    assert isinstance(nested, Junction)
    assert nested.op == "AND"
    assert isinstance(nested.operands[1], Junction)
    assert nested.operands[1].op == "OR"
    assert isinstance(nested.operands[2], Not)


def test_not_forms() -> None:
    where = parse_text("SELECT Id FROM A WHERE NOT Name LIKE 'a%'").select.where
    assert isinstance(where, Not)
    assert isinstance(where.operand, Comparison)
    assert where.operand.op == "LIKE"
    parenthesised = parse_text("SELECT Id FROM A WHERE (NOT (X = 1 OR Y = 2))").select.where
    assert isinstance(parenthesised, Not)
    assert isinstance(parenthesised.operand, Junction)
    assert parse_error("SELECT Id FROM A WHERE NOT NOT X = 1").code == "MALFORMED_QUERY"
    assert parse_error("SELECT Id FROM A WHERE Name NOT LIKE 'a'").code == "MALFORMED_QUERY"


@pytest.mark.parametrize(
    ("condition", "op", "count"),
    [
        ("X IN ('a', 'b', null)", "IN", 3),
        ("X NOT IN (1, 2)", "NOT_IN", 2),
        ("X INCLUDES ('a;b', 'c')", "INCLUDES", 2),
        ("X excludes ('a')", "EXCLUDES", 1),
        ("X <= 5", "<=", 1),
        ("X != null", "!=", 1),
    ],
)
def test_operators(condition: str, op: str, count: int) -> None:
    comparison = where_of(f"SELECT Id FROM A WHERE {condition}")
    assert (comparison.op, len(comparison.values)) == (op, count)


def test_deep_nesting_is_bounded() -> None:
    assert parse_text("SELECT Id FROM A WHERE " + "(" * 90 + "X = 1" + ")" * 90).select.where is not None
    error = parse_error("SELECT Id FROM A WHERE " + "(" * 150 + "X = 1" + ")" * 150)
    assert error.code == "MALFORMED_QUERY"


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column", "description"),
    [
        ("SELECT Id FROM A WHERE X <> 1", 26, "unexpected token: '<>'"),
        ("SELECT FROM A", 8, "unexpected token: 'FROM'"),
        ("SELECT Id, FROM A", 12, "unexpected token: 'FROM'"),
        ("SELECT Id FROM", 15, "unexpected token: <EOF>"),
        ("SELECT Id FROM A WHERE", 23, "unexpected token: <EOF>"),
        ("SELECT Id FROM A WHERE X = :value", 28, "Bind variables only allowed in Apex code"),
        ("SELECT Id FROM A LIMIT :n", 24, "Bind variables only allowed in Apex code"),
        ("SELECT Id FROM A LIMIT -1", 24, "unexpected token: '-1'"),
        ("SELECT Id FROM A LIMIT 1.5", 24, "unexpected token: '1.5'"),
        ("SELECT Id FROM A OFFSET 5 LIMIT 1", 27, "unexpected token: 'LIMIT'"),
        ("SELECT Id FROM A a b", 20, "unexpected token: 'b'"),
        ("SELECT Id FROM A, B", 17, "unexpected token: ','"),
        ("SELECT Id FROM A WHERE X = 'open", 28, "unexpected token: <EOF> (unterminated string literal)"),
        ("SELECT Id FROM A WHERE X = 1 #", 30, "unexpected token: '#'"),
        ("SELECT Id Name FROM A", 11, "unexpected token: 'Name'"),
        ("SELECT Id FROM A WHERE X = 1e5", 29, "unexpected token: 'e5'"),
        ("SELECT Id FROM A WHERE X IN ()", 30, "unexpected token: ')'"),
        ("SELECT Id FROM A WHERE (X = 1", 30, "unexpected token: <EOF>"),
        ("SELECT Id FROM A WHERE X = LAST_N_DAYS", 39, "unexpected token: <EOF>"),
        ("SELECT Id FROM A WHERE X = LAST_N_DAYS:-3", 40, "unexpected token: '-3'"),
        ("SELECT Id FROM A WHERE X = SOMEDAY", 28, "unexpected token: 'SOMEDAY'"),
        ("SELECT Id FROM A ORDER BY Name NULLS", 37, "unexpected token: <EOF>"),
        ("FIND {Acme} RETURNING Account", 1, "unexpected token: 'FIND'"),
        ("SELECT Id FROM A WHERE X = 'a' ORDER BY Name LIMIT 5 ~", 54, "unexpected token: '~'"),
        ("SELECT Id Name FROM A WHERE X = 'bad\\q'", 11, "unexpected token: 'Name'"),
        ("SELECT Id FROM A WHERE X = 2024-02-30 AND", 28, "invalid date: 2024-02-30"),
        ("SELECT COUNT(), Id FROM A", 17, "COUNT() cannot be combined with other fields in the SELECT list"),
        ("SELECT Id, COUNT() FROM A", 12, "COUNT() cannot be combined with other fields in the SELECT list"),
    ],
)
def test_malformed_queries(text: str, column: int, description: str) -> None:
    error = parse_error(text)
    assert error.code == "MALFORMED_QUERY"
    assert error.message == layout(text, 1, column, description)


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("SELECT COUNT(Id) FROM A", "COUNT"),
        ("SELECT MAX(Amount) FROM A", "MAX"),
        ("SELECT SUM(Amount) FROM A", "SUM"),
        ("SELECT COUNT_DISTINCT(Name) FROM A", "COUNT_DISTINCT"),
        ("SELECT FIELDS(ALL) FROM A LIMIT 200", "FIELDS"),
        ("SELECT toLabel(Status) FROM A", "toLabel"),
        ("SELECT TYPEOF What WHEN Account THEN Name END FROM Task", "TYPEOF"),
        ("SELECT Name FROM A GROUP BY Name", "GROUP BY"),
        ("SELECT Name FROM A WHERE X = 1 GROUP BY Name HAVING COUNT(Id) > 1", "GROUP BY"),
        ("SELECT Id FROM A FOR UPDATE", "FOR"),
        ("SELECT Id FROM A LIMIT 1 FOR VIEW", "FOR"),
        ("SELECT Id FROM A WITH SECURITY_ENFORCED", "WITH"),
        ("SELECT Id FROM A USING SCOPE Mine", "USING SCOPE"),
        ("SELECT Id FROM A ALL ROWS", "ALL ROWS"),
        ("SELECT Id FROM A WHERE Id IN (SELECT AccountId FROM Contact)", "semi-join"),
        ("SELECT Id FROM A WHERE CALENDAR_YEAR(CreatedDate) = 2024", "CALENDAR_YEAR"),
        ("SELECT Id FROM A WHERE D = THIS_FISCAL_YEAR", "fiscal"),
        ("SELECT Id FROM A ORDER BY MAX(Name)", "MAX"),
        ("SELECT Id, (SELECT Id, (SELECT Id FROM C) FROM B) FROM A", "nested"),
        ("SELECT Id, (SELECT COUNT() FROM B) FROM A", "COUNT()"),
        ("SELECT Id, (SELECT Id FROM B LIMIT 5 OFFSET 1) FROM A", "OFFSET"),
    ],
)
def test_outside_the_subset_is_refused_never_ignored(text: str, what: str) -> None:
    error = parse_error(text)
    assert error.code == "MALFORMED_QUERY"
    assert what in error.message
    assert "is not supported" in error.message


def test_offset_limits() -> None:
    assert parse_text("SELECT Id FROM A LIMIT 10 OFFSET 2000").select.offset == 2000
    text = "SELECT Id FROM A OFFSET 2001"
    error = parse_error(text)
    assert error.code == "NUMBER_OUTSIDE_VALID_RANGE"
    assert error.message == layout(text, 1, 25, "Maximum SOQL offset allowed is 2000")
    assert parse_text("SELECT Id FROM A LIMIT 2147483647").select.limit == 2147483647
    assert parse_error("SELECT Id FROM A LIMIT 2147483648").code == "MALFORMED_QUERY"


def test_statement_length_is_bounded() -> None:
    error = parse_error("SELECT Id FROM A WHERE Name = '" + "x" * 100_000 + "'")
    assert error.code == "MALFORMED_QUERY"
    assert "100000" in error.message


def test_errors_on_later_rows_count_rows_and_columns() -> None:
    text = "SELECT Id,\n       Name\nFROM Account\nWHERE Name = 'a'\n  AND Type = 'b' OR X = 1"
    error = parse_error(text)
    assert error.message == layout(text, 5, 18, "unexpected token: 'OR'")
    assert error.message.splitlines()[1:3] == ["  AND Type = 'b' OR X = 1", "                 ^"]


# -- escaping is structural ----------------------------------------------------------------------


def test_quotes_cannot_break_out_of_a_string() -> None:
    injected = "x' OR Name != null OR Name = 'y"
    comparison = where_of(f"SELECT Id FROM A WHERE Name = {soql_quote(injected)}")
    assert comparison.values[0].value == injected
    # Unescaped, the same text changes the structure (and here is refused for mixing AND/OR).
    assert isinstance(parse_text(f"SELECT Id FROM A WHERE Name = '{injected}'").select.where, Junction)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_standard_escaping_round_trips(value: str) -> None:
    where = parse_text(f"SELECT Id FROM Account WHERE Name = {soql_quote(value)} AND Id != null").select.where
    assert isinstance(where, Junction)
    first = where.operands[0]
    assert isinstance(first, Comparison)
    assert first.values[0].value == value
    assert first.values[0].literal_wildcards == frozenset()


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_like_escaping_round_trips(value: str) -> None:
    pattern = soql_quote(value)[1:-1].replace("%", "\\%").replace("_", "\\_")
    comparison = where_of(f"SELECT Id FROM Account WHERE Name LIKE '{pattern}'")
    parsed = comparison.values[0]
    assert parsed.value == value
    assert parsed.literal_wildcards == frozenset(i for i, ch in enumerate(value) if ch in "%_")


def test_parsing_is_fast() -> None:
    text = (
        "SELECT Id, Name, Billing_Id__c, AnnualRevenue, Owner.Name, (SELECT Id FROM Contacts) FROM Account "
        "WHERE SystemModstamp > 2024-03-01T10:00:00Z AND (Type = 'Customer' OR Type IN ('Partner', 'Prospect')) "
        "ORDER BY SystemModstamp ASC, Id ASC LIMIT 2000"
    )
    start = clock.perf_counter()
    for _ in range(200):
        parse_text(text)
    per_query = (clock.perf_counter() - start) / 200
    assert per_query < 0.001
