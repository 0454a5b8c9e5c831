"""Large pulls by Bulk API 2.0 and the API budget governor, on the local stack."""

from __future__ import annotations

import json
import time
from typing import Any

from local.stack import DevStack
from tests.e2e.helpers import FUNCTIONS, dead_letters, linked_customer, pull, records, sync_log


def quiet_invoices(stack: DevStack, customer: int, count: int, **extra: Any) -> list[int]:
    """Invoices that exist in Invoiced without ever having sent a webhook."""
    assert stack.invoiced
    data = {
        "invoices": [
            {
                "customer": customer,
                "items": [
                    {"name": f"Item {n}", "quantity": 1, "unit_cost": n + 1},
                    {"name": f"Extra {n}", "quantity": 2, "unit_cost": 3},
                ],
                **extra,
            }
            for n in range(count)
        ]
    }
    ids: list[int] = stack.invoiced.control.seed(data)["invoices"]
    return ids


def test_a_pull_over_the_bulk_threshold_lands_by_bulk_api_with_failures_mapped_back(stack: DevStack) -> None:
    assert stack.salesforce
    stack.reconfigure({"salesforce": {"bulk_threshold": 20}})
    customer, account = linked_customer(stack)
    good = quiet_invoices(stack, customer, 30)
    # Invoiced takes long notes; Notes__c holds 32,768 characters: Salesforce refuses this one.
    [refused] = quiet_invoices(stack, customer, 1, notes="N" * 40_000)
    result = pull(stack, "invoice", "to_salesforce")
    assert result["streams"][0]["outcomes"] == {"applied": 30, "failed": 1}, result
    calls = stack.salesforce.control.calls()["calls"]
    assert calls["POST /jobs/ingest"] == 2  # invoices, then their lines
    assert "POST /composite" not in calls
    invoices = {r["Billing_Id__c"]: r for r in records(stack, "Billing_Invoice__c")}
    assert set(invoices) == {f"main:{i}" for i in good}
    assert {r["Account__c"] for r in invoices.values()} == {account}
    lines = records(stack, "Billing_Invoice_Line__c")
    assert len(lines) == 60
    assert {line["Invoice__c"] for line in lines} == {r["Id"] for r in invoices.values()}
    [letter] = dead_letters(stack, "invoice")
    assert letter["change"]["id"] == str(refused)
    assert letter["error"]["code"] == "STRING_TOO_LONG"
    assert letter["error"]["fields"] == ["Notes__c"]
    log = sync_log(stack, "invoice")
    assert sorted(e["outcome"] for e in log) == ["applied"] * 30 + ["failed"]
    applied = {e["record_id"]: e for e in log if e["outcome"] == "applied"}
    assert {e["salesforce_id"] for e in applied.values()} == {r["Id"] for r in invoices.values()}
    # A second pull finds nothing new to write: no job at all.
    stack.salesforce.control.reset_calls()
    again = pull(stack, "invoice", "to_salesforce")
    assert set(again["streams"][0]["outcomes"]) <= {"skipped_unchanged"}
    assert "POST /jobs/ingest" not in stack.salesforce.control.calls()["calls"]


def test_the_budget_governor_stops_a_pull_cleanly_and_the_next_run_resumes(stack: DevStack) -> None:
    assert stack.salesforce and stack.runtime
    stack.reconfigure({"salesforce": {"bulk_threshold": 50}, "sync": {"page_size": 50}})
    customer, _ = linked_customer(stack)
    ids = quiet_invoices(stack, customer, 250)
    # A small org whose other integrations already spent most of the day: room for two batches.
    stack.salesforce.control.update_settings({"daily_api_limit": 40})  # reserve: 4 requests
    stopped = pull(stack, "invoice", "to_salesforce")
    [stream] = stopped["streams"]
    assert stream["status"] == "budget", stream
    assert "budget reserve" in stream["detail"]
    usage = stack.salesforce.control.calls()["api_usage"]
    assert usage["used"] <= 36  # the reserve was never touched
    written = records(stack, "Billing_Invoice__c")
    assert len(written) == 100 == stream["records"]  # whole batches only
    assert len(records(stack, "Billing_Invoice_Line__c")) == 200
    assert dead_letters(stack, "invoice") == []
    assert _metric_logged(stack, "ApiBudgetReserveReached")
    # The next day (a fresh budget), the next run resumes after the last whole batch.
    stack.salesforce.control.update_settings({"daily_api_limit": 100_000})
    resumed = pull(stack, "invoice", "to_salesforce")
    assert resumed["streams"][0]["status"] == "done", resumed
    invoices = records(stack, "Billing_Invoice__c")
    assert sorted(r["Billing_Id__c"] for r in invoices) == sorted(f"main:{i}" for i in ids)
    assert len(records(stack, "Billing_Invoice_Line__c")) == 500
    outcomes = [e["outcome"] for e in sync_log(stack, "invoice")]
    assert outcomes.count("applied") == 250
    assert set(outcomes) <= {"applied", "skipped_unchanged"}


def _metric_logged(stack: DevStack, name: str, timeout: float = 10.0) -> bool:
    """Whether the invoice function emitted the metric (CloudWatch embedded metric format on stdout)."""
    assert stack.runtime
    path = stack.runtime.logs_path(FUNCTIONS["invoice"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines() if path.exists() else []:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            metrics = entry.get("_aws", {}).get("CloudWatchMetrics", [{}])
            if any(m.get("Name") == name for block in metrics for m in block.get("Metrics", [])):
                return True
        time.sleep(0.2)
    return False
