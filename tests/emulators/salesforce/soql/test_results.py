"""Result rows: shape, parent paths, child subqueries, COUNT(), ORDER BY, LIMIT/OFFSET, schema errors."""

# Building query text from values is what these tests exercise.

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

from local.salesforce.soql import QueryResult, RecordAttributes, SoqlError, attach_urls, execute, parse
from tests.emulators.salesforce.soql.conftest import Run
from tests.emulators.salesforce.soql.fakes import (
    A1,
    A2,
    A3,
    A4,
    A5,
    C2,
    C3,
    I1,
    I2,
    L1,
    L2,
    L4,
    ODD_NAME,
    T1,
    T2,
    T3,
    U1,
    FakeData,
    build_data,
    build_schema,
)

LABELS = {A1: "A1", A2: "A2", A3: "A3", A4: "A4", A5: "A5"}


def labels(result: QueryResult) -> list[str]:
    return [LABELS[row["Id"]] for row in result.rows]


def layout(text: str, row: int, column: int, description: str) -> str:
    line = text.split("\n")[row - 1]
    return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{description}"


def failure(run: Run, text: str) -> SoqlError:
    with pytest.raises(SoqlError) as caught:
        run(text)
    return caught.value


# -- row shape -----------------------------------------------------------------------------------


def test_rows_use_canonical_names_in_select_order(run: Run) -> None:
    result = run(
        f"select NAME, id, owner.name, OWNER.manager.NAME, parent.name from account where id = '{A2}'"
    )
    assert result.total_size == 1
    assert result.is_count is False
    assert result.sobject == "Account"
    assert result.rows == [
        {
            "attributes": {"type": "Account"},
            "Name": "beta corp",
            "Id": A2,
            "Owner": {"attributes": {"type": "User"}, "Name": "Boss", "Manager": None},
            "Parent": {"attributes": {"type": "Account"}, "Name": "Acme Ltd"},
        }
    ]
    assert list(result.rows[0]) == ["attributes", "Name", "Id", "Owner", "Parent"]


def test_parent_fields_nest_in_first_mention_order(run: Run) -> None:
    row = run(f"SELECT Owner.Name, Name, Owner.Email FROM Account WHERE Id = '{A1}'").rows[0]
    assert list(row) == ["attributes", "Owner", "Name"]
    assert row["Owner"] == {"attributes": {"type": "User"}, "Name": "Sync User", "Email": "sync@example.com"}


def test_null_parents_are_none(run: Run) -> None:
    rows = run("SELECT LastName, Account.Name, Account.Owner.Name FROM Contact").rows
    assert [row["Account"] for row in rows] == [
        {"attributes": {"type": "Account"}, "Name": "Acme Ltd", "Owner": {"attributes": {"type": "User"}, "Name": "Sync User"}},
        None,
        {"attributes": {"type": "Account"}, "Name": "beta corp", "Owner": {"attributes": {"type": "User"}, "Name": "Boss"}},
    ]  # fmt: skip


def test_five_levels_of_parents(run: Run) -> None:
    text = f"SELECT Account.Parent.Owner.Manager.Manager.Name FROM Contact WHERE Id = '{C3}'"
    assert run(text).rows[0]["Account"] == {
        "attributes": {"type": "Account"},
        "Parent": {
            "attributes": {"type": "Account"},
            "Owner": {
                "attributes": {"type": "User"},
                "Manager": {"attributes": {"type": "User"}, "Manager": None},
            },
        },
    }
    deeper = "SELECT Account.Parent.Parent.Owner.Manager.Manager.Name FROM Contact"
    error = failure(run, deeper)
    assert error.code == "MALFORMED_QUERY"
    assert error.message.startswith(f"\n{deeper}\n       ^\nERROR at Row:1:Column:8\n")


def test_custom_relationships(run: Run) -> None:
    rows = run("SELECT Name, Account__r.Billing_Id__c, Account__r.Owner.Name FROM Billing_Invoice__c").rows
    assert rows[2] == {
        "attributes": {"type": "Billing_Invoice__c"},
        "Name": "INV-3",
        "Account__r": {
            "attributes": {"type": "Account"},
            "Billing_Id__c": "CUST-1002",
            "Owner": {"attributes": {"type": "User"}, "Name": "Boss"},
        },
    }


