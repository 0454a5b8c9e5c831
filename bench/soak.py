"""The soak: thousands of Invoiced changes through the whole local stack under injected faults, then
a check that Salesforce holds exactly what Invoiced holds — nothing lost, nothing duplicated.

Changes (customers updated, invoices created and updated, notes created) flow as webhooks, in waves
of 1,000, with 10% duplicate deliveries and 10% delivered out of order. Salesforce answers 5% of requests with 503 and
2% with UNABLE_TO_LOCK_ROW, expires the session every 500 calls and starts with a burst of
REQUEST_LIMIT_EXCEEDED; one invoice worker is killed right after a Salesforce write, before its
checkpoint and cross-reference writes. 1% of the new invoices carry notes too long for Salesforce
(rejected permanently). A scheduled pull then reads every invoice while Invoiced answers 429 and 5xx.
When the stack is quiet, the rejected invoices are corrected in Invoiced and each DLQ is redriven.

Run the full size with `make soak` (20,000 changes); the CI test (tests/e2e/test_soak.py) runs a
small one. Figures go to bench/results/soak.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from billsync.usecases.dlq import EXHAUSTED_CODE

from local.common.faults import FaultSettings
from local.invoiced import InvoicedSettings
from local.salesforce import EmulatorSettings
from local.stack import DevStack, StackSettings
from tests.e2e.helpers import dead_letters, pull, records, redrive, settle, sync_log

RESULTS = Path(__file__).resolve().parent / "results" / "soak.json"
# Changes arrive in waves of this many, each applied before the next: the queues stay about as deep as a
# busy hour makes them (and the AWS stand-in, whose queues slow down with depth, keeps its pace).
WAVE = 1_000
OBJECTS = ("customer", "invoice", "note")
TOO_LONG = "N" * 40_000  # Notes__c holds 32,768 characters


def soak_settings(workdir: Path, seed: int, stack_name: str = "billsync-soak") -> StackSettings:
    faults = FaultSettings(
        seed=seed,
        rates={"SERVER_UNAVAILABLE": 0.05, "UNABLE_TO_LOCK_ROW": 0.02},
        every={"INVALID_SESSION_ID": 500},
        bursts={"REQUEST_LIMIT_EXCEEDED": 5},
    )
    return StackSettings(
        workdir=workdir,
        stack_name=stack_name,
        salesforce=EmulatorSettings(faults=faults),
        invoiced=InvoicedSettings(
            duplicate_delivery_rate=0.10,
            out_of_order_rate=0.10,
            webhook_seed=seed,
            webhook_timeout_s=20.0,
            webhook_connect_timeout_s=5.0,
        ),
        function_timeout=30.0,
        retry_base_seconds=0.5,
        retry_cap_seconds=5.0,
    )


@dataclass
class SoakReport:
    changes: int
    changes_by_kind: dict[str, int] = field(default_factory=dict)
    webhook_deliveries: int = 0
    faults_injected: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    worker_killed: bool = False
    pull_runs: int = 0  # scheduled runs the faulty pull took to finish its window
    dead_letters: int = 0
    dead_letters_by_code: dict[str, int] = field(default_factory=dict)
    permanent_rejections: int = 0
    permanent_with_one_letter: int = 0
    redriven: int = 0
    lost: int = 0
    duplicated: int = 0
    mismatches: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and not self.mismatches
            and self.permanent_with_one_letter == self.permanent_rejections
        )


def _code(letter: dict[str, Any]) -> str:
    """A dead letter's error code; a queue message SQS moved after its last receive has none."""
    error = letter.get("error")
    return str(error["code"]) if isinstance(error, dict) else EXHAUSTED_CODE


