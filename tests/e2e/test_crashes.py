"""A worker killed between its Salesforce write and its checkpoint loses nothing and duplicates nothing.

The Salesforce emulator calls back right after it commits a write and before it answers; the callback
kills the function's worker process, as a crashed or timed-out Lambda dies: the write is in
Salesforce, but the worker never learns it, never writes its cross-references, never deletes its
queue message and never saves its checkpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from local.invoiced import InvoicedSettings
from local.stack import DevStack, StackSettings
from tests.e2e.helpers import linked_customer, one, records, settle, sync_log

TIMEOUT = 8.0  # short function timeouts: a crashed pull's lease expires in seconds, not minutes


@pytest.fixture(scope="module")
def crash_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    settings = StackSettings(
        workdir=tmp_path_factory.mktemp("crash-stack"),
        function_timeout=TIMEOUT,
        invoiced=InvoicedSettings(webhook_timeout_s=10.0, webhook_connect_timeout_s=2.0),
    )
    with DevStack(settings) as stack:
        yield stack


@pytest.fixture
def stack(crash_stack: DevStack) -> Iterator[DevStack]:
    crash_stack.reset()
    yield crash_stack
    assert crash_stack.salesforce
    crash_stack.salesforce.control.on_commit(None)


def crash_after_first_write(stack: DevStack, function: str) -> threading.Event:
    """Kill `function`'s worker right after Salesforce commits its first write; returns when it did."""
    assert stack.salesforce and stack.runtime
    crashed = threading.Event()
    runtime = stack.runtime

    def hook(record_ids: list[str]) -> None:
        if not crashed.is_set() and runtime.kill_worker(function):
            crashed.set()

    stack.salesforce.control.on_commit(hook)
    return crashed


def test_a_crash_after_the_write_on_the_queue_path_loses_and_duplicates_nothing(stack: DevStack) -> None:
    assert stack.invoiced and stack.runtime
    customer, account = linked_customer(stack)
    crashed = crash_after_first_write(stack, "InvoiceFunction")
    invoice = stack.invoiced.control.act(
        "create",
        "invoices",
        data={"customer": customer, "items": [{"name": "Plan", "quantity": 2, "unit_cost": 40}]},
    )
    settle(stack)
    assert crashed.is_set()
    crashes = [i for i in stack.runtime.invocations if i.function_id == "InvoiceFunction" and not i.ok]
    assert crashes
    assert "killed" in str(crashes[0].error)
    # The message came back after its visibility timeout and was applied again, idempotently.
    synced = one(stack, "Billing_Invoice__c", Billing_Id__c=f"main:{invoice['id']}")
    assert synced["Account__c"] == account
    assert len(records(stack, "Billing_Invoice_Line__c")) == 1
    assert [e["outcome"] for e in sync_log(stack, "invoice")] == ["applied"]


def test_a_crash_after_the_write_on_the_pull_path_loses_and_duplicates_nothing(stack: DevStack) -> None:
    assert stack.invoiced and stack.runtime
    customer, _ = linked_customer(stack)
    data = {
        "invoices": [
            {"customer": customer, "items": [{"name": f"Item {n}", "quantity": 1, "unit_cost": n + 1}]}
            for n in range(250)
        ]
    }
    stack.invoiced.control.seed(data)
    crashed = crash_after_first_write(stack, "InvoiceFunction")
    first = stack.runtime.fire_schedule("InvoiceFunction", "PullFromBilling")
    assert crashed.is_set(), first.error
    assert not first.ok
    assert len(records(stack, "Billing_Invoice__c")) == 200  # the first page reached Salesforce
    # The crashed run still holds the stream's lease until its time would have run out; then a later
    # run resumes from the last checkpoint and re-applies the page idempotently.
    deadline = time.monotonic() + TIMEOUT + 30
    while True:
        result = stack.runtime.fire_schedule("InvoiceFunction", "PullFromBilling")
        assert result.ok, result.error
        streams = {s["status"] for s in result.payload["streams"]}
        if "done" in streams and len(records(stack, "Billing_Invoice__c")) == 250:
            break
        assert time.monotonic() < deadline, result.payload
        time.sleep(1)
    invoices = records(stack, "Billing_Invoice__c")
    assert len({r["Billing_Id__c"] for r in invoices}) == 250
    assert len(records(stack, "Billing_Invoice_Line__c")) == 250
