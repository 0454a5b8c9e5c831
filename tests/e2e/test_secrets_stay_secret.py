"""Secrets and card numbers never appear in logs, dead letters, the sync log, tables or environments.

A stack with known secrets (webhook secret, Invoiced API key, Salesforce connected-app secret and
user password) and functions at DEBUG logging runs every flow: webhooks signed, forged and malformed,
records applied and refused (a value too long, which Salesforce echoes in its error), a token expiry
and re-login, pulls both ways. Free-text fields carry Luhn-valid card numbers. Then everything the
stack kept is scanned.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator

import pytest
import requests

from local.invoiced import InvoicedSettings
from local.runtime.template import load_template_file
from local.stack import TEMPLATE, DevStack, StackSettings
from tests.e2e.helpers import linked_customer, pull, records, settle

WEBHOOK_SECRET = "whsec_Seeded0Webhook0Secret0Do0Not0Leak"
INVOICED_API_KEY = "live_Seeded0Invoiced0Api0Key0Do0Not0Leak"
CARD_NUMBERS = ("4111111111111111", "5555555555554444", "378282246310005")
SPACED_CARD = "4012 8888 8888 1881"
ACCESS_TOKEN = re.compile(r"00D[A-Za-z0-9]{12}![A-Za-z0-9._]{20,}")


@pytest.fixture(scope="module")
def secret_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    settings = StackSettings(
        workdir=tmp_path_factory.mktemp("secret-stack"),
        stack_name="billsync-secrets",
        invoiced=InvoicedSettings(
            api_key=INVOICED_API_KEY, webhook_timeout_s=10.0, webhook_connect_timeout_s=2.0
        ),
        webhook_secret=WEBHOOK_SECRET,
        environment={"POWERTOOLS_LOG_LEVEL": "DEBUG", "POWERTOOLS_DEBUG": "true"},
    )
    with DevStack(settings) as stack:
        stack.reset()
        yield stack


def post(stack: DevStack, body: bytes, signature: str | None) -> requests.Response:
    assert stack.runtime
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Invoiced-Signature"] = signature
    return requests.post(f"{stack.runtime.api_url}/webhooks/main", data=body, headers=headers, timeout=10)


def run_every_flow(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    customer, _ = linked_customer(stack)
    stack.salesforce.control.faults.update({"every": {"INVALID_SESSION_ID": 3}})
    # Salesforce users typed card numbers into accounts marked for billing; Invoiced refuses them.
    stack.salesforce.control.seed(
        "Account",
        [
            {"Name": f"Card {CARD_NUMBERS[0]} Holder", "Create_In_Billing__c": True},
            {"Name": "Spaced", "Phone": SPACED_CARD, "Create_In_Billing__c": True},
        ],
    )
    applied = stack.invoiced.control.act(
        "create",
        "invoices",
        data={"customer": customer, "items": [{"name": "Plan", "quantity": 1, "unit_cost": 9}]},
    )
    refused = stack.invoiced.control.act(
        "create",
        "invoices",
        data={
            "customer": customer,
            "notes": "N" * 40_000,  # too long for Notes__c
            "items": [{"name": "Plan", "quantity": 1, "unit_cost": 9}],
        },
    )
    stack.invoiced.control.act("create", "notes", data={"customer_id": customer, "notes": "call back"})
    settle(stack)
    invoices = {r["Billing_Id__c"] for r in records(stack, "Billing_Invoice__c")}
    assert f"main:{applied['id']}" in invoices and f"main:{refused['id']}" not in invoices

    body = json.dumps({"id": 7, "type": "invoice.created", "card": CARD_NUMBERS[1]}).encode()
    forged = hmac.new(b"guess", body, hashlib.sha256).hexdigest()
    assert post(stack, body, forged).status_code == 401
    assert post(stack, body, None).status_code == 401
    malformed = b'{"card": "' + CARD_NUMBERS[2].encode() + b'"'
    signed = hmac.new(WEBHOOK_SECRET.encode(), malformed, hashlib.sha256).hexdigest()
    assert post(stack, malformed, signed).status_code == 400

    for object_name, direction in [
        ("customer", "to_billing"),
        ("invoice", "to_salesforce"),
        ("invoice", "to_billing"),
        ("note", "to_salesforce"),
        ("note", "to_billing"),
    ]:
        pull(stack, object_name, direction)
    assert stack.invoiced.control.dump()["customers"][0]["id"] == customer  # nothing else got in
    assert stack.salesforce.control.faults.get()["injected"].get("INVALID_SESSION_ID", 0) >= 1
    stack.salesforce.control.faults.update({"every": {}})


def captured(stack: DevStack) -> Iterator[tuple[str, str]]:
    """(where, text) of everything the stack kept: logs, dead letters, tables, environments, results."""
    assert stack.runtime
    runtime = stack.runtime
    for path in sorted(runtime.logs_dir.glob("*.log")):
        yield f"log {path.name}", path.read_text(errors="replace")
    sqs = runtime.boto3_client("sqs")
    for name, url in runtime.outputs.items():
        if name.endswith("DLQUrl") or name == "FailedRunsQueueUrl":
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
            for message in messages.get("Messages", []):
                yield f"queue {name}", message["Body"]
    dynamodb = runtime.boto3_client("dynamodb")
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                yield f"table {table}", json.dumps(item)
    for logical_id, plan in runtime.functions.items():
        yield f"environment of {logical_id}", json.dumps(plan.environment)
    for invocation in runtime.invocations:
        yield f"result of {invocation.function_id}", repr(invocation)


def test_no_secret_or_card_number_is_kept_anywhere(secret_stack: DevStack) -> None:
    stack = secret_stack
    assert stack.salesforce and stack.runtime
    run_every_flow(stack)
    creds = stack.salesforce.credentials
    secrets = {
        "webhook secret": WEBHOOK_SECRET,
        "Invoiced API key": INVOICED_API_KEY,
        "Salesforce consumer secret": creds["consumer_secret"],
        "Salesforce password": creds["password"],
        "Salesforce security token": creds["security_token"],
        "Salesforce refresh token": creds["refresh_token"],
        **{f"card number {n}": n for n in CARD_NUMBERS},
        "spaced card number": SPACED_CARD,
    }
    texts = list(captured(stack))
    # The scan sees what it must: debug lines, the refused invoice's dead letter and log entry.
    assert any("[DEBUG]" in text for where, text in texts if where.startswith("log "))
    assert any("STRING_TOO_LONG" in text for where, text in texts if where.startswith("queue InvoiceDLQ"))
    assert any(
        "CARD_NUMBER" in text or "Card numbers" in text for where, text in texts if "CustomerDLQ" in where
    )
    leaks = [
        f"{name} in {where}"
        for where, text in texts
        for name, value in secrets.items()
        if value in text or value.replace(" ", "") in text
    ]
    leaks += [f"an access token in {where}" for where, text in texts if ACCESS_TOKEN.search(text)]
    assert leaks == []


def test_no_function_logs_its_events() -> None:
    # An event is a webhook's body or a queue's records: customer data that stays out of logs.
    document = load_template_file(TEMPLATE)
    functions = [document.get("Globals", {}).get("Function", {})] + [
        r.get("Properties", {})
        for r in document["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
    ]
    for properties in functions:
        variables = (properties.get("Environment") or {}).get("Variables") or {}
        assert str(variables.get("POWERTOOLS_LOGGER_LOG_EVENT", "false")).lower() == "false"
        assert str(variables.get("POWERTOOLS_LOG_LEVEL", "INFO")).upper() != "DEBUG"
