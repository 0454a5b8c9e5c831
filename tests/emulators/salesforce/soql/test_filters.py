"""WHERE semantics: every operator and literal kind, NULL rules, Ids, parent paths, type checks."""

# Building query text from values is what these tests exercise.

from __future__ import annotations

import gc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from local.salesforce.soql import QueryResult, SoqlError, canonical_id, execute, parse, to18
from tests.emulators.salesforce.soql.conftest import Run
from tests.emulators.salesforce.soql.fakes import (
    A1,
    A2,
    A3,
    A4,
    A5,
    U1,
    U2,
    FakeData,
    FakeSchema,
    build_schema,
    make_id,
)

LABELS = {A1: "A1", A2: "A2", A3: "A3", A4: "A4", A5: "A5"}


def labels(result: QueryResult) -> list[str]:
    return [LABELS[row["Id"]] for row in result.rows]


def accounts(run: Run, condition: str) -> list[str]:
    return labels(run(f"SELECT Id FROM Account WHERE {condition}"))


def layout(text: str, column: int, description: str) -> str:
    return f"\n{text}\n{' ' * (column - 1)}^\nERROR at Row:1:Column:{column}\n{description}"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        # text: = and != are case-insensitive; != includes nulls; '' is null
        ("Name = 'acme ltd'", ["A1"]),
        ("Name = 'ACME LTD'", ["A1"]),
        ("Name != 'Acme Ltd'", ["A2", "A3", "A4"]),
        ("Billing_Id__c = null", ["A3", "A4"]),
        ("Billing_Id__c = ''", ["A3", "A4"]),
        ("Billing_Id__c != null", ["A1", "A2"]),
        ("Billing_Id__c != 'cust-1001'", ["A2", "A3", "A4"]),
        ("Billing_Id__c < 'CUST-1002'", ["A1"]),
        ("Name > 'b'", ["A2", "A3", "A4"]),
        ("Name >= 'BETA CORP'", ["A2", "A3", "A4"]),
        ("Name <= 'beta corp'", ["A1", "A2"]),
        ("Name < null", []),
        # numbers
        ("AnnualRevenue > 100", ["A1"]),
        ("AnnualRevenue >= 99.5", ["A1", "A3"]),
        ("AnnualRevenue < 100", ["A3", "A4"]),
        ("AnnualRevenue <= 0", ["A4"]),
        ("AnnualRevenue = 125000", ["A1"]),
        ("AnnualRevenue = 125000.000", ["A1"]),
        ("AnnualRevenue != 0", ["A1", "A2", "A3"]),
        ("AnnualRevenue = null", ["A2"]),
        ("AnnualRevenue > -5.5", ["A1", "A3", "A4"]),
        ("AnnualRevenue > null", []),
        ("NumberOfEmployees IN (7, 50)", ["A1", "A3"]),
        ("NumberOfEmployees NOT IN (7, 50)", ["A2", "A4"]),
        ("NumberOfEmployees IN (7, null)", ["A2", "A3"]),
        ("NumberOfEmployees NOT IN (7, null)", ["A1", "A4"]),
        ("NumberOfEmployees >= 50.0", ["A1", "A4"]),
        # booleans: null matches false
        ("Active__c = true", ["A1", "A4"]),
        ("Active__c = FALSE", ["A2", "A3"]),
        ("Active__c != true", ["A2", "A3"]),
        ("Active__c != false", ["A1", "A4"]),
        ("Active__c = null", ["A2", "A3"]),
        ("Active__c != null", ["A1", "A4"]),
        ("Active__c IN (true)", ["A1", "A4"]),
        ("Active__c NOT IN (true)", ["A2", "A3"]),
        # picklists
        ("Type = 'customer'", ["A1"]),
        ("Type IN ('Customer', 'PARTNER')", ["A1", "A3"]),
        ("Type NOT IN ('Customer')", ["A2", "A3", "A4"]),
        ("Industry IN ('BANKING', null)", ["A2", "A3"]),
        # LIKE: case-insensitive, % and _, escapes, regex characters are literal
        ("Name LIKE 'acme%'", ["A1"]),
        ("Name LIKE '%CORP'", ["A2"]),
        ("Name LIKE 'beta_corp'", ["A2"]),
        ("Name LIKE 'beta__corp'", []),
        ("Name LIKE '%'", ["A1", "A2", "A3", "A4"]),
        ("Name LIKE '%\\%%'", ["A3"]),
        ("Name LIKE '%off\\_sale'", ["A3"]),
        ("Name LIKE '%off_sale'", ["A3"]),
        ("Name LIKE '50\\%%'", []),
        ("Name LIKE 'Acme.Ltd'", []),
        ("Name LIKE '%(%'", []),
        ("Name LIKE '%[a-z]%'", []),
        ("Name LIKE 'o\\'brien%'", ["A4"]),
        ("Name LIKE '%\\\\ sons\\nltd'", ["A4"]),
        ("Name LIKE '%sons%ltd'", ["A4"]),
        ("NOT Name LIKE 'a%'", ["A2", "A3", "A4"]),
        ("(NOT Billing_Id__c LIKE 'CUST%')", ["A3", "A4"]),
        ("Billing_Id__c LIKE '%'", ["A1", "A2"]),
        # strings with quotes, backslashes and newlines
        ("Name = 'O\\'Brien \\\\ Sons\\nLtd'", ["A4"]),
        ("Name = 'O\\'Brien \\\\ Sons\nLtd'", ["A4"]),
        ("Name = 'x\\' OR Name != \\'y'", []),
        # dates, datetimes (offsets normalised to UTC), times
        ("Contract_Start__c = 2024-01-01", ["A1"]),
        ("Contract_Start__c > 2024-01-01", ["A2"]),
        ("Contract_Start__c <= 2024-01-01", ["A1", "A4"]),
        ("Contract_Start__c != 2024-01-01", ["A2", "A3", "A4"]),
        ("Contract_Start__c IN (2024-01-01, 2023-12-31)", ["A1", "A4"]),
        ("Contract_Start__c = null", ["A3"]),
        ("CreatedDate > 2024-02-29T23:59:58Z", ["A2", "A3"]),
        ("CreatedDate >= 2024-03-01T01:00:00+01:00", ["A2"]),
        ("CreatedDate < 2024-01-01T00:00:00.000Z", ["A4"]),
        ("CreatedDate = 2024-01-15T05:30:00-05:00", ["A1"]),
        ("SystemModstamp > 2024-02-01T08:00:12Z", ["A2", "A3"]),
        ("SystemModstamp >= 2024-02-01T08:00:12Z", ["A1", "A2", "A3"]),
        ("Opening_Time__c > 09:00:00Z", ["A4"]),
        ("Opening_Time__c = 08:30:00.000Z", ["A2"]),
        ("Opening_Time__c != null", ["A1", "A2", "A4"]),
        # multi-select picklists: = is an exact set, INCLUDES ORs terms whose ';' means AND
        ("Regions__c = 'apac;emea'", ["A1"]),
        ("Regions__c = 'EMEA'", ["A2"]),
        ("Regions__c != 'EMEA'", ["A1", "A3", "A4"]),
        ("Regions__c IN ('EMEA', 'amer;apac')", ["A2", "A4"]),
        ("Regions__c INCLUDES ('EMEA')", ["A1", "A2"]),
        ("Regions__c INCLUDES ('emea;apac')", ["A1"]),
        ("Regions__c INCLUDES ('EMEA;AMER', 'AMER')", ["A4"]),
        ("Regions__c EXCLUDES ('EMEA')", ["A3", "A4"]),
        ("Regions__c = null", ["A3"]),
        # precedence and parentheses
        ("Name = 'Acme Ltd' OR (Active__c = false AND Type = 'Prospect')", ["A1", "A2"]),
        ("(Name = 'Acme Ltd' OR Active__c = false) AND Type = 'Prospect'", ["A2"]),
        ("NOT (Type = 'Customer' OR Type = 'Partner')", ["A2", "A4"]),
        ("NOT Type = 'Customer'", ["A2", "A3", "A4"]),
        ("Type = 'Customer' OR Type = 'Partner' OR Type = null", ["A1", "A3", "A4"]),
        ("Name != null AND (NOT AnnualRevenue > 100) AND Active__c = true", ["A4"]),
        ("((((Name = 'beta corp'))))", ["A2"]),
        ("NOT (NOT (Name = 'beta corp'))", ["A2"]),
        # parent paths, including null parents
        ("Owner.Name = 'sync user'", ["A1", "A4"]),
        ("Owner.Name = null", ["A3"]),
        ("Owner.Name != 'Boss'", ["A1", "A3", "A4"]),
        ("Owner.Manager.Name = 'Boss'", ["A1", "A4"]),
        ("Owner.Manager.Manager.Name = null", ["A1", "A2", "A3", "A4"]),
        ("Parent.Parent.Name = 'ACME LTD'", ["A3"]),
        ("Parent.Owner.Email LIKE 'boss@%'", ["A3"]),
        ("account.parent.name = 'Acme Ltd'", ["A2"]),
    ],
)
def test_where(run: Run, condition: str, expected: list[str]) -> None:
    assert accounts(run, condition) == expected


