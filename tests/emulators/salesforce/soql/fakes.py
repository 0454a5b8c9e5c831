"""A tiny in-memory schema and record store implementing the SOQL engine's protocols."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from local.salesforce.soql import to18

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def make_id(prefix: str, number: int) -> str:
    """A valid 18-character Id: key prefix, pod ``5f``, ``0``, a base-62 counter, checksum.

    Counters are spread out so Ids mix upper- and lower-case letters like real ones.
    """
    number = 3_000_000_000_000 + number * 104_729_003
    digits = ""
    while True:
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
        if number == 0:
            break
    return to18(prefix + "5f0" + digits.rjust(9, "0"))


@dataclass(frozen=True)
class FakeField:
    name: str
    type: str
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    filterable: bool = True
    sortable: bool = True
    picklist_values: tuple[str, ...] = ()


class FakeObject:
    def __init__(
        self, name: str, fields: Iterable[FakeField], children: Mapping[str, tuple[str, ...]] | None = None
    ) -> None:
        self.name = name
        self.fields = {f.name.lower(): f for f in fields}
        self.relationships = {
            f.relationship_name.lower(): f for f in self.fields.values() if f.relationship_name
        }
        self.children = {key.lower(): value for key, value in (children or {}).items()}

    def get_field(self, name: str) -> FakeField | None:
        return self.fields.get(name.lower())

    def get_relationship(self, name: str) -> FakeField | None:
        return self.relationships.get(name.lower())

    def get_child_relationship(self, name: str) -> tuple[str, str] | None:
        found = self.children.get(name.lower())
        return found  # type: ignore[return-value]


class FakeSchema:
    def __init__(self, objects: Iterable[FakeObject]) -> None:
        self.objects = {obj.name.lower(): obj for obj in objects}

    def get_object(self, name: str) -> FakeObject | None:
        return self.objects.get(name.lower())


class FakeData:
    def __init__(self, records: Mapping[str, list[dict[str, Any]]]) -> None:
        self.records = {name: list(rows) for name, rows in records.items()}
        self.by_id = {name: {row["Id"]: row for row in rows} for name, rows in self.records.items()}
        self.scans = 0
        self.gets = 0

    def scan(self, sobject: str, include_deleted: bool) -> Iterator[dict[str, Any]]:
        self.scans += 1
        for row in self.records.get(sobject, []):
            if include_deleted or not row["IsDeleted"]:
                yield row

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        self.gets += 1
        return self.by_id.get(sobject, {}).get(record_id)


def _system(name: str) -> list[FakeField]:
    return [
        FakeField("Id", "id"),
        FakeField("IsDeleted", "boolean"),
        FakeField("Name", "string"),
        FakeField("CreatedDate", "datetime"),
        FakeField("SystemModstamp", "datetime"),
    ]


def build_schema() -> FakeSchema:
    user = FakeObject(
        "User",
        [
            *_system("User"),
            FakeField("Email", "email"),
            FakeField("ManagerId", "reference", ("User",), "Manager"),
        ],
    )
    account = FakeObject(
        "Account",
        [
            *_system("Account"),
            FakeField("AnnualRevenue", "currency"),
            FakeField("Active__c", "boolean"),
            FakeField("Type", "picklist", picklist_values=("Prospect", "Customer", "Partner")),
            FakeField("Industry", "picklist"),
            FakeField("Billing_Id__c", "string"),
            FakeField("OwnerId", "reference", ("User",), "Owner"),
            FakeField("ParentId", "reference", ("Account",), "Parent"),
            FakeField("Description", "textarea", filterable=False, sortable=False),
            FakeField("Regions__c", "multipicklist"),
            FakeField("Contract_Start__c", "date"),
            FakeField("NumberOfEmployees", "int"),
            FakeField("Opening_Time__c", "time"),
            FakeField("Website", "url"),
            FakeField("Logo__c", "base64", filterable=False, sortable=False),
        ],
        # One 2-tuple (the seam) and one 3-tuple carrying the canonical relationship name.
        {
            "Contacts": ("Contact", "AccountId"),
            "Invoices__r": ("Billing_Invoice__c", "Account__c", "Invoices__r"),
        },
    )
    contact = FakeObject(
        "Contact",
        [
            *_system("Contact"),
            FakeField("LastName", "string"),
            FakeField("Email", "email"),
            FakeField("AccountId", "reference", ("Account",), "Account"),
            FakeField("Birthdate", "date"),
        ],
    )
    invoice = FakeObject(
        "Billing_Invoice__c",
        [
            *_system("Billing_Invoice__c"),
            FakeField("Account__c", "reference", ("Account",), "Account__r"),
            FakeField("Amount__c", "currency"),
            FakeField("Status__c", "picklist"),
            FakeField("Due_Date__c", "date"),
        ],
        {"Lines__r": ("Billing_Invoice_Line__c", "Invoice__c", "Lines__r")},
    )
    line = FakeObject(
        "Billing_Invoice_Line__c",
        [
            *_system("Billing_Invoice_Line__c"),
            FakeField("Invoice__c", "reference", ("Billing_Invoice__c",), "Invoice__r"),
            FakeField("Line_Number__c", "double"),
            FakeField("Amount__c", "currency"),
        ],
    )
    task = FakeObject(
        "Task",
        [
            *_system("Task"),
            FakeField("Subject", "string"),
            FakeField("WhatId", "reference", ("Account", "Billing_Invoice__c"), "What"),
        ],
    )
    return FakeSchema([user, account, contact, invoice, line, task])


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


U1, U2 = make_id("005", 1), make_id("005", 2)
A1, A2, A3, A4, A5 = (make_id("001", n) for n in range(1, 6))
C1, C2, C3 = (make_id("003", n) for n in range(1, 4))
I1, I2, I3 = (make_id("a00", n) for n in range(1, 4))
L1, L2, L3, L4 = (make_id("a01", n) for n in range(1, 5))
T1, T2, T3 = (make_id("00T", n) for n in range(1, 4))

ODD_NAME = "O'Brien \\ Sons\nLtd"


def _row(record_id: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"Id": record_id, "IsDeleted": False}
    row.update(values)
    return row


def build_data() -> FakeData:
    return FakeData(
        {
            "User": [
                _row(U1, Name="Sync User", Email="sync@example.com", ManagerId=U2),
                _row(U2, Name="Boss", Email="boss@example.com", ManagerId=None),
            ],
            "Account": [
                _row(
                    A1,
                    Name="Acme Ltd",
                    AnnualRevenue=Decimal("125000.00"),
                    Active__c=True,
                    Type="Customer",
                    Industry="Retail",
                    Billing_Id__c="CUST-1001",
                    OwnerId=U1,
                    ParentId=None,
                    Description="Our oldest customer",
                    Regions__c="EMEA;APAC",
                    Contract_Start__c=date(2024, 1, 1),
                    NumberOfEmployees=50,
                    Opening_Time__c=time(9, 0),
                    CreatedDate=_dt("2024-01-15T10:30:00"),
                    SystemModstamp=_dt("2024-02-01T08:00:12"),
                ),
                _row(
                    A2,
                    Name="beta corp",
                    AnnualRevenue=None,
                    Active__c=False,
                    Type="Prospect",
                    Industry="banking",
                    Billing_Id__c="CUST-1002",
                    OwnerId=U2,
                    ParentId=A1,
                    Description=None,
                    Regions__c="EMEA",
                    Contract_Start__c=date(2024, 3, 1),
                    NumberOfEmployees=None,
                    Opening_Time__c=time(8, 30),
                    CreatedDate=_dt("2024-03-01T00:00:00"),
                    SystemModstamp=_dt("2024-03-01T00:00:00"),
                ),
                _row(
                    A3,
                    Name="Gamma 50% Off_Sale",
                    AnnualRevenue=Decimal("99.5"),
                    Active__c=None,
                    Type="Partner",
                    Industry=None,
                    Billing_Id__c=None,
                    OwnerId=None,
                    ParentId=A2,
                    Description="x" * 300,
                    Regions__c=None,
                    Contract_Start__c=None,
                    NumberOfEmployees=7,
                    Opening_Time__c=None,
                    CreatedDate=_dt("2024-02-29T23:59:59"),
                    SystemModstamp=_dt("2024-03-01T12:00:00"),
                ),
                _row(
                    A4,
                    Name=ODD_NAME,
                    AnnualRevenue=Decimal(0),
                    Active__c=True,
                    Type=None,
                    Industry="Apparel",
                    Billing_Id__c="",
                    OwnerId=U1,
                    ParentId=None,
                    Description=None,
                    Regions__c="APAC;AMER",
                    Contract_Start__c=date(2023, 12, 31),
                    NumberOfEmployees=1000,
                    Opening_Time__c=time(10, 15, 30),
                    CreatedDate=_dt("2023-12-31T23:00:00"),
                    SystemModstamp=_dt("2024-01-01T00:00:00"),
                ),
                _row(
                    A5,
                    IsDeleted=True,
                    Name="Deleted Co",
                    AnnualRevenue=Decimal(5),
                    Active__c=True,
                    Type="Customer",
                    Billing_Id__c="CUST-9999",
                    OwnerId=U1,
                    CreatedDate=_dt("2024-01-02T00:00:00"),
                    SystemModstamp=_dt("2024-04-01T00:00:00"),
                ),
            ],
            "Contact": [
                _row(C1, Name="Ana Silva", LastName="Silva", Email="ana@example.com", AccountId=A1),
                _row(C2, Name="Bob Orphan", LastName="Orphan", Email=None, AccountId=None),
                _row(C3, Name="Cy Beta", LastName="Beta", Email="cy@example.com", AccountId=A2),
            ],
            "Billing_Invoice__c": [
                _row(I1, Name="INV-1", Account__c=A1, Amount__c=Decimal("100"), Status__c="Paid"),
                _row(I2, Name="INV-2", Account__c=A1, Amount__c=Decimal("250.50"), Status__c="Open"),
                _row(I3, Name="INV-3", Account__c=A2, Amount__c=Decimal("10"), Status__c="Open"),
            ],
            "Billing_Invoice_Line__c": [
                _row(L1, Name="L-1", Invoice__c=I1, Line_Number__c=Decimal(2), Amount__c=Decimal(60)),
                _row(L2, Name="L-2", Invoice__c=I1, Line_Number__c=Decimal(1), Amount__c=Decimal(40)),
                _row(L3, Name="L-3", Invoice__c=I2, Line_Number__c=Decimal(1), Amount__c=Decimal("250.50")),
                _row(
                    L4, IsDeleted=True, Name="L-4", Invoice__c=I1, Line_Number__c=Decimal(3), Amount__c=None
                ),
            ],
            "Task": [
                _row(T1, Name="t1", Subject="Call", WhatId=A1),
                _row(T2, Name="t2", Subject="Chase", WhatId=I1),
                _row(T3, Name="t3", Subject="Idle", WhatId=None),
            ],
        }
    )