def test_values_are_returned_typed_and_untouched(run: Run) -> None:
    row = run(
        f"SELECT Name, Active__c, AnnualRevenue, Billing_Id__c, Regions__c FROM Account WHERE Id = '{A4}'"
    ).rows[0]
    assert row["Name"] == ODD_NAME
    assert row["Active__c"] is True
    assert row["Billing_Id__c"] == ""
    assert row["Regions__c"] == "APAC;AMER"
    assert run(f"SELECT Active__c FROM Account WHERE Id = '{A3}'").rows[0]["Active__c"] is None


def test_polymorphic_relationships(run: Run) -> None:
    rows = run("SELECT Subject, What.Name FROM Task").rows
    assert [row["What"] for row in rows] == [
        {"attributes": {"type": "Account"}, "Name": "Acme Ltd"},
        {"attributes": {"type": "Billing_Invoice__c"}, "Name": "INV-1"},
        None,
    ]
    assert [row["Id"] for row in run("SELECT Id FROM Task WHERE What.Name LIKE 'inv%'").rows] == [T2]
    assert [row["Id"] for row in run("SELECT Id FROM Task ORDER BY What.Name DESC").rows] == [T3, T2, T1]
    deeper = failure(run, "SELECT What.Owner.Name FROM Task")
    assert deeper.code == "MALFORMED_QUERY"
    missing = failure(run, "SELECT What.Amount__c FROM Task")
    assert missing.code == "INVALID_FIELD"
    assert "No such column 'Amount__c' on entity 'Name'" in missing.message


def test_aliases_and_object_name_prefixes(run: Run) -> None:
    result = run("SELECT a.Name, a.Owner.Name FROM Account a WHERE a.Name = 'acme ltd' ORDER BY a.Name")
    assert result.rows == [
        {"attributes": {"type": "Account"}, "Name": "Acme Ltd", "Owner": {"attributes": {"type": "User"}, "Name": "Sync User"}}
    ]  # fmt: skip
    assert run("SELECT Account.Name FROM Account WHERE Account.Name = 'beta corp'").rows == [
        {"attributes": {"type": "Account"}, "Name": "beta corp"}
    ]
    rows = run(
        "SELECT Contact.LastName, Contact.Account.Name FROM Contact WHERE Contact.Account.Name = null"
    ).rows
    assert rows == [{"attributes": {"type": "Contact"}, "LastName": "Orphan", "Account": None}]


def test_duplicate_fields_are_refused(run: Run) -> None:
    for text, column, duplicate in [
        ("SELECT Name, name FROM Account", 14, "name"),
        ("SELECT Owner.Name, Id, owner.NAME FROM Account", 24, "owner.NAME"),
        ("SELECT a.Name, Name FROM Account a", 16, "Name"),
        ("SELECT Id, (SELECT Id FROM Contacts), (SELECT Id FROM contacts) FROM Account", 55, "contacts"),
    ]:
        error = failure(run, text)
        assert error.code == "MALFORMED_QUERY"
        assert error.message == layout(text, 1, column, f"duplicate field selected: {duplicate}")


# -- child subqueries ----------------------------------------------------------------------------


def test_child_subqueries(run: Run, data: FakeData) -> None:
    result = run(
        "SELECT Name, (SELECT Name, Line_Number__c FROM Lines__r ORDER BY Line_Number__c) "
        "FROM Billing_Invoice__c ORDER BY Name"
    )
    assert data.scans == 2
    lines = [row["Lines__r"] for row in result.rows]
    assert lines[0] == {
        "totalSize": 2,
        "done": True,
        "records": [
            {"attributes": {"type": "Billing_Invoice_Line__c"}, "Name": "L-2", "Line_Number__c": 1},
            {"attributes": {"type": "Billing_Invoice_Line__c"}, "Name": "L-1", "Line_Number__c": 2},
        ],
    }
    assert [record["Name"] for record in lines[1]["records"]] == ["L-3"]
    assert lines[2] is None
    assert list(result.rows[0]) == ["attributes", "Name", "Lines__r"]