def test_ids_accept_15_and_18_characters_in_any_case(run: Run) -> None:
    assert accounts(run, f"Id = '{A1}'") == ["A1"]
    assert accounts(run, f"Id = '{A1[:15]}'") == ["A1"]
    assert accounts(run, f"Id = '{A1.lower()}'") == ["A1"]
    assert accounts(run, f"Id = '{A1.upper()}'") == ["A1"]
    assert accounts(run, f"Id IN ('{A2[:15]}', '{A3}')") == ["A2", "A3"]
    assert accounts(run, f"Id NOT IN ('{A2[:15]}', '{A3}')") == ["A1", "A4"]
    assert accounts(run, f"Id != '{A1[:15]}'") == ["A2", "A3", "A4"]
    assert accounts(run, f"Id > '{A2}'") == ["A3", "A4"]
    assert accounts(run, f"OwnerId = '{U1[:15]}'") == ["A1", "A4"]
    assert accounts(run, f"OwnerId != '{U1}'") == ["A2", "A3"]
    assert accounts(run, "OwnerId = null") == ["A3"]
    assert accounts(run, "ParentId = ''") == ["A1", "A4"]
    # A 15-character Id is case-sensitive: another casing is another record.
    assert accounts(run, f"Id = '{A1[:15].swapcase()}'") == []


