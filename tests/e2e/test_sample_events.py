"""The sample events in events/: each matches the template's wiring and works when invoked on the local stack."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from local.stack import DevStack
from tests.e2e.helpers import FUNCTIONS, one, pull, records, sync_log

EVENTS = Path(__file__).parents[2] / "events"


# Objects whose first read waits for the first read of the objects they link to.
FIRST_READ_AFTER = {"estimate": ("invoice",), "payment": ("invoice", "credit_note", "estimate")}


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def test_every_function_and_trigger_has_a_sample_event(stack: DevStack) -> None:
    assert stack.runtime
    for schedule in stack.runtime.schedules:
        scheduled = json.loads(schedule.input)
        object_name = re.sub(r"(?<!^)(?=[A-Z])", "_", schedule.function_id.removesuffix("Function")).lower()
        sample = load(f"{object_name}/pull-{scheduled['direction'].replace('_', '-')}.json")
        assert sample == scheduled, f"{schedule.function_id} {schedule.event_name}"
    for object_name, function in FUNCTIONS.items():
        assert function in stack.runtime.functions
        assert (EVENTS / object_name / "queue-batch.json").is_file()
    assert (EVENTS / "webhook" / "invoiced-invoice-paid.json").is_file()


def test_the_webhook_sample_is_accepted_once_signed_with_the_deployment_secret(stack: DevStack) -> None:
    assert stack.runtime
    event = load("webhook/invoiced-invoice-paid.json")
    body = json.loads(event["body"])
    body["timestamp"] = int(time.time())  # inside the replay window
    event["body"] = json.dumps(body)
    signature = hmac.new(
        stack.settings.webhook_secret.encode(), event["body"].encode(), hashlib.sha256
    ).hexdigest()
    event["headers"]["x-invoiced-signature"] = signature
    result = stack.runtime.invoke("WebhookFunction", event)
    assert result.ok, result.error
    assert result.payload["statusCode"] == 202
    assert json.loads(result.payload["body"]) == {"queued": 1, "ignored": 0}


def test_the_webhook_sample_as_shipped_is_refused_here(stack: DevStack) -> None:
    assert stack.runtime
    result = stack.runtime.invoke("WebhookFunction", load("webhook/invoiced-invoice-paid.json"))
    assert result.payload["statusCode"] == 401  # signed with the sample secret, not this deployment's


def test_the_invoice_queue_sample_applies_to_salesforce(stack: DevStack) -> None:
    assert stack.runtime and stack.salesforce
    stack.salesforce.control.seed("Account", [{"Name": "Acme", "Billing_Id__c": "main:3100"}])
    result = stack.runtime.invoke("InvoiceFunction", load("invoice/queue-batch.json"))
    assert result.ok, result.error
    assert result.payload == {"batchItemFailures": []}
    synced = one(stack, "Billing_Invoice__c", Billing_Id__c="main:4401")
    assert synced["Status__c"] == "Paid"
    assert [line["Name"] for line in records(stack, "Billing_Invoice_Line__c")] == ["Support plan"]


@pytest.mark.parametrize(
    "object_name",
    [
        "customer",
        "contact",
        "note",
        "credit_note",
        "estimate",
        "subscription",
        "payment",
        "card",
        "bank_account",
    ],
)
def test_each_queue_sample_is_processed(stack: DevStack, object_name: str) -> None:
    assert stack.runtime
    result = stack.runtime.invoke(FUNCTIONS[object_name], load(f"{object_name}/queue-batch.json"))
    assert result.ok, result.error
    assert "batchItemFailures" in result.payload
    assert len(sync_log(stack, object_name)) == 1  # an outcome was recorded, whatever it was


@pytest.mark.parametrize(
    "sample",
    [
        "customer/pull-to-billing.json",
        "contact/pull-to-billing.json",
        "invoice/pull-to-salesforce.json",
        "invoice/pull-to-billing.json",
        "note/pull-to-salesforce.json",
        "note/pull-to-billing.json",
        "credit_note/pull-to-salesforce.json",
        "estimate/pull-to-salesforce.json",
        "estimate/pull-to-billing.json",
        "subscription/pull-to-salesforce.json",
        "payment/pull-to-salesforce.json",
        "card/pull-to-billing.json",
        "bank_account/pull-to-billing.json",
    ],
)
def test_each_pull_sample_runs_a_pull(stack: DevStack, sample: str) -> None:
    assert stack.runtime
    object_name = sample.split("/", maxsplit=1)[0]
    for prerequisite in FIRST_READ_AFTER.get(object_name, ()):
        pull(stack, prerequisite, "to_salesforce")
    result = stack.runtime.invoke(FUNCTIONS[object_name], load(sample))
    assert result.ok, result.error
    assert [s["status"] for s in result.payload["streams"]] == ["done"]