def test_child_subqueries_filter_sort_limit_and_follow_parents(run: Run) -> None:
    rows = run(
        "SELECT Id, (SELECT l.Name, Invoice__r.Account__r.Name FROM Lines__r l WHERE l.Amount__c > 30 "
        f"ORDER BY Name DESC LIMIT 1) FROM Billing_Invoice__c WHERE Id IN ('{I1}', '{I2}')"
    ).rows
    assert rows[0]["Lines__r"] == {
        "totalSize": 1,
        "done": True,
        "records": [
            {
                "attributes": {"type": "Billing_Invoice_Line__c"},
                "Name": "L-2",
                "Invoice__r": {
                    "attributes": {"type": "Billing_Invoice__c"},
                    "Account__r": {"attributes": {"type": "Account"}, "Name": "Acme Ltd"},
                },
            }
        ],
    }
    assert rows[1]["Lines__r"]["records"][0]["Name"] == "L-3"


def test_child_subqueries_under_queryall_include_deleted_children(run: Run) -> None:
    rows = run(
        f"SELECT (SELECT Id FROM Lines__r) FROM Billing_Invoice__c WHERE Id = '{I1}'", include_deleted=True
    ).rows
    assert [record["Id"] for record in rows[0]["Lines__r"]["records"]] == [L1, L2, L4]
    plain = run(f"SELECT (SELECT Id FROM Lines__r) FROM Billing_Invoice__c WHERE Id = '{I1}'").rows
    assert [record["Id"] for record in plain[0]["Lines__r"]["records"]] == [L1, L2]


def test_child_relationship_keys(run: Run) -> None:
    # A schema naming the canonical relationship (3-tuple) gets canonical keys...
    row = run(f"SELECT (SELECT Name FROM INVOICES__R) FROM Account WHERE Id = '{A1}'").rows[0]
    assert list(row) == ["attributes", "Invoices__r"]
    assert row["Invoices__r"]["totalSize"] == 2
    # ...one answering the seam's 2-tuple gets the name as written.
    row = run(f"SELECT (SELECT LastName FROM contacts) FROM Account WHERE Id = '{A2}'").rows[0]
    assert row["contacts"] == {
        "totalSize": 1,
        "done": True,
        "records": [{"attributes": {"type": "Contact"}, "LastName": "Beta"}],
    }


def test_child_subquery_errors(run: Run) -> None:
    text = "SELECT Id, (SELECT Id FROM Lines) FROM Billing_Invoice__c"
    error = failure(run, text)
    assert error.code == "INVALID_TYPE"
    assert error.message == layout(
        text,
        1,
        28,
        "Didn't understand relationship 'Lines' in FROM part of query call. If you are attempting to use a "
        "custom relationship, be sure to append the '__r' after the custom relationship name. Please reference "
        "your WSDL or the describe call for the appropriate names.",
    )
    error = failure(run, "SELECT Id, (SELECT Foo FROM Lines__r) FROM Billing_Invoice__c")
    assert error.code == "INVALID_FIELD"
    assert "No such column 'Foo' on entity 'Billing_Invoice_Line__c'" in error.message


# -- COUNT() ---------------------------------------------------------------------------------------


def test_count(run: Run) -> None:
    assert run("SELECT COUNT() FROM Account") == QueryResult(4, [], True, "Account")
    assert run("select count() from account where Active__c = true").total_size == 2
    assert run("SELECT COUNT() FROM Account LIMIT 3").total_size == 3
    assert run("SELECT COUNT() FROM Account LIMIT 3 OFFSET 2").total_size == 2
    assert run("SELECT COUNT() FROM Account", include_deleted=True).total_size == 5
    assert run("SELECT COUNT() FROM Account WHERE Name = 'nobody'").total_size == 0