def run_soak(stack: DevStack, changes: int, *, seed: int = 7) -> SoakReport:
    assert stack.invoiced and stack.salesforce and stack.runtime
    rng = random.Random(seed)
    report = SoakReport(changes=changes)
    started = time.monotonic()
    kinds: Counter[str] = Counter()

    # Customers start in Salesforce (accounts marked for billing) and are created in Invoiced by a
    # pull, which writes their numbers back; their later changes in Invoiced are webhooks.
    customer_count = max(5, changes // 40)
    stack.salesforce.control.seed(
        "Account",
        [{"Name": f"Soak Customer {n}", "Create_In_Billing__c": True} for n in range(customer_count)],
    )
    for _ in range(20):
        pull(stack, "customer", "to_billing")
        settle(stack, timeout=120)
        customers = [int(c["id"]) for c in stack.invoiced.control.dump()["customers"]]
        if len(customers) == customer_count:
            break
    report.seconds["customers_created"] = round(time.monotonic() - started, 1)
    killed = _kill_once_after_a_write(stack, "InvoiceFunction", after_commits=min(changes // 4, 500))

    invoices: list[int] = []
    rejected: list[int] = []
    control = stack.invoiced.control
    for n in range(changes):
        draw = rng.random()
        customer = rng.choice(customers)
        if draw < 0.10:
            control.act("update", "customers", customer, data={"phone": f"555-{n:04d}"})
            kinds["customer updated"] += 1
        elif draw < 0.50 or not invoices:
            long_notes = rng.random() < 0.01 * 2.5  # 1% of all changes: 2.5% of the 40% that are new invoices
            items = [
                {
                    "name": f"Item {k}",
                    "quantity": rng.randint(1, 5),
                    "unit_cost": rng.choice([9.99, 100, 0.5]),
                }
                for k in range(rng.randint(1, 3))
            ]
            data: dict[str, Any] = {"customer": customer, "items": items, "purchase_order": f"PO-{n}"}
            if long_notes:
                data["notes"] = TOO_LONG
            invoice = control.act("create", "invoices", data=data)
            assert invoice is not None
            invoices.append(int(invoice["id"]))
            if long_notes:
                rejected.append(int(invoice["id"]))
            kinds["invoice created"] += 1
        elif draw < 0.80 and len(invoices) > len(rejected):
            # Rejected invoices wait, unchanged, for their correction after the run.
            target = rng.choice([i for i in invoices if i not in rejected])
            data = {"purchase_order": f"PO-{n}-rev", "notes": f"revision {n}"}
            control.act("update", "invoices", target, data=data)
            kinds["invoice updated"] += 1
        else:
            control.act("create", "notes", data={"customer_id": customer, "notes": f"Call {n}"})
            kinds["note created"] += 1
        if (n + 1) % WAVE == 0 and n + 1 < changes:
            settle(stack, timeout=WAVE * 0.5)
    report.changes_by_kind = dict(kinds)
    settle(stack, timeout=max(120.0, changes * 0.5))
    report.seconds["changes_applied"] = round(time.monotonic() - started, 1)

    # A scheduled pull of every invoice while Invoiced is faulty: it must only confirm what is there.
    stack.invoiced.control.set_faults(
        seed=seed,
        rates={"rate_limited": 0.15, "server_error": 0.05},
        bursts={"rate_limited": 2, "server_error": 1},
    )
    for _ in range(20):
        report.pull_runs += 1
        streams = pull(stack, "invoice", "to_salesforce")["streams"]
        if all(s["status"] == "done" for s in streams):
            break
        time.sleep(1)
    invoiced_faults = dict(stack.invoiced.control.faults.injected)
    stack.invoiced.control.set_faults(rates={}, bursts={})
    pull(stack, "customer", "to_billing")  # numbers of customers changed since
    settle(stack, timeout=max(120.0, changes * 0.2))
    report.seconds["pull_done"] = round(time.monotonic() - started, 1)

    letters = {name: dead_letters(stack, name) for name in OBJECTS}
    all_letters = [letter for found in letters.values() for letter in found]
    report.dead_letters = len(all_letters)
    report.dead_letters_by_code = dict(Counter(_code(letter) for letter in all_letters))
    report.permanent_rejections = len(rejected)
    per_record = Counter(
        letter["change"]["id"]
        for letter in letters["invoice"]
        if _code(letter) == "STRING_TOO_LONG" and letter["error"]["fields"] == ["Notes__c"]
    )
    report.permanent_with_one_letter = sum(1 for invoice in rejected if per_record.get(str(invoice)) == 1)

    # Corrected at the source, then redriven.
    for invoice in rejected:
        control.act("update", "invoices", invoice, data={"notes": "corrected"})
    settle(stack, timeout=120)
    report.redriven = sum(redrive(stack, name) for name in OBJECTS)
    settle(stack, timeout=120)
    report.seconds["total"] = round(time.monotonic() - started, 1)

    report.worker_killed = killed.is_set()
    report.webhook_deliveries = len(stack.invoiced.control.deliveries())
    sf_faults = stack.salesforce.control.faults.get()["injected"]
    report.faults_injected = {**{f"salesforce {k}": v for k, v in sf_faults.items()}}
    report.faults_injected.update({f"invoiced {k}": v for k, v in invoiced_faults.items()})
    report.faults_injected["worker killed after a Salesforce write"] = int(killed.is_set())
    report.retries = sum(
        1
        for name in OBJECTS
        for entry in sync_log(stack, name)
        if entry["outcome"] in {"failed", "waiting_for_parent"} and entry.get("code") != "STRING_TOO_LONG"
    )
    _compare(stack, report)
    return report


def _kill_once_after_a_write(stack: DevStack, function: str, *, after_commits: int) -> threading.Event:
    assert stack.salesforce and stack.runtime
    killed = threading.Event()
    commits = Counter[str]()
    runtime = stack.runtime

    def hook(record_ids: list[str]) -> None:
        commits["n"] += 1
        if not killed.is_set() and commits["n"] >= after_commits and runtime.kill_worker(function):
            killed.set()
            assert stack.salesforce
            stack.salesforce.control.on_commit(None)

    stack.salesforce.control.on_commit(hook)
    return killed


def _compare(stack: DevStack, report: SoakReport) -> None:
    """Salesforce against Invoiced, field by field."""
    assert stack.invoiced
    source = stack.invoiced.control.dump()
    expected_invoices = {f"main:{i['id']}": i for i in source["invoices"]}
    expected_notes = {f"main:{n['id']}": n for n in source["notes"]}
    expected_customers = {f"main:{c['id']}": c for c in source["customers"]}

    def by_external_id(sobject: str) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for row in records(stack, sobject):
            found.setdefault(row["Billing_Id__c"], []).append(row)
        return found

    invoices, notes, accounts = (
        by_external_id("Billing_Invoice__c"),
        by_external_id("Billing_Note__c"),
        by_external_id("Account"),
    )
    lines = by_external_id("Billing_Invoice_Line__c")
    deleted_lines = [r for r in records(stack, "Billing_Invoice_Line__c", deleted=True) if r.get("IsDeleted")]
    for expected, found in (
        (expected_invoices, invoices),
        (expected_notes, notes),
        (expected_customers, accounts),
    ):
        report.lost += sum(1 for key in expected if key not in found)
        report.duplicated += sum(len(rows) - 1 for rows in found.values() if len(rows) > 1)
        report.duplicated += sum(1 for key in found if key not in expected)
    report.duplicated += sum(len(rows) - 1 for rows in lines.values() if len(rows) > 1)

    def differs(key: str, field_name: str, want: Any, got: Any) -> None:
        if want != got:
            report.mismatches.append(f"{key} {field_name}: Invoiced {want!r}, Salesforce {got!r}")

    for key, invoice in expected_invoices.items():
        if key not in invoices:
            continue
        row = invoices[key][0]
        differs(key, "Purchase_Order__c", invoice.get("purchase_order"), row.get("Purchase_Order__c"))
        differs(key, "Notes__c", invoice.get("notes"), row.get("Notes__c"))
        differs(key, "Total__c", Decimal(str(invoice["total"])), Decimal(str(row.get("Total__c"))))
        differs(key, "Invoice_Number__c", invoice["number"], row.get("Invoice_Number__c"))
        synced_lines = [r for r in lines.values() if r[0].get("Invoice__c") == row["Id"]]
        differs(key, "lines", len(invoice["items"]), len(synced_lines))
        if len(synced_lines) != len(invoice["items"]):
            # Where did the missing lines go: never written, deleted, or under another invoice?
            for item in invoice["items"]:
                found = lines.get(f"main:{item['id']}")
                if found is None or found[0].get("Invoice__c") != row["Id"]:
                    gone = [r for r in deleted_lines if r["Billing_Id__c"] == f"main:{item['id']}"]
                    where = found[0].get("Invoice__c") if found else "deleted" if gone else "never written"
                    report.mismatches.append(f"{key} line main:{item['id']}: {where}")
            history = [
                (e["outcome"], e.get("cause"), e.get("code"), e.get("attempts"))
                for e in sync_log(stack, "invoice")
                if e["record_id"] == str(invoice["id"])
            ]
            report.mismatches.append(f"{key} sync log: {history}")
    for key, note in expected_notes.items():
        if key in notes:
            differs(key, "Body__c", note["notes"], notes[key][0].get("Body__c"))
    for key, customer in expected_customers.items():
        if key in accounts:
            differs(
                key,
                "Billing_Customer_Number__c",
                customer["number"],
                accounts[key][0].get("Billing_Customer_Number__c"),
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir, DevStack(soak_settings(Path(workdir), args.seed)) as stack:
        report = run_soak(stack, args.changes, seed=args.seed)
    result = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "ok": report.ok, **asdict(report)}
    result["mismatches"] = report.mismatches[:50]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
