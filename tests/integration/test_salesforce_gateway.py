"""The Salesforce gateway against the local org, over HTTPS: collections, Bulk API 2.0, the budget governor."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from billsync.ports import BudgetReserveReached, SfUpsert, SfWriteResult, WritePlan
from billsync.salesforce.auth import SalesforceCredentials
from billsync.salesforce.bulk import parse_error
from billsync.salesforce.gateway import SalesforceGateway

from local.salesforce import SalesforceEmulator


def gateway(salesforce: SalesforceEmulator, **options: object) -> SalesforceGateway:
    credentials = SalesforceCredentials.from_secret(
        {
            "auth": "client_credentials",
            "login_url": salesforce.base_url,
            "consumer_key": salesforce.credentials["consumer_key"],
            "consumer_secret": salesforce.credentials["consumer_secret"],
        }
    )
    return SalesforceGateway(credentials, ca_file=salesforce.ca_file, **options)  # type: ignore[arg-type]


def invoices_and_lines() -> WritePlan:
    """Invoices of two accounts (one missing), one refused as too long, each with two lines."""
    invoices, lines = [], []
    for n in range(6):
        account = "main:missing" if n == 5 else f"main:a{n % 2}"
        fields: dict[str, object] = {
            "Billing_Id__c": f"main:i{n}",
            "Name": f'INV-{n}, "quoted"\nsecond line',
            "Account__r": {"Billing_Id__c": account},
            "Subtotal__c": Decimal("10.50") * n,
            "Invoice_Date__c": datetime(2026, 1, n + 1, tzinfo=UTC).date(),
            "Billing_Last_Synced__c": datetime(2026, 1, 1, 12, 30, tzinfo=UTC),
            "Billing_Deleted__c": False,
            "Purchase_Order__c": None,
            "Notes__c": "N" * 40_000 if n == 4 else "fine",
        }
        invoices.append(SfUpsert(f"i{n}", "Billing_Invoice__c", "Billing_Id__c", fields))
        for m in range(2):
            values = {
                "Billing_Id__c": f"main:l{n}-{m}",
                "Description__c": f"line {m}",
                "Quantity__c": Decimal(m + 1),
                "Invoice__r": {"Billing_Id__c": f"main:i{n}"},
            }
            lines.append(SfUpsert(f"i{n}/lines/{m}", "Billing_Invoice_Line__c", "Billing_Id__c", values))
    plan = WritePlan()
    plan.add_stage(invoices)
    plan.add_stage(lines)
    return plan


def comparable(results: dict[str, SfWriteResult]) -> dict[str, tuple[object, ...]]:
    return {
        key: (
            r.ok,
            r.created,
            bool(r.id),
            r.error.code if r.error else None,
            r.error.fields if r.error else (),
        )
        for key, r in results.items()
    }


def seed_accounts(salesforce: SalesforceEmulator) -> None:
    salesforce.control.seed(
        "Account", [{"Name": f"Account {n}", "Billing_Id__c": f"main:a{n}"} for n in range(2)]
    )


def test_a_bulk_job_answers_record_by_record_exactly_as_collections_do(
    salesforce: SalesforceEmulator,
) -> None:
    seed_accounts(salesforce)
    by_collections = gateway(salesforce).write(invoices_and_lines())
    collections_rows = salesforce.control.dump("Billing_Invoice__c")
    salesforce.control.reset()
    seed_accounts(salesforce)
    by_bulk = gateway(salesforce, bulk_threshold=5).write(invoices_and_lines())
    calls = salesforce.control.calls()["calls"]
    assert "POST /composite" not in calls
    assert calls["POST /jobs/ingest"] == 2  # one job per object
    assert comparable(by_bulk) == comparable(by_collections)
    assert by_bulk["i5"].error and by_bulk["i5"].error.code == "PARENT_NOT_FOUND"
    assert by_bulk["i4"].error and by_bulk["i4"].error.code == "STRING_TOO_LONG"
    assert by_bulk["i4"].error.fields == ("Notes__c",)
    assert by_bulk["i5/lines/0"].error and by_bulk["i5/lines/0"].error.code == "PARENT_NOT_FOUND"
    # Each id is the record's own, and the values landed exactly as collections write them.
    bulk_rows = {r["Billing_Id__c"]: r for r in salesforce.control.dump("Billing_Invoice__c")}
    assert {by_bulk[f"i{n}"].id for n in range(4)} == {bulk_rows[f"main:i{n}"]["Id"] for n in range(4)}
    fields = ("Name", "Subtotal__c", "Invoice_Date__c", "Billing_Last_Synced__c", "Purchase_Order__c")
    for row in collections_rows:
        assert {f: bulk_rows[row["Billing_Id__c"]][f] for f in fields} == {f: row[f] for f in fields}
    # A second run updates: nothing is created again.
    again = gateway(salesforce, bulk_threshold=5).write(invoices_and_lines())
    assert not any(r.created for r in again.values())
    assert all(again[f"i{n}"].ok for n in range(4))


def test_rows_never_processed_come_back_as_retryable(salesforce: SalesforceEmulator) -> None:
    seed_accounts(salesforce)
    salesforce.control.update_settings({"bulk_chunk_size": 2})
    salesforce.control.faults.update({"latency_ms": 300})
    results = gateway(salesforce, bulk_threshold=5, bulk_wait_seconds=0.4).write(invoices_and_lines())
    waiting = [r for r in results.values() if r.error and r.error.code == "BULK_UNPROCESSED"]
    assert waiting
    assert all(r.error and r.error.retryable for r in waiting)
    assert len(results) == 18


def test_the_budget_governor_refuses_a_whole_plan_it_cannot_finish(salesforce: SalesforceEmulator) -> None:
    seed_accounts(salesforce)
    salesforce.control.update_settings({"daily_api_limit": 30})  # reserve: 3 requests
    sf = gateway(salesforce, reserve_percent=10, bulk_threshold=5)
    first = sf.write(invoices_and_lines())  # its two jobs reserve 20 requests; they cost fewer
    assert first["i0"].ok
    with pytest.raises(BudgetReserveReached) as refused:
        sf.write(invoices_and_lines())
    used_before = salesforce.control.calls()["api_usage"]["used"]
    assert refused.value.limit == 30 and refused.value.reserve == 3
    assert used_before <= 27
    # Nothing half-written: every job that started also finished.
    jobs = salesforce.control.calls()["calls"]
    assert jobs["POST /jobs/ingest"] == jobs["PATCH /jobs/ingest/{id}"]


@pytest.mark.parametrize(
    ("text", "code", "message", "fields"),
    [
        (
            "STRING_TOO_LONG:Notes: data value too large:Notes__c --",
            "STRING_TOO_LONG",
            "Notes: data value too large",
            ("Notes__c",),
        ),
        (
            "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name,Account__c --",
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [Name]",
            ("Name", "Account__c"),
        ),
        (
            "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id --",
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id",
            (),
        ),
        (
            "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record: a01 --",
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access to this record: a01",
            (),
        ),
    ],
)
def test_bulk_error_cells_are_read_like_collection_errors(
    text: str, code: str, message: str, fields: tuple[str, ...]
) -> None:
    error = parse_error(text)
    assert (error.code, error.message, error.fields) == (code, message, fields)
    assert error.retryable is (code == "UNABLE_TO_LOCK_ROW")