# -- ORDER BY, LIMIT, OFFSET ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("Name", ["A1", "A2", "A3", "A4"]),  # case-insensitive: 'beta corp' sorts among capitals
        ("Name ASC", ["A1", "A2", "A3", "A4"]),
        ("Name DESC", ["A4", "A3", "A2", "A1"]),
        ("AnnualRevenue", ["A2", "A4", "A3", "A1"]),  # nulls first by default
        ("AnnualRevenue DESC", ["A2", "A1", "A3", "A4"]),  # ...in either direction
        ("AnnualRevenue NULLS LAST", ["A4", "A3", "A1", "A2"]),
        ("AnnualRevenue DESC NULLS LAST", ["A1", "A3", "A4", "A2"]),
        ("AnnualRevenue ASC NULLS FIRST", ["A2", "A4", "A3", "A1"]),
        ("Billing_Id__c NULLS LAST", ["A1", "A2", "A3", "A4"]),  # '' is null; ties keep scan order
        ("Active__c", ["A2", "A3", "A1", "A4"]),  # null booleans are false; stable ties
        ("Active__c DESC", ["A1", "A4", "A2", "A3"]),
        ("Active__c DESC, Name DESC", ["A4", "A1", "A3", "A2"]),
        ("Type", ["A4", "A2", "A1", "A3"]),  # picklist order: Prospect, Customer, Partner
        ("Industry", ["A3", "A4", "A2", "A1"]),  # no listed values: alphabetical, case-insensitive
        ("Owner.Name, Name", ["A3", "A2", "A1", "A4"]),
        ("Owner.Name DESC NULLS LAST, Name DESC", ["A4", "A1", "A2", "A3"]),
        ("Parent.Name NULLS LAST, Id DESC", ["A2", "A3", "A4", "A1"]),
        ("CreatedDate DESC", ["A2", "A3", "A1", "A4"]),
        ("Contract_Start__c", ["A3", "A4", "A1", "A2"]),
        ("Opening_Time__c DESC NULLS LAST", ["A4", "A1", "A2", "A3"]),
        ("Id DESC", ["A4", "A3", "A2", "A1"]),
        ("NumberOfEmployees", ["A2", "A3", "A1", "A4"]),
    ],
)
def test_order_by(run: Run, order: str, expected: list[str]) -> None:
    assert labels(run(f"SELECT Id FROM Account ORDER BY {order}")) == expected


@pytest.mark.parametrize(
    ("clauses", "expected"),
    [
        ("ORDER BY Name LIMIT 2", ["A1", "A2"]),
        ("ORDER BY Name LIMIT 2 OFFSET 1", ["A2", "A3"]),
        ("ORDER BY Name OFFSET 3", ["A4"]),
        ("ORDER BY Name OFFSET 10", []),
        ("ORDER BY Name LIMIT 0", []),
        ("LIMIT 2", ["A1", "A2"]),
        ("LIMIT 1 OFFSET 2", ["A3"]),
        ("WHERE Name != null ORDER BY Name DESC LIMIT 1", ["A4"]),
    ],
)
def test_limit_and_offset(run: Run, clauses: str, expected: list[str]) -> None:
    result = run(f"SELECT Id FROM Account {clauses}")
    assert labels(result) == expected
    assert result.total_size == len(expected)


class _CountingData(FakeData):
    """Counts the records the engine pulls from scans."""

    seen = 0

    def scan(self, sobject: str, include_deleted: bool) -> Iterator[dict[str, Any]]:
        for row in super().scan(sobject, include_deleted):
            self.seen += 1
            yield row


def test_an_unsorted_limit_stops_scanning_early() -> None:
    data = _CountingData(build_data().records)
    result = execute(parse("SELECT Id FROM Account LIMIT 2"), build_schema(), data)
    assert result.total_size == 2
    assert data.seen == 2


