"""Webhook → API → webhook function → object queue → object function → Salesforce, on the local stack."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal

import requests

from local.stack import DevStack
from tests.e2e.helpers import dead_letters, linked_customer, one, records, settle, sync_log


def post(
    stack: DevStack, body: bytes, headers: dict[str, str] | None = None, source: str = "main"
) -> requests.Response:
    assert stack.runtime
    url = f"{stack.runtime.api_url}/webhooks/{source}"
    return requests.post(
        url, data=body, headers={"Content-Type": "application/json", **(headers or {})}, timeout=10
    )


def signed(stack: DevStack, body: bytes) -> dict[str, str]:
    return {
        "X-Invoiced-Signature": hmac.new(
            stack.settings.webhook_secret.encode(), body, hashlib.sha256
        ).hexdigest()
    }


def test_an_invoiced_invoice_reaches_salesforce_with_its_lines_and_account(stack: DevStack) -> None:
    assert stack.invoiced
    customer, account = linked_customer(stack)
    invoice = stack.invoiced.control.act(
        "create",
        "invoices",
        data={
            "customer": customer,
            "purchase_order": "PO-7",
            "items": [
                {"name": "Plan", "quantity": 2, "unit_cost": 50},
                {"name": "Setup", "quantity": 1, "unit_cost": 10.15},
            ],
        },
    )
    settle(stack)
    synced = one(stack, "Billing_Invoice__c", Billing_Id__c=f"main:{invoice['id']}")
    assert synced["Account__c"] == account
    assert synced["Invoice_Number__c"] == invoice["number"]
    assert Decimal(str(synced["Total__c"])) == Decimal("110.15")
    assert synced["Purchase_Order__c"] == "PO-7"
    assert synced["Billing_Origin__c"] == "Billing"
    lines = sorted(records(stack, "Billing_Invoice_Line__c"), key=lambda r: r["Line_Number__c"])
    assert [(line["Name"], line["Invoice__c"]) for line in lines] == [
        ("Plan", synced["Id"]),
        ("Setup", synced["Id"]),
    ]
    assert [e["outcome"] for e in sync_log(stack, "invoice")] == ["applied"]


def test_an_update_and_a_removed_line_follow(stack: DevStack) -> None:
    assert stack.invoiced
    customer, _ = linked_customer(stack)
    items = [
        {"name": "Plan", "quantity": 1, "unit_cost": 100},
        {"name": "Extra", "quantity": 1, "unit_cost": 5},
    ]
    invoice = stack.invoiced.control.act("create", "invoices", data={"customer": customer, "items": items})
    settle(stack)
    kept = invoice["items"][0]
    stack.invoiced.control.act(
        "update",
        "invoices",
        invoice["id"],
        data={"items": [{"id": kept["id"], "name": "Plan", "quantity": 3, "unit_cost": 100}]},
    )
    settle(stack)
    synced = one(stack, "Billing_Invoice__c", Billing_Id__c=f"main:{invoice['id']}")
    assert Decimal(str(synced["Total__c"])) == Decimal("300")
    lines = records(stack, "Billing_Invoice_Line__c")
    assert [(line["Name"], line["Quantity__c"]) for line in lines] == [("Plan", 3)]


def test_forged_unsigned_malformed_and_oversized_webhooks_are_refused(stack: DevStack) -> None:
    body = json.dumps(
        {"id": 1, "type": "invoice.created", "timestamp": 1, "data": {"object": {"id": 1}}}
    ).encode()
    assert post(stack, body).status_code == 401
    assert post(stack, body, {"X-Invoiced-Signature": "0" * 64}).status_code == 401
    forged = hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
    assert post(stack, body, {"X-Invoiced-Signature": forged}).status_code == 401
    malformed = b'{"id": 1, "type": "invoice.created"'
    answer = post(stack, malformed, signed(stack, malformed))
    assert answer.status_code == 400
    assert "not JSON" in answer.json()["error"]
    no_object = json.dumps({"id": 2, "type": "invoice.created"}).encode()
    assert "data.object" in post(stack, no_object, signed(stack, no_object)).json()["error"]
    huge = b"{" + b" " * 1_100_000 + b"}"
    too_large = post(stack, huge, signed(stack, huge))
    assert (too_large.status_code, too_large.json()) == (
        413,
        {"error": "the body is larger than 1048576 bytes"},
    )
    assert post(stack, body, signed(stack, body), source="nowhere").status_code == 404
    settle(stack)
    assert records(stack, "Billing_Invoice__c") == []


def test_old_events_are_refused_as_replays(stack: DevStack) -> None:
    stale = json.dumps(
        {
            "id": 3,
            "type": "note.created",
            "timestamp": 1000,
            "data": {"object": {"id": 9, "notes": "x", "created_at": 1000}},
        }
    ).encode()
    answer = post(stack, stale, signed(stack, stale))
    assert answer.status_code == 400
    assert "replay window" in answer.json()["error"]


def test_duplicate_and_replayed_deliveries_create_nothing_twice(stack: DevStack) -> None:
    assert stack.invoiced and stack.runtime
    stack.invoiced.control.update_settings(duplicate_delivery_rate=1.0)
    customer, _ = linked_customer(stack)
    stack.invoiced.control.act(
        "create",
        "invoices",
        data={"customer": customer, "items": [{"name": "Plan", "quantity": 1, "unit_cost": 9}]},
    )
    settle(stack)
    event = next(e for e in stack.invoiced.control.events() if e["type"] == "invoice.created")
    body = json.dumps(event).encode()
    assert (
        post(stack, body, signed(stack, body)).status_code == 202
    )  # a replay, answered from the idempotency record
    settle(stack)
    assert len(records(stack, "Billing_Invoice__c")) == 1
    assert len(records(stack, "Billing_Invoice_Line__c")) == 1
    deliveries = [d for d in stack.invoiced.control.deliveries() if d["event"] == event["id"]]
    assert len(deliveries) >= 2
    invocations = [i for i in stack.runtime.invocations if i.function_id == "InvoiceFunction"]
    assert len(invocations) == 1


def test_a_child_before_its_parent_waits_and_then_links(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    customer = stack.invoiced.control.act("create", "customers", data={"name": "Late Account"})
    invoice = stack.invoiced.control.act(
        "create",
        "invoices",
        data={"customer": customer["id"], "items": [{"name": "Plan", "quantity": 1, "unit_cost": 9}]},
    )
    stack.invoiced.control.wait_for_deliveries(timeout=30)
    # The invoice cannot link yet: it waits (and is retried with backoff).
    waiting = _wait_for_log(stack, "invoice", "waiting_for_parent")
    assert waiting["code"] == "PARENT_NOT_FOUND"
    assert records(stack, "Billing_Invoice__c") == []
    [account] = stack.salesforce.control.seed(
        "Account", [{"Name": "Late Account", "Billing_Id__c": f"main:{customer['id']}"}]
    )
    settle(stack)
    synced = one(stack, "Billing_Invoice__c", Billing_Id__c=f"main:{invoice['id']}")
    assert synced["Account__c"] == account
    assert dead_letters(stack, "invoice") == []


def test_a_permanent_error_lands_in_the_dead_letter_queue_with_its_reason(stack: DevStack) -> None:
    assert stack.invoiced
    customer, _ = linked_customer(stack)
    invoice = stack.invoiced.control.act(
        "create",
        "invoices",
        data={
            "customer": customer,
            "notes": "N" * 40_000,  # Invoiced takes long notes; Notes__c holds 32,768 characters
            "items": [{"name": "Plan", "quantity": 1, "unit_cost": 9}],
        },
    )
    settle(stack)
    [letter] = dead_letters(stack, "invoice")
    assert letter["error"]["code"] == "STRING_TOO_LONG"
    assert letter["error"]["fields"] == ["Notes__c"]
    assert letter["error"]["retryable"] is False
    assert letter["attempts"] == 1
    assert letter["change"]["id"] == str(invoice["id"])
    assert letter["change"]["source"] == "main"
    assert records(stack, "Billing_Invoice__c") == []
    assert [e["outcome"] for e in sync_log(stack, "invoice")] == ["failed"]


def _wait_for_log(stack: DevStack, object_name: str, outcome: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in sync_log(stack, object_name):
            if entry["outcome"] == outcome:
                return entry
        time.sleep(0.2)
    raise AssertionError(f"no {outcome} entry in the {object_name} sync log")


def test_two_states_from_one_second_in_one_batch_end_as_invoiced_holds_them(stack: DevStack) -> None:
    """Invoiced stamps versions in whole seconds: two states of an invoice from one second, in one batch
    (here the older delivered last), cannot be ordered by their stamps; the worker reads the invoice
    again and writes what Invoiced holds."""
    assert stack.invoiced and stack.runtime
    customer, _ = linked_customer(stack)
    invoice = stack.invoiced.control.act(
        "create",
        "invoices",
        data={"customer": customer, "purchase_order": "PO-1", "items": [{"name": "Plan", "unit_cost": 9}]},
    )
    settle(stack)
    stack.invoiced.control.act("update", "invoices", invoice["id"], data={"purchase_order": "PO-2"})
    stack.runtime.pause_event_sources()
    assert stack.invoiced.control.wait_for_deliveries(timeout=30)
    newest = next(e for e in reversed(stack.invoiced.control.events()) if e["type"] == "invoice.updated")
    assert newest["data"]["object"]["purchase_order"] == "PO-2"
    older = json.loads(json.dumps(newest))  # the same second's earlier state, delivered after it
    older["id"] = newest["id"] + 1_000_000
    older["data"]["object"]["purchase_order"] = "PO-1"
    body = json.dumps(older).encode()
    assert post(stack, body, signed(stack, body)).status_code == 202
    stack.runtime.resume_event_sources()
    settle(stack)
    assert (
        one(stack, "Billing_Invoice__c", Billing_Id__c=f"main:{invoice['id']}")["Purchase_Order__c"] == "PO-2"
    )