def test_id_lookups_skip_the_scan_and_respect_deletion(run: Run, data: FakeData) -> None:
    assert accounts(run, f"Id = '{A1}' AND Name = 'Acme Ltd'") == ["A1"]
    assert accounts(run, f"Id = '{A1}' AND Name = 'other'") == []
    assert data.scans == 0
    assert accounts(run, f"Id = '{A5}'") == []
    assert labels(run(f"SELECT Id FROM Account WHERE Id = '{A5}'", include_deleted=True)) == ["A5"]


def test_canonical_ids() -> None:
    assert to18("001D000000IqhSL") == "001D000000IqhSLIAZ"
    assert to18("00190000001pPvH") == "00190000001pPvHAAU"
    assert canonical_id("001d000000iqhsliaz") == "001D000000IqhSLIAZ"
    assert canonical_id("001D000000IqhSL") == "001D000000IqhSLIAZ"
    assert canonical_id("001D000000IqhSLIAB") is not None
    assert canonical_id("001D000000IqhSL9AZ") is None  # '9' is no checksum character
    assert canonical_id("00190000001pPvHZAU") is None  # the checksum would upper-case a digit
    assert canonical_id("001D000000IqhS") is None
    assert canonical_id("001D000000IqhS-") is None


def test_queryall_sees_deleted_records(run: Run) -> None:
    assert accounts(run, "Name != null") == ["A1", "A2", "A3", "A4"]
    assert labels(run("SELECT Id FROM Account WHERE Name != null", include_deleted=True)) == [
        "A1",
        "A2",
        "A3",
        "A4",
        "A5",
    ]
    assert labels(run("SELECT Id FROM Account WHERE IsDeleted = true", include_deleted=True)) == ["A5"]


