"""The operator command line and the ops API against the local stack: DLQ list, show, redrive and purge;
sync now; backfill; status; the sync log; and what bad input gets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from billsync.aws.dlq import SqsDeadLetters
from billsync.cli.main import cli, load_plugins
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from click.testing import CliRunner, Result

from local.invoiced import InvoicedSettings
from local.stack import DevStack, StackSettings
from tests.e2e.helpers import (
    dead_letters,
    linked_customer,
    pull,
    records,
    salesforce_user,
    settle,
    sync_log,
)

TIMEOUT = 40.0  # short function timeouts: an interrupted run's lease expires in seconds
SECRET = "sk_live_51Hx9Qa7"  # a gateway key pasted into an invoice note

load_plugins()


@pytest.fixture(scope="module")
def ops_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    settings = StackSettings(
        workdir=tmp_path_factory.mktemp("ops-stack"),
        stack_name="billsync-operations",
        function_timeout=TIMEOUT,
        invoiced=InvoicedSettings(webhook_timeout_s=10.0, webhook_connect_timeout_s=2.0),
    )
    with DevStack(settings) as stack:
        yield stack


@pytest.fixture
def stack(ops_stack: DevStack) -> Iterator[DevStack]:
    ops_stack.reset()
    yield ops_stack
    assert ops_stack.salesforce
    ops_stack.salesforce.control.on_commit(None)


@pytest.fixture
def state_file(stack: DevStack, tmp_path: Path) -> Path:
    return stack.write_state_file(tmp_path / "stack.json")


def billsync(state_file: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner(env={"COLUMNS": "250"}).invoke(
        cli, [*args, "--local-state", str(state_file)], input=input
    )


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def failing_invoices(stack: DevStack, count: int) -> list[int]:
    """Invoices Salesforce refuses (notes longer than Notes__c holds), each quoting a gateway key, seen
    by a scheduled pull."""
    assert stack.invoiced
    customer, _ = linked_customer(stack)
    data = {
        "invoices": [
            {
                "customer": customer,
                "notes": f"retry with api_key={SECRET} " + "N" * 40_000,
                "items": [{"name": "Plan", "quantity": 1, "unit_cost": 9}],
            }
            for _ in range(count)
        ]
    }
    ids: list[int] = stack.invoiced.control.seed(data)["invoices"]
    pull(stack, "invoice", "to_salesforce")
    return ids


def fix_quietly(stack: DevStack, invoice_ids: list[int]) -> None:
    """Correct the invoices in Invoiced without a webhook: only a redrive that re-reads them can see it."""
    assert stack.invoiced
    for hook in stack.invoiced.control.webhooks():
        stack.invoiced.control.remove_webhook(hook["id"])
    for invoice_id in invoice_ids:
        stack.invoiced.control.act("update", "invoices", invoice_id, data={"notes": "fixed"})


# ------------------------------------------------------------------------------------ DLQ


def test_dlq_list_filters_and_show_masks_secrets(stack: DevStack, state_file: Path) -> None:
    [invoice_id] = failing_invoices(stack, 1)
    [letter] = as_json(billsync(state_file, "dlq", "list", "--json"))
    assert (letter["object"], letter["record_id"], letter["code"]) == (
        "invoice",
        str(invoice_id),
        "STRING_TOO_LONG",
    )
    assert letter["fields"] == ["Notes__c"] and letter["attempts"] == 1
    assert as_json(billsync(state_file, "dlq", "list", "--code", "UNABLE_TO_LOCK_ROW", "--json")) == []
    assert as_json(billsync(state_file, "dlq", "list", "--older-than", "1d", "--json")) == []
    table = billsync(state_file, "dlq", "list", "--object", "invoice")
    assert table.exit_code == 0 and "STRING_TOO_LONG" in table.output
    shown = billsync(state_file, "dlq", "show", letter["id"], "--json")
    assert shown.exit_code == 0, shown.output
    assert SECRET not in shown.output
    assert "api_key=[masked]" in shown.output
    assert json.loads(shown.stdout)["body"]["change"]["id"] == str(invoice_id)
    missing = billsync(state_file, "dlq", "show", "no-such-letter")
    assert missing.exit_code == 1 and "no dead letter" in missing.output


def test_a_redriven_letter_that_fails_again_comes_back_with_its_new_reason(
    stack: DevStack, state_file: Path
) -> None:
    failing_invoices(stack, 1)
    [before] = as_json(billsync(state_file, "dlq", "list", "--json"))
    [report] = as_json(billsync(state_file, "dlq", "redrive", "--object", "invoice", "--json"))
    assert (report["redriven"], report["method"]) == (1, "billsync")
    settle(stack)
    after = as_json(billsync(state_file, "dlq", "list", "--json"))
    assert before["id"] not in {letter["id"] for letter in after}
    assert {(a["record_id"], a["code"], a["cause"]) for a in after} == {
        (before["record_id"], "STRING_TOO_LONG", "redrive")
    }


def test_an_interrupted_redrive_resumes_without_losing_or_duplicating(
    stack: DevStack, state_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = failing_invoices(stack, 12)  # two receive batches
    fix_quietly(stack, ids)
    # The first redrive dies after it sent the first batch back and before it deleted it from the DLQ.
    real_delete = SqsDeadLetters.delete

    def interrupted(self: SqsDeadLetters, *args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(SqsDeadLetters, "delete", interrupted)
    first = billsync(state_file, "dlq", "redrive", "--reread")
    assert first.exit_code != 0
    monkeypatch.setattr(SqsDeadLetters, "delete", real_delete)
    assert len(dead_letters(stack, "invoice")) == 12  # nothing left the DLQ unsent
    settle(stack)
    [report] = [
        r for r in as_json(billsync(state_file, "dlq", "redrive", "--reread", "--json")) if r["redriven"]
    ]
    assert report == {**report, "object": "invoice", "redriven": 12, "not_deleted": 0}
    settle(stack)
    assert dead_letters(stack, "invoice") == []
    synced = records(stack, "Billing_Invoice__c")
    assert sorted(r["Billing_Id__c"] for r in synced) == sorted(f"main:{i}" for i in ids)
    assert {r["Notes__c"] for r in synced} == {"fixed"}
    assert len(records(stack, "Billing_Invoice_Line__c")) == 12
    applied = [e for e in sync_log(stack, "invoice") if e["outcome"] == "applied"]
    assert sorted(e["record_id"] for e in applied) == sorted(str(i) for i in ids)  # once each


def test_purge_asks_before_it_deletes(stack: DevStack, state_file: Path) -> None:
    failing_invoices(stack, 2)
    refused = billsync(state_file, "dlq", "purge", "--object", "invoice", input="n\n")
    assert refused.exit_code == 1 and "nothing was deleted" in refused.output
    assert len(dead_letters(stack, "invoice")) == 2
    done = billsync(state_file, "dlq", "purge", "--object", "invoice", input="y\n")
    assert done.exit_code == 0 and "Deleted 2 from invoice" in done.output
    assert dead_letters(stack, "invoice") == []


# ------------------------------------------------------------------------------------ sync now


def quiet_invoices(stack: DevStack, customer: int, count: int) -> list[int]:
    """Invoices that exist in Invoiced without ever having sent a webhook."""
    assert stack.invoiced
    data = {
        "invoices": [
            {"customer": customer, "items": [{"name": f"Item {n}", "quantity": 1, "unit_cost": n + 1}]}
            for n in range(count)
        ]
    }
    ids: list[int] = stack.invoiced.control.seed(data)["invoices"]
    return ids


def test_sync_now_queues_records_or_runs_the_pull(stack: DevStack, state_file: Path) -> None:
    customer, _ = linked_customer(stack)
    first, *others = quiet_invoices(stack, customer, 4)
    queued = as_json(billsync(state_file, "sync", "now", "invoice", "--id", str(first), "--json"))
    assert queued["queued"] == [{"id": str(first), "direction": "to_salesforce", "source": "main"}]
    settle(stack)
    assert [r["Billing_Id__c"] for r in records(stack, "Billing_Invoice__c")] == [f"main:{first}"]
    pulled = as_json(
        billsync(state_file, "sync", "now", "invoice", "--all", "--direction", "to_salesforce", "--json")
    )
    [run] = pulled["pulls"]
    assert run["status"] == "done" and run["outcomes"].get("applied") == len(others)
    assert len(records(stack, "Billing_Invoice__c")) == 4
    again = as_json(billsync(state_file, "sync", "now", "invoice", "--since", "1h", "--json"))
    assert {p["direction"] for p in again["pulls"]} == {"to_salesforce", "to_billing"}
    assert all(p["status"] == "done" for p in again["pulls"])


def signed_post(stack: DevStack, body: dict[str, Any], *, sign: bool = True) -> requests.Response:
    assert stack.runtime
    url = f"{stack.runtime.api_url}/ops/sync"
    request = AWSRequest(
        method="POST", url=url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    if sign:
        SigV4Auth(Credentials("testing", "testing"), "execute-api", "us-east-1").add_auth(request)
    return requests.post(url, data=request.body, headers=dict(request.headers), timeout=30)


def test_the_ops_api_syncs_records_for_signed_callers_only(stack: DevStack) -> None:
    customer, _ = linked_customer(stack)
    [invoice] = quiet_invoices(stack, customer, 1)
    assert signed_post(stack, {"object": "invoice", "ids": [str(invoice)]}, sign=False).status_code == 403
    refused = signed_post(stack, {"object": "gadget", "ids": ["1"]})
    assert refused.status_code == 400 and "unknown object 'gadget'" in refused.json()["error"]
    answer = signed_post(stack, {"object": "invoice", "ids": [str(invoice)]})
    assert answer.status_code == 202, answer.text
    assert answer.json()["queued"] == [{"id": str(invoice), "direction": "to_salesforce", "source": "main"}]
    settle(stack)
    assert [r["Billing_Id__c"] for r in records(stack, "Billing_Invoice__c")] == [f"main:{invoice}"]
    assert stack.runtime
    before = len([r for r in stack.runtime.invocations if r.function_id == "InvoiceFunction"])
    started = signed_post(stack, {"object": "invoice", "all": True, "direction": "to_salesforce"})
    assert started.status_code == 202 and started.json()["pulls"][0]["status"] == "started"
    # The pull runs asynchronously: wait for it, so that it ends within this test.
    deadline = time.monotonic() + 60
    while len([r for r in stack.runtime.invocations if r.function_id == "InvoiceFunction"]) == before:
        assert time.monotonic() < deadline, "the started pull never ran"
        time.sleep(0.2)


# ------------------------------------------------------------------------------------ backfill


def test_an_interrupted_backfill_resumes_without_losing_or_duplicating(
    stack: DevStack, state_file: Path
) -> None:
    assert stack.salesforce and stack.runtime
    customer, _ = linked_customer(stack)
    quiet_invoices(stack, customer, 35)
    # The operator's command and the run it started both die mid-way, after Salesforce's third write.
    command = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("billsync")),
            "backfill",
            "invoice",
            "--since",
            "2000-01-01",
            "--batch-size",
            "10",
            "--local-state",
            str(state_file),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    writes = []
    interrupted = threading.Event()
    runtime = stack.runtime

    def hook(record_ids: list[str]) -> None:
        writes.append(record_ids)
        if len(writes) == 3 and not interrupted.is_set():
            interrupted.set()
            command.send_signal(signal.SIGKILL)
            runtime.kill_worker("InvoiceFunction")

    stack.salesforce.control.on_commit(hook)
    out, err = command.communicate(timeout=120)
    assert interrupted.is_set() and command.returncode != 0, (len(writes), out, err[-2000:])
    stack.salesforce.control.on_commit(None)
    assert 0 < len(records(stack, "Billing_Invoice__c")) < 35
    resumed = as_json(billsync(state_file, "backfill", "invoice", "--json"))
    assert resumed["resumed"] is True and resumed["status"] == "done", resumed
    assert resumed["total"] == 35  # Invoiced's count of invoices changed since --since: the bar's ETA
    settle(stack)  # a record Salesforce asked to retry (a row lock) waits in the queue meanwhile
    invoices = records(stack, "Billing_Invoice__c")
    letters = dead_letters(stack, "invoice")  # a record Salesforce refused waits there with its reason
    assert len(invoices) == len({r["Billing_Id__c"] for r in invoices}) == 35 - len(letters), letters
    assert len(records(stack, "Billing_Invoice_Line__c")) == 35 - len(letters)
    assert not letters, letters
    status = as_json(billsync(state_file, "status", "--object", "invoice", "--json"))
    assert all(row["backfill"] is None for row in status["objects"])
    fresh = billsync(state_file, "backfill", "invoice")
    assert fresh.exit_code == 2 and "--since is required" in fresh.output


def test_a_backfill_in_batches_above_the_bulk_threshold_loads_through_bulk_api(
    stack: DevStack, state_file: Path
) -> None:
    assert stack.salesforce
    stack.reconfigure({"salesforce": {"bulk_threshold": 20}})
    customer, _ = linked_customer(stack)
    quiet_invoices(stack, customer, 45)
    stack.salesforce.control.reset_calls()
    done = as_json(
        billsync(state_file, "backfill", "invoice", "--since", "2000-01-01", "--batch-size", "30", "--json")
    )
    assert (done["status"], done["records_done"], done["total"]) == ("done", 45, 45), done
    calls = stack.salesforce.control.calls()["calls"]
    # The first batch's 30 invoices and their 30 lines go as two ingest jobs; the last 15 of each, below
    # the threshold, as sObject Collections.
    assert calls["POST /jobs/ingest"] == 2 and calls["POST /composite"] >= 1
    assert len(records(stack, "Billing_Invoice__c")) == 45
    assert len(records(stack, "Billing_Invoice_Line__c")) == 45


# ------------------------------------------------------------------------------------ status and log


def test_status_and_log_report_what_happened(stack: DevStack, state_file: Path) -> None:
    customer, _ = linked_customer(stack)
    [invoice] = quiet_invoices(stack, customer, 1)
    failing_invoices(stack, 1)
    billsync(state_file, "sync", "now", "invoice", "--all", "--direction", "to_salesforce")
    status = as_json(billsync(state_file, "status", "--json"))
    rows = {(r["object"], r["direction"]): r for r in status["objects"]}
    assert set(rows) >= {("invoice", "to_salesforce"), ("invoice", "to_billing"), ("customer", "to_billing")}
    invoices = rows["invoice", "to_salesforce"]
    assert (invoices["mode"], invoices["applied_24h"], invoices["failed_24h"], invoices["dlq_depth"]) == (
        "automatic",
        1,
        1,
        1,
    )
    assert invoices["last_synced_at"] is not None and invoices["lag_seconds"] is not None
    assert status["salesforce_api"]["limit"] > status["salesforce_api"]["used"] > 0
    table = billsync(state_file, "status")
    assert table.exit_code == 0 and "Salesforce API:" in table.output
    log = as_json(billsync(state_file, "log", "--object", "invoice", "--json"))
    assert sorted(e["outcome"] for e in log) == ["applied", "failed"]
    assert SECRET not in json.dumps(log)
    failed = as_json(billsync(state_file, "log", "--object", "invoice", "--outcome", "failed", "--json"))
    assert [e["code"] for e in failed] == ["STRING_TOO_LONG"]
    mine = as_json(billsync(state_file, "log", "--object", "invoice", "--record", str(invoice), "--json"))
    assert [(e["record_id"], e["outcome"]) for e in mine] == [(str(invoice), "applied")]


def test_failures_and_ignored_edits_are_mirrored_to_salesforce_when_asked(
    stack: DevStack, state_file: Path
) -> None:
    [invoice_id] = failing_invoices(stack, 1)
    assert records(stack, "Billing_Sync_Log__c") == []  # the mirror is off by default
    stack.reconfigure({"sync": {"mirror_log_to_salesforce": True}})
    [report] = as_json(billsync(state_file, "dlq", "redrive", "--object", "invoice", "--json"))
    assert report["redriven"] == 1
    settle(stack)
    # One row per dead letter (the local queues' short visibility timeout may deliver a slow batch
    # twice, and each delivery's letter is its own row).
    rows = records(stack, "Billing_Sync_Log__c")
    assert rows and all(r["Record_Key__c"] == rows[0]["Record_Key__c"] for r in rows)
    failed = rows[0]
    assert {k: failed[k] for k in ("Outcome__c", "Error_Code__c", "Object__c", "Record_Key__c")} == {
        "Outcome__c": "Failed",
        "Error_Code__c": "STRING_TOO_LONG",
        "Object__c": "invoice",
        "Record_Key__c": f"main:invoice:B:{invoice_id}",
    }
    assert (failed["Direction__c"], failed["Billing_Source__c"]) == ("To Salesforce", "main")
    assert SECRET not in failed["Message__c"] and "api_key=[masked]" in failed["Message__c"]
    assert "Notes__c" in failed["Message__c"]

    # An edit in Salesforce of an invoice Invoiced owns is ignored, and the admin who made it sees why.
    assert stack.invoiced
    customer, _ = linked_customer(stack, "Globex")
    invoice = stack.invoiced.control.act("create", "invoices", data={"customer": customer, "items": []})
    assert invoice is not None
    settle(stack)
    [synced] = [
        r for r in records(stack, "Billing_Invoice__c") if r["Billing_Id__c"] == f"main:{invoice['id']}"
    ]
    salesforce_user(stack).Billing_Invoice__c.update(synced["Id"], {"Notes__c": "Edited in Salesforce"})
    pull(stack, "invoice", "to_billing")
    mirrored = records(stack, "Billing_Sync_Log__c")
    [ignored] = [r for r in mirrored if r["Record_Key__c"] == f"main:invoice:S:{synced['Id']}"]
    assert ignored["Outcome__c"] == "Skipped Not Owned"
    assert ignored["Salesforce_Record_Id__c"] == synced["Id"]
    assert "billing system owns" in ignored["Message__c"]
    # The invoice applied from Invoiced needs nobody: it is not mirrored.
    assert not [r for r in mirrored if r["Record_Key__c"] == f"main:invoice:B:{invoice['id']}"]


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (["dlq", "list", "--object", "gadget"], 2, "unknown object 'gadget'"),
        (["dlq", "list", "--older-than", "soon"], 2, "not a duration"),
        (["dlq", "redrive", "--object", "gadget"], 2, "unknown object 'gadget'"),
        (["dlq", "purge", "--yes", "--newer-than", "yesterday"], 2, "not a duration"),
        (["sync", "now", "gadget", "--all"], 2, "unknown object 'gadget'"),
        (["sync", "now", "invoice", "--all", "--id", "1"], 2, "exactly one of"),
        (["sync", "now", "invoice", "--since", "last tuesday"], 2, "not an ISO 8601 time"),
        (["sync", "now", "invoice", "--direction", "to_billing", "--id", "42"], 2, "not a Salesforce id"),
        (["backfill", "gadget", "--since", "2024-01-01"], 2, "unknown object 'gadget'"),
        (["log", "--record", "1"], 2, "--object"),
        (["status", "--object", "gadget"], 2, "unknown object 'gadget'"),
    ],
)
def test_bad_input_gets_a_clear_message_and_changes_nothing(
    stack: DevStack, state_file: Path, args: list[str], exit_code: int, message: str
) -> None:
    failing_invoices(stack, 1)
    result = billsync(state_file, *args)
    assert result.exit_code == exit_code, result.output
    assert message in result.output
    assert len(dead_letters(stack, "invoice")) == 1
    assert records(stack, "Billing_Invoice__c") == []


def test_a_missing_stack_or_missing_credentials_is_named(
    stack: DevStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.runtime
    runner = CliRunner()
    absent = runner.invoke(cli, ["status", "--local-state", str(tmp_path / "none.json")])
    assert absent.exit_code == 1 and "no local stack" in absent.output
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", stack.runtime.aws_endpoint)
    uncredentialed = runner.invoke(cli, ["status", "--stack", "billsync-prod", "--region", "eu-west-1"])
    assert uncredentialed.exit_code == 1 and "no AWS credentials found" in uncredentialed.output
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    unknown = runner.invoke(cli, ["dlq", "list", "--stack", "billsync-nowhere", "--region", "us-east-1"])
    assert unknown.exit_code == 1 and "no stack named 'billsync-nowhere'" in unknown.output
    neither = runner.invoke(cli, ["status"])
    assert neither.exit_code == 2 and "--stack NAME" in neither.output


def test_the_ops_sample_event_queues_its_record(stack: DevStack) -> None:
    assert stack.runtime
    event = json.loads((Path(__file__).parents[2] / "events" / "ops" / "sync-now.json").read_text())
    result = stack.runtime.invoke("OpsFunction", event)
    assert result.ok, result.error
    assert result.payload["statusCode"] == 202
    queued = json.loads(result.payload["body"])["queued"]
    assert queued == [{"id": "4401", "direction": "to_salesforce", "source": "main"}]
