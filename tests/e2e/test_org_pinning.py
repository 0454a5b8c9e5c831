"""Org pinning: credentials that log in to another org than the pinned one (a refreshed sandbox still
pointing at production billing, a wrong secret) stop the sync with a clear error before anything is
written; once the pin is right, a redrive applies what waited."""

from __future__ import annotations

from local.stack import DevStack
from tests.e2e.helpers import dead_letters, linked_customer, one, pull, records, redrive, settle, sync_log

OTHER_ORG = "00D5g000004XyZwEAK"
PLAN = [{"name": "Plan", "quantity": 1, "unit_cost": 9}]


def test_a_mismatched_org_stops_the_queue_path_before_anything_is_written(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    customer, account = linked_customer(stack)
    stack.reconfigure({"salesforce": {"org_id": OTHER_ORG}})
    invoice = stack.invoiced.control.act("create", "invoices", data={"customer": customer, "items": PLAN})
    settle(stack)
    assert records(stack, "Billing_Invoice__c") == []
    # One dead letter per event the invoice's webhooks carried (created, then updated).
    letters = dead_letters(stack, "invoice")
    events = [e for e in stack.invoiced.control.events() if e["type"].startswith("invoice.")]
    assert len(letters) == len(events) >= 1
    for letter in letters:
        assert letter["error"]["code"] == "ORG_MISMATCH"
        assert letter["error"]["retryable"] is False
        assert OTHER_ORG in letter["error"]["message"]
        assert stack.salesforce.credentials["org_id"] in letter["error"]["message"]
        assert "nothing was written" in letter["error"]["message"]
        assert letter["change"]["id"] == str(invoice["id"])
    assert {e["code"] for e in sync_log(stack, "invoice")} == {"ORG_MISMATCH"}

    # The right pin (Salesforce's 15-character form is accepted too), then a redrive: it applies.
    stack.reconfigure({"salesforce": {"org_id": stack.salesforce.credentials["org_id"][:15]}})
    assert redrive(stack, "invoice") == len(letters)
    settle(stack)
    synced = one(stack, "Billing_Invoice__c", Billing_Id__c=f"main:{invoice['id']}")
    assert synced["Account__c"] == account
    assert len(records(stack, "Billing_Invoice_Line__c")) == 1
    assert dead_letters(stack, "invoice") == []


def test_a_mismatched_org_stops_a_pull_and_keeps_its_checkpoint(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    customer, _ = linked_customer(stack)
    stack.invoiced.control.seed({"invoices": [{"customer": customer, "items": PLAN} for _ in range(3)]})
    stack.reconfigure({"salesforce": {"org_id": OTHER_ORG}})
    for direction in ("to_salesforce", "to_billing"):
        [stream] = pull(stack, "invoice", direction)["streams"]
        assert stream["status"] == "org_mismatch"
        assert OTHER_ORG in stream["detail"]
    assert records(stack, "Billing_Invoice__c") == []
    assert dead_letters(stack, "invoice") == []

    stack.reconfigure({"salesforce": {"org_id": stack.salesforce.credentials["org_id"]}})
    [stream] = pull(stack, "invoice", "to_salesforce")["streams"]
    assert stream["status"] == "done"
    assert len(records(stack, "Billing_Invoice__c")) == 3