@pytest.mark.parametrize(
    ("condition", "field", "description"),
    [
        ("Name = 5", "Name", "must be of type string and should be enclosed in quotes"),
        ("Name = true", "Name", "must be of type string and should be enclosed in quotes"),
        ("Name = 2024-01-01", "Name", "must be of type string and should be enclosed in quotes"),
        ("Name = TODAY", "Name", "must be of type string and should be enclosed in quotes"),
        ("Name IN ('a', 5)", "Name", "must be of type string and should be enclosed in quotes"),
        ("Name LIKE 5", "Name", "must be of type string and should be enclosed in quotes"),
        ("Name LIKE null", "Name", "must be of type string and should be enclosed in quotes"),
        ("Regions__c = 1", "Regions__c", "must be of type string and should be enclosed in quotes"),
        ("Regions__c INCLUDES (null)", "Regions__c", "must be of type string and should be enclosed in quotes"),
        ("Id = 5", "Id", "must be of type id and should be enclosed in quotes"),
        ("AnnualRevenue = '5'", "AnnualRevenue", "must be of type double and should not be enclosed in quotes"),
        ("NumberOfEmployees = 'x'", "NumberOfEmployees", "must be of type int and should not be enclosed in quotes"),
        ("Active__c = 'true'", "Active__c", "must be of type boolean and should not be enclosed in quotes"),
        ("Active__c = 1", "Active__c", "must be of type boolean and should not be enclosed in quotes"),
        ("CreatedDate > 2024-01-01", "CreatedDate", "must be of type dateTime and should not be enclosed in quotes"),
        ("CreatedDate = '2024-01-01T00:00:00Z'", "CreatedDate", "must be of type dateTime and should not be enclosed in quotes"),
        ("Contract_Start__c = 2024-01-01T00:00:00Z", "Contract_Start__c", "must be of type date and should not be enclosed in quotes"),
        ("Contract_Start__c = '2024-01-01'", "Contract_Start__c", "must be of type date and should not be enclosed in quotes"),
        ("Contract_Start__c = LAST_N_HOURS:3", "Contract_Start__c", "must be of type date and should not be enclosed in quotes"),
        ("Opening_Time__c = '09:00:00Z'", "Opening_Time__c", "must be of type time and should not be enclosed in quotes"),
        ("Opening_Time__c = TODAY", "Opening_Time__c", "must be of type time and should not be enclosed in quotes"),
    ],
)  # fmt: skip
def test_type_mismatches_fail_like_salesforce(run: Run, condition: str, field: str, description: str) -> None:
    text = f"SELECT Id FROM Account WHERE {condition}"
    with pytest.raises(SoqlError) as caught:
        run(text)
    assert caught.value.code == "INVALID_FIELD"
    assert caught.value.message == layout(
        text, 30, f"value of filter criterion for field '{field}' {description}"
    )


@pytest.mark.parametrize(
    ("condition", "description"),
    [
        ("Id = 'abc'", "invalid ID field: abc"),
        ("OwnerId IN ('005xx')", "invalid ID field: 005xx"),
        (f"Id = '{A1[:15]}999'", f"invalid ID field: {A1[:15]}999"),
        ("Id LIKE '001%'", "invalid operator on id field"),
        ("OwnerId LIKE '005%'", "invalid operator on id field"),
        ("AnnualRevenue LIKE '1%'", "invalid operator on currency field"),
        ("CreatedDate LIKE '2024%'", "invalid operator on datetime field"),
        ("Active__c > false", "invalid operator on boolean field"),
        ("Regions__c < 'a'", "invalid operator on multipicklist field"),
        ("Regions__c LIKE 'E%'", "invalid operator on multipicklist field"),
        ("Type > 'a'", "invalid operator on picklist field"),
        ("Name INCLUDES ('a')", "includes or excludes operator only valid on multipicklist field"),
        ("Type EXCLUDES ('a')", "includes or excludes operator only valid on multipicklist field"),
    ],
)
def test_operator_errors(run: Run, condition: str, description: str) -> None:
    text = f"SELECT Id FROM Account WHERE {condition}"
    with pytest.raises(SoqlError) as caught:
        run(text)
    assert caught.value.code == "INVALID_QUERY_FILTER_OPERATOR"
    assert caught.value.message == layout(text, 30, description)


def test_users_are_untouched_by_account_filters(run: Run) -> None:
    result = run(f"SELECT Id, Name FROM User WHERE Manager.Id = '{U2}' OR Id = '{U2}'")
    assert [row["Name"] for row in result.rows] == ["Sync User", "Boss"]


def _one_account(name: str) -> tuple[FakeSchema, FakeData]:
    other = {"Id": make_id("001", 2), "IsDeleted": False, "Name": "someone else"}
    return build_schema(), FakeData({"Account": [{"Id": A1, "IsDeleted": False, "Name": name}, other]})


def _escape(value: str) -> str:
    return (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("\b", "\\b")
        .replace("\f", "\\f")
    )


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1).filter(lambda value: value.lower() != "someone else"))
def test_escaped_values_match_exactly_the_record_holding_them(value: str) -> None:
    schema, data = _one_account(value)
    equal = execute(parse(f"SELECT Id FROM Account WHERE Name = '{_escape(value)}'"), schema, data)
    assert [row["Id"] for row in equal.rows] == [A1]
    pattern = _escape(value).replace("%", "\\%").replace("_", "\\_")
    like = execute(parse(f"SELECT Id FROM Account WHERE Name LIKE '{pattern}'"), schema, data)
    assert [row["Id"] for row in like.rows] == [A1]


def test_the_garbage_collector_is_resumed_after_a_run(run: Run) -> None:
    assert gc.isenabled()
    run("SELECT Id, Owner.Name FROM Account")
    assert gc.isenabled()
    gc.disable()
    try:
        run("SELECT Id FROM Account")
        assert not gc.isenabled()
    finally:
        gc.enable()
