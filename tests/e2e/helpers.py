"""Reading and driving the local stack from end-to-end tests, through its real surfaces."""

from __future__ import annotations

import json
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from simple_salesforce import Salesforce

from local.salesforce.clients import LoginRewritingSession
from local.stack import DevStack

FUNCTIONS = {
    "customer": "CustomerFunction",
    "contact": "ContactFunction",
    "invoice": "InvoiceFunction",
    "note": "NoteFunction",
    "credit_note": "CreditNoteFunction",
    "estimate": "EstimateFunction",
    "subscription": "SubscriptionFunction",
    "payment": "PaymentFunction",
    "card": "CardFunction",
    "bank_account": "BankAccountFunction",
}


def settle(stack: DevStack, timeout: float = 60.0) -> None:
    """Wait until every webhook was delivered and every queue is drained.

    A delivery that failed (a cold worker slower than Invoiced's timeout on a loaded machine) is
    retried at once, as an admin's "retry" does, instead of the hour later Invoiced would: once or twice,
    so that an endpoint that refuses on purpose is not hammered.
    """
    assert stack.invoiced and stack.runtime
    control = stack.invoiced.control
    control.wait_for_deliveries(timeout=timeout)
    for _ in range(2):
        if not control.retry_failed_deliveries():
            break
        control.wait_for_deliveries(timeout=timeout)
    stack.runtime.drain(timeout=timeout)


def pull(stack: DevStack, object_name: str, direction: str) -> dict[str, Any]:
    """Fire the object's schedule for one direction, as EventBridge Scheduler would, and wait for it."""
    assert stack.runtime
    event = "PullFromBilling" if direction == "to_salesforce" else "PullFromSalesforce"
    result = stack.runtime.fire_schedule(FUNCTIONS[object_name], event)
    assert result.ok, result.error
    stack.runtime.drain(timeout=60)
    payload: dict[str, Any] = result.payload
    return payload


def records(stack: DevStack, sobject: str, *, deleted: bool = False) -> list[dict[str, Any]]:
    assert stack.salesforce
    rows: list[dict[str, Any]] = stack.salesforce.control.dump(sobject, include_deleted=deleted)
    return rows


def one(stack: DevStack, sobject: str, **match: Any) -> dict[str, Any]:
    found = [r for r in records(stack, sobject) if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"{len(found)} {sobject} records match {match}"
    return found[0]


def sync_log(stack: DevStack, object_name: str) -> list[dict[str, Any]]:
    """Every sync-log entry of an object, oldest first."""
    assert stack.runtime
    client = stack.runtime.boto3_client("dynamodb")
    table = stack.runtime.outputs["StateTableName"]
    items = client.scan(TableName=table)["Items"]
    de = TypeDeserializer()
    entries = [{k: de.deserialize(v) for k, v in item.items()} for item in items]
    return sorted((e for e in entries if e["pk"].startswith(f"LOG#{object_name}#")), key=lambda e: e["sk"])


def dead_letters(stack: DevStack, object_name: str) -> list[dict[str, Any]]:
    """The messages in an object's DLQ (read, then made visible again)."""
    assert stack.runtime
    sqs = stack.runtime.boto3_client("sqs")
    url = stack.runtime.outputs[f"{FUNCTIONS[object_name].removesuffix('Function')}DLQUrl"]
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get(
            "Messages", []
        )
        if not batch:
            break
        messages.extend(batch)
    for message in messages:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return [json.loads(m["Body"]) for m in messages]


def salesforce_user(stack: DevStack) -> Salesforce:
    """simple-salesforce logged in as a person (not billsync's integration user), by username,
    password and security token, as an admin's script would."""
    assert stack.salesforce
    creds = stack.salesforce.credentials
    return Salesforce(
        username=creds["human_username"],
        password=creds["human_password"],
        security_token=creds["human_security_token"],
        session=LoginRewritingSession(stack.salesforce.base_url, stack.salesforce.ca_file),
    )


def linked_customer(stack: DevStack, name: str = "Acme Ltd", **account: Any) -> tuple[int, str]:
    """An Invoiced customer and the Salesforce account linked to it (by its Invoiced id)."""
    assert stack.invoiced and stack.salesforce
    customer = stack.invoiced.control.act("create", "customers", data={"name": name})
    [account_id] = stack.salesforce.control.seed(
        "Account", [{"Name": name, "Billing_Id__c": f"main:{customer['id']}", **account}]
    )
    return int(customer["id"]), account_id


def redrive(stack: DevStack, object_name: str) -> int:
    """Move every message of an object's DLQ back to its queue, as an operator's redrive does: the
    change travels as a reference (cause `redrive`), so the worker reads the record's latest state."""
    from billsync.domain.models import Change, DeadLetter
    from billsync.usecases.outcomes import envelope

    assert stack.runtime
    sqs = stack.runtime.boto3_client("sqs")
    name = FUNCTIONS[object_name].removesuffix("Function")
    source, dlq = stack.runtime.outputs[f"{name}QueueUrl"], stack.runtime.outputs[f"{name}DLQUrl"]
    moved = 0
    while True:
        batch = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
            "Messages", []
        )
        if not batch:
            return moved
        for message in batch:
            body = json.loads(message["Body"])
            # A dead letter billsync wrote, or a message SQS moved there after its last receive.
            failed = (
                DeadLetter.model_validate(body).change if "change" in body else Change.model_validate(body)
            )
            change = failed.model_copy(update={"cause": "redrive", "record": None})
            item = envelope(change, None, nonce=message["MessageId"])
            sqs.send_message(
                QueueUrl=source,
                MessageBody=change.model_dump_json(exclude_none=True),
                MessageGroupId=item.group[:128],
                MessageDeduplicationId=item.dedup_id,
            )
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
