"""A worker killed between its Salesforce write and its checkpoint loses nothing and duplicates nothing.

The Salesforce emulator calls back right after it commits a write and before it answers; the callback
kills the function's worker process, as a crashed or timed-out Lambda dies: the write is in
Salesforce, but the worker never learns it, never writes its cross-references, never deletes its
queue message and never saves its checkpoint.

It can also hold a write back before it takes its row locks, so that a concurrent worker's newer write
lands first and the held one, older, lands over it: the last three tests prove that the newest state
ends in Salesforce, whether the older write's worker lives (and loses its cross-reference write) or dies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local.invoiced import InvoicedSettings
from local.stack import DevStack, StackSettings
from tests.e2e.helpers import linked_customer, one, records, settle, sync_log

TIMEOUT = 15.0  # short function timeouts: a crashed pull's lease expires in seconds, not minutes


@pytest.fixture(scope="module")
def crash_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    settings = StackSettings(
        workdir=tmp_path_factory.mktemp("crash-stack"),
        stack_name="billsync-crashes",
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


def hold_next_write(stack: DevStack) -> tuple[threading.Event, threading.Event]:
    """Hold the next Salesforce write request back until `release` is set (or the function's time is
    up); `held` is set once it waits. Later writes go through."""
    assert stack.salesforce
    held, release, claim = threading.Event(), threading.Event(), threading.Lock()

    def hook() -> None:
        with claim:
            first = not held.is_set()
            held.set()
        if first:
            release.wait(TIMEOUT)

    stack.salesforce.control.before_write(hook)
    return held, release


def purchase_order(stack: DevStack, invoice: dict[str, Any]) -> Any:
    return one(stack, "Billing_Invoice__c", Billing_Id__c=f"main:{invoice['id']}").get("Purchase_Order__c")


def wait_for(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def synced_invoice(stack: DevStack) -> tuple[dict[str, Any], int]:
    """An invoice in Salesforce with purchase order PO-1, and Invoiced's webhook endpoint."""
    assert stack.invoiced
    customer, _ = linked_customer(stack)
    invoice = stack.invoiced.control.act(
        "create",
        "invoices",
        data={"customer": customer, "purchase_order": "PO-1", "items": [{"name": "Plan", "unit_cost": 40}]},
    )
    assert invoice is not None
    settle(stack)
    assert purchase_order(stack, invoice) == "PO-1"
    return invoice, stack.invoiced.control.webhooks()[0]["id"]


def revise(stack: DevStack, invoice: dict[str, Any], po: str) -> None:
    """A later version of the invoice (Invoiced stamps versions in whole seconds)."""
    assert stack.invoiced
    time.sleep(1.1)
    stack.invoiced.control.act("update", "invoices", invoice["id"], data={"purchase_order": po})


def overtaken_pull(stack: DevStack) -> tuple[dict[str, Any], threading.Event, Callable[[], Any]]:
    """A scheduled pull that read PO-2 and is held before writing it while a webhook's worker writes
    PO-3; returns the invoice, the event that releases the pull's write, and a wait for its result."""
    assert stack.invoiced and stack.runtime
    runtime = stack.runtime
    invoice, endpoint = synced_invoice(stack)
    stack.invoiced.control.pause_webhook(endpoint)
    revise(stack, invoice, "PO-2")
    held, release = hold_next_write(stack)
    outcome: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: outcome.update(result=runtime.fire_schedule("InvoiceFunction", "PullFromBilling"))
    )
    thread.start()
    assert held.wait(TIMEOUT)  # the pull read PO-2 and is about to write it
    revise(stack, invoice, "PO-3")
    stack.invoiced.control.resume_webhook(endpoint)
    wait_for(lambda: purchase_order(stack, invoice) == "PO-3")  # the webhook's worker wrote first

    def result() -> Any:
        thread.join()
        return outcome["result"]

    return invoice, release, result


def test_a_pull_write_overtaken_by_a_newer_one_writes_the_newest_state_again(stack: DevStack) -> None:
    invoice, release, pulled = overtaken_pull(stack)
    release.set()
    assert pulled().ok, pulled().error
    settle(stack)
    # The pull's PO-2 landed over PO-3; it lost its cross-reference write, re-read and wrote PO-3 again.
    assert purchase_order(stack, invoice) == "PO-3"


def test_a_dead_workers_write_over_a_newer_one_is_undone_when_its_message_returns(stack: DevStack) -> None:
    assert stack.invoiced and stack.runtime
    invoice, endpoint = synced_invoice(stack)
    held, release = hold_next_write(stack)
    revise(stack, invoice, "PO-2")  # its webhook's worker reads it and is held before writing
    assert held.wait(TIMEOUT)
    stack.invoiced.control.pause_webhook(endpoint)
    revise(stack, invoice, "PO-3")
    result = stack.runtime.fire_schedule("InvoiceFunction", "PullFromBilling")
    assert result.ok, result.error
    assert purchase_order(stack, invoice) == "PO-3"
    crashed = crash_after_first_write(stack, "InvoiceFunction")
    release.set()
    wait_for(crashed.is_set)
    assert purchase_order(stack, invoice) == "PO-2"  # the dead worker's older write is what Salesforce holds
    stack.invoiced.control.resume_webhook(endpoint)
    settle(stack)
    assert purchase_order(stack, invoice) == "PO-3"


def test_a_dead_pulls_write_over_a_newer_one_is_undone_by_the_run_that_takes_over(stack: DevStack) -> None:
    assert stack.runtime
    invoice, release, pulled = overtaken_pull(stack)
    crashed = crash_after_first_write(stack, "InvoiceFunction")
    release.set()
    assert not pulled().ok
    wait_for(crashed.is_set)
    assert purchase_order(stack, invoice) == "PO-2"
    deadline = time.monotonic() + TIMEOUT + 30  # the dead run's lease runs out first
    while (result := stack.runtime.fire_schedule("InvoiceFunction", "PullFromBilling")).ok and {
        s["status"] for s in result.payload["streams"]
    } == {"busy"}:
        assert time.monotonic() < deadline
        time.sleep(1)
    assert result.ok, result.error
    settle(stack)
    assert purchase_order(stack, invoice) == "PO-3"