# -- schema errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "code", "description"),
    [
        (
            "SELECT Id FROM Acount",
            (1, 16),
            "INVALID_TYPE",
            "sObject type 'Acount' is not supported. If you are attempting to use a custom object, be sure to "
            "append the '__c' after the entity name. Please reference your WSDL or the describe call for the "
            "appropriate names.",
        ),
        (
            "SELECT Id, Foo FROM Account",
            (1, 12),
            "INVALID_FIELD",
            "No such column 'Foo' on entity 'Account'. If you are attempting to use a custom field, be sure to "
            "append the '__c' after the custom field name. Please reference your WSDL or the describe call for "
            "the appropriate names.",
        ),
        (
            "SELECT Id FROM Billing_Invoice__c WHERE Account__c.Name = 'x'",
            (1, 41),
            "INVALID_FIELD",
            "Didn't understand relationship 'Account__c' in field path. If you are attempting to use a custom "
            "relationship, be sure to append the '__r' after the custom relationship name. Please reference your "
            "WSDL or the describe call for the appropriate names.",
        ),
        (
            "SELECT Id FROM Contact ORDER BY Account.Foo__c",
            (1, 33),
            "INVALID_FIELD",
            "No such column 'Foo__c' on entity 'Account'. If you are attempting to use a custom field, be sure "
            "to append the '__c' after the custom field name. Please reference your WSDL or the describe call "
            "for the appropriate names.",
        ),
        (
            "SELECT Id\nFROM Account\nWHERE Nme = 'x'",
            (3, 7),
            "INVALID_FIELD",
            "No such column 'Nme' on entity 'Account'. If you are attempting to use a custom field, be sure to "
            "append the '__c' after the custom field name. Please reference your WSDL or the describe call for "
            "the appropriate names.",
        ),
        (
            "SELECT Id FROM Account WHERE Description = 'x'",
            (1, 30),
            "INVALID_FIELD",
            "field 'Description' can not be filtered in a query call",
        ),
        (
            "SELECT Id FROM Account WHERE Logo__c != null",
            (1, 30),
            "INVALID_FIELD",
            "field 'Logo__c' can not be filtered in a query call",
        ),
        (
            "SELECT Id FROM Account ORDER BY Name, Description",
            (1, 39),
            "INVALID_FIELD",
            "field 'Description' can not be sorted in a query call",
        ),
        (
            "SELECT Id FROM Account ORDER BY Regions__c",
            (1, 33),
            "INVALID_FIELD",
            "field 'Regions__c' can not be sorted in a query call",
        ),
    ],
)
def test_schema_errors(run: Run, text: str, position: tuple[int, int], code: str, description: str) -> None:
    error = failure(run, text)
    assert error.code == code
    assert error.message == layout(text, *position, description)
    assert str(error) == f"{code}: {error.message}"


def test_the_query_keeps_the_name_as_written_and_the_result_the_canonical_one(run: Run) -> None:
    assert parse("SELECT Id FROM account").sobject == "account"
    assert run("SELECT Id FROM account").sobject == "Account"


# -- JSON helpers ---------------------------------------------------------------------------------


def test_attach_urls_adds_salesforce_record_urls_everywhere(run: Run) -> None:
    result = run(
        "SELECT Id, Owner.Name, (SELECT Name FROM Invoices__r ORDER BY Name LIMIT 1) FROM Account "
        f"WHERE Id = '{A1}'"
    )
    attach_urls(result.rows, "/services/data/v59.0")
    row = result.rows[0]
    assert row["attributes"] == {"type": "Account", "url": f"/services/data/v59.0/sobjects/Account/{A1}"}
    assert row["Owner"]["attributes"]["url"] == f"/services/data/v59.0/sobjects/User/{U1}"
    child = row["Invoices__r"]["records"][0]["attributes"]
    assert child == {
        "type": "Billing_Invoice__c",
        "url": f"/services/data/v59.0/sobjects/Billing_Invoice__c/{I1}",
    }
    assert json.loads(json.dumps(row))["attributes"]["url"].endswith(A1)
    assert list(row["attributes"]) == ["type", "url"]


def test_record_attributes_survive_copies() -> None:
    attributes = RecordAttributes("Account", A1)
    for clone in (copy.deepcopy(attributes), copy.copy(attributes), pickle.loads(pickle.dumps(attributes))):  # noqa: S301
        assert clone == {"type": "Account"}
        assert clone.record_id == A1


def test_orphans_without_parents_get_none_everywhere(run: Run) -> None:
    row = run(f"SELECT Account.Owner.Manager.Name, Account.Parent.Name FROM Contact WHERE Id = '{C2}'").rows[
        0
    ]
    assert row == {"attributes": {"type": "Contact"}, "Account": None}
