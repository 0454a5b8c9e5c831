"""`billsync demo`: the whole stack on this machine, a realistic data set, and billsync at work.

It starts the local stack (AWS stand-in, Salesforce and Invoiced emulators, every function of
template.yaml with its schedules running on a timer), seeds both systems, lets the scheduled pulls do
the initial sync, then shows live syncs in both directions, a forged webhook refused and a bad record
landing in the dead-letter queue with its reason, and ends with a summary.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from boto3.dynamodb.types import TypeDeserializer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from simple_salesforce import Salesforce

from local.demo.data import BillingSizes, billing_seed, contacts_for, linked_accounts, new_accounts
from local.invoiced import InvoicedSettings
from local.salesforce.clients import LoginRewritingSession
from local.stack import SOURCE_KEY, DevStack, StackSettings

console = Console(highlight=False)


class Demo:
    def __init__(self, stack: DevStack, seed: int) -> None:
        assert stack.salesforce and stack.invoiced and stack.runtime
        self.stack = stack
        self.sf = stack.salesforce
        self.inv = stack.invoiced
        self.runtime = stack.runtime
        self.rng = random.Random(seed)
        creds = self.sf.credentials
        self.person = Salesforce(
            username=creds["human_username"],
            password=creds["human_password"],
            security_token=creds["human_security_token"],
            session=LoginRewritingSession(self.sf.base_url, self.sf.ca_file),
        )

    # ------------------------------------------------------------------------------ helpers

    def count(self, sobject: str, **match: Any) -> int:
        rows = self.sf.control.dump(sobject, include_deleted=False)
        return sum(1 for r in rows if all(r.get(k) == v for k, v in match.items()))

    def find(self, sobject: str, **match: Any) -> dict[str, Any] | None:
        for row in self.sf.control.dump(sobject, include_deleted=False):
            if all(row.get(k) == v for k, v in match.items()):
                return row
        return None

    @staticmethod
    def wait(what: str, check: Callable[[], Any], timeout: float = 60.0) -> tuple[Any, float]:
        started = time.monotonic()
        while True:
            found = check()
            if found:
                return found, time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.2)

    def api_used(self) -> int:
        return int(self.sf.control.calls()["api_usage"]["used"])

    def sync_log(self) -> list[dict[str, Any]]:
        client = self.runtime.boto3_client("dynamodb")
        table = self.runtime.outputs["StateTableName"]
        de = TypeDeserializer()
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": table}
        while True:
            page = client.scan(**kwargs)
            items += [
                {k: de.deserialize(v) for k, v in i.items()}
                for i in page["Items"]
                if i["pk"]["S"].startswith("LOG#")
            ]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def dead_letters(self, object_name: str) -> list[dict[str, Any]]:
        sqs = self.runtime.boto3_client("sqs")
        camel = "".join(part.title() for part in object_name.split("_"))
        url = self.runtime.outputs[f"{camel}DLQUrl"]
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=5).get(
            "Messages", []
        )
        for m in messages:
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
        return [json.loads(m["Body"]) for m in messages]

    # ------------------------------------------------------------------------------ acts

    def seed(self, sizes: BillingSizes, new: int) -> dict[str, Any]:
        console.rule("[bold]1. Two systems with history")
        data = billing_seed(self.rng, sizes)
        ids = self.inv.control.seed(data)
        self.linked = linked_accounts(data["customers"], ids["customers"], SOURCE_KEY)
        self.account_ids = self.sf.control.seed("Account", self.linked)
        self.new_ids = self.sf.control.seed("Account", new_accounts(self.rng, new, start=sizes.customers))
        self.sf.control.seed("Contact", contacts_for(self.rng, self.new_ids))
        console.print(
            f"Invoiced: [bold]{sizes.customers}[/] customers, [bold]{sizes.invoices}[/] invoices "
            f"({sum(len(i['items']) for i in data['invoices'])} lines), [bold]{sizes.credit_notes}[/] credit notes, "
            f"[bold]{sizes.estimates}[/] estimates, [bold]{sizes.subscriptions}[/] subscriptions, "
            f"[bold]{sizes.payments}[/] payments applied to invoices, [bold]{sizes.notes}[/] notes.\n"
            f"Salesforce: [bold]{sizes.customers}[/] accounts linked to those customers by their Invoiced id, and "
            f"[bold]{new}[/] new accounts (with a contact each) marked [italic]Create In Billing[/]."
        )
        return ids

    def initial_sync(self, sizes: BillingSizes, new: int) -> float:
        console.rule("[bold]2. The initial sync, by the scheduled pulls")
        console.print(
            "Each object's function pulls on its schedule (every few seconds here): no cursor yet, so it reads everything."
        )
        started, api_before = time.monotonic(), self.api_used()
        goals = [
            ("invoices → Billing_Invoice__c", sizes.invoices, lambda: self.count("Billing_Invoice__c")),
            (
                "credit notes → Billing_Credit_Note__c",
                sizes.credit_notes,
                lambda: self.count("Billing_Credit_Note__c"),
            ),
            ("estimates → Billing_Estimate__c", sizes.estimates, lambda: self.count("Billing_Estimate__c")),
            (
                "subscriptions → Billing_Subscription__c",
                sizes.subscriptions,
                lambda: self.count("Billing_Subscription__c"),
            ),
            ("payments → Billing_Payment__c", sizes.payments, lambda: self.count("Billing_Payment__c")),
            (
                "  applied → Billing_Payment_Application__c",
                sizes.payments,
                lambda: self.count("Billing_Payment_Application__c"),
            ),
            ("notes → Billing_Note__c", sizes.notes, lambda: self.count("Billing_Note__c")),
            (
                "accounts → Invoiced customers",
                new,
                lambda: len(self.inv.control.dump(resources=["customers"])["customers"]) - len(self.linked),
            ),
            (
                "contacts → Invoiced contacts",
                new,
                lambda: len(self.inv.control.dump(resources=["contacts"])["contacts"]),
            ),
        ]
        with Progress(
            TextColumn("{task.description:44}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            tasks = [(progress.add_task(label, total=goal), goal, check) for label, goal, check in goals]
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                done = True
                for task, goal, check in tasks:
                    value = check()
                    progress.update(task, completed=min(value, goal))
                    done &= value >= goal
                if done:
                    break
                time.sleep(0.5)
        elapsed = time.monotonic() - started
        lines = self.count("Billing_Invoice_Line__c")
        console.print(
            f"Done in [bold]{elapsed:.1f} s[/]: {sizes.invoices} invoices and {lines} lines, and the rest, linked to their "
            f"accounts and invoices by external id, cost [bold]{self.api_used() - api_before}[/] Salesforce API requests "
            "(200 records per sObject Collection, five collections per /composite request)."
        )
        return elapsed

    def live_webhook(self, customer_id: int) -> None:
        console.rule("[bold]3. Live: Invoiced → Salesforce by webhook")
        invoice = self.inv.control.act(
            "create",
            "invoices",
            data={
                "customer": customer_id,
                "items": [{"name": "Consulting", "quantity": 3, "unit_cost": 250}],
            },
        )
        row, took = self.wait(
            "the new invoice",
            lambda: self.find("Billing_Invoice__c", Billing_Id__c=f"{SOURCE_KEY}:{invoice['id']}"),
        )
        console.print(
            f"A clerk creates {invoice['number']} in Invoiced → webhook → queue → invoice function → Salesforce "
            f"in [bold]{took:.2f} s[/] (status {row['Status__c']}, total {row['Total__c']})."
        )
        self.inv.control.act("pay", "invoices", invoice["id"])
        paid, took = self.wait(
            "the payment",
            lambda: self.find(
                "Billing_Invoice__c", Billing_Id__c=f"{SOURCE_KEY}:{invoice['id']}", Status__c="Paid"
            ),
        )
        console.print(
            f"The customer pays it: [bold]invoice.paid[/] reaches Salesforce in {took:.2f} s (balance {paid['Balance__c']})."
        )

    def live_schedule(self, account_id: str) -> None:
        console.rule("[bold]4. Live: Salesforce → Invoiced by schedule, with ids written back")
        [fresh] = self.sf.control.seed(
            "Account", [{"Name": "Umbrella Works Ltd", "Phone": "+44 20 7946 0000"}]
        )
        self.person.Account.update(fresh, {"Create_In_Billing__c": True})
        row, took = self.wait(
            "the write-back",
            lambda: (
                self.find("Account", Id=fresh, Billing_Customer_Number__c=None) is None
                and self.find("Account", Id=fresh)
            ),
        )
        console.print(
            f"A sales rep ticks [italic]Create In Billing[/] on Umbrella Works → the next pull creates the Invoiced customer "
            f"({took:.1f} s) and writes back its id [bold]{row['Billing_Id__c']}[/] and number [bold]{row['Billing_Customer_Number__c']}[/]."
        )
        [draft] = self.sf.control.seed(
            "Billing_Invoice__c", [{"Name": "Workshop", "Account__c": account_id, "Currency__c": "USD"}]
        )
        self.sf.control.seed(
            "Billing_Invoice_Line__c",
            [
                {
                    "Name": "Design workshop",
                    "Invoice__c": draft,
                    "Quantity__c": 2,
                    "Unit_Cost__c": 800,
                    "Line_Number__c": 1,
                }
            ],
        )
        self.person.Billing_Invoice__c.update(draft, {"Issue__c": True})
        row, took = self.wait(
            "the issued invoice",
            lambda: (r := self.find("Billing_Invoice__c", Id=draft)) and r.get("Invoice_Number__c") and r,
        )
        console.print(
            f"She builds an invoice in Salesforce and ticks [italic]Issue[/] → Invoiced creates it ({took:.1f} s); its number "
            f"[bold]{row['Invoice_Number__c']}[/], id and balance {row['Balance__c']} come back onto the record."
        )

    def card_from_salesforce(self, account_id: str) -> None:
        console.rule("[bold]5. A card entered in Salesforce, as a token")
        token = self.inv.control.tokenize_card(brand="Visa", last4="1881", exp_month=9, exp_year=2030)
        [card] = self.sf.control.seed(
            "Billing_Card__c", [{"Account__c": account_id, "Gateway_Token__c": token}]
        )
        row, took = self.wait(
            "the card write-back",
            lambda: (r := self.find("Billing_Card__c", Id=card)) and r.get("Billing_Id__c") and r,
        )
        console.print(
            "A payment page hands Salesforce a gateway token (never a card number) → the next pull adds the card to the "
            f"Invoiced customer ({took:.1f} s); Salesforce gets back {row['Brand__c']} •••• {row['Last4__c']}, "
            f"{int(row['Exp_Month__c']):02d}/{int(row['Exp_Year__c'])}, id [bold]{row['Billing_Id__c']}[/]. "
            "A card number pasted into the token field would be refused and never logged."
        )

    def origin_wins(self, invoice_id: int) -> None:
        console.rule("[bold]6. Origin wins")
        row = self.find("Billing_Invoice__c", Billing_Id__c=f"{SOURCE_KEY}:{invoice_id}")
        assert row is not None
        self.person.Billing_Invoice__c.update(row["Id"], {"Purchase_Order__c": "PO-EDITED-IN-SF"})
        entry, _ = self.wait(
            "the sync log entry",
            lambda: next(
                (
                    e
                    for e in self.sync_log()
                    if e.get("outcome") == "skipped_not_owned" and e.get("record_id") == row["Id"]
                ),
                None,
            ),
        )
        console.print(
            "Someone edits an invoice that was created in Invoiced directly in Salesforce. The pull sees it and "
            f"leaves Invoiced alone; the sync log says: [italic]{entry['message']}[/]"
        )

    def forged_webhook(self) -> None:
        console.rule("[bold]7. A forged webhook")
        body = json.dumps({"id": 1, "type": "invoice.paid", "data": {"object": {"id": 1}}}).encode()
        forged = hmac.new(b"guessed-secret", body, hashlib.sha256).hexdigest()
        answer = requests.post(
            self.stack.webhook_url, data=body, headers={"X-Invoiced-Signature": forged}, timeout=10
        )
        console.print(
            f"A request signed with the wrong secret gets [bold]{answer.status_code}[/] {answer.json()['error']!r}; nothing is queued."
        )

    def bad_record(self, customer_id: int) -> None:
        console.rule("[bold]8. A record Salesforce refuses")
        invoice = self.inv.control.act(
            "create",
            "invoices",
            data={
                "customer": customer_id,
                "notes": "Terms: " + "x" * 40_000,
                "items": [{"name": "Plan", "quantity": 1, "unit_cost": 10}],
            },
        )
        letters, _ = self.wait("the dead letter", lambda: self.dead_letters("invoice"))
        letter = letters[0]
        console.print(
            f"Invoice {invoice['number']} has 40,000 characters of notes; Salesforce's Notes__c holds 32,768. It lands in the "
            f"invoice DLQ with its reason: [bold]{letter['error']['code']}[/] on {', '.join(letter['error']['fields'])} — "
            f"{letter['error']['message'][:90]}…"
        )

    def summary(self, started: float, initial: float) -> None:
        console.rule("[bold]Summary")
        table = Table(
            "object", "in Invoiced", "in Salesforce", "applied", "skipped", "waiting", "failed", "in DLQ"
        )
        outcomes: dict[str, Counter[str]] = {}
        for entry in self.sync_log():
            outcomes.setdefault(entry["object"], Counter())[entry["outcome"]] += 1
        dump = self.inv.control.dump(resources=[collection for collection, _ in SUMMARY.values()])
        counts = {
            name: (len(dump[collection]), self.count(sobject))
            for name, (collection, sobject) in SUMMARY.items()
        }
        for name, (billing, salesforce) in counts.items():
            seen = outcomes.get(name, Counter())
            skipped = sum(v for k, v in seen.items() if k.startswith("skipped"))
            table.add_row(
                name,
                str(billing),
                str(salesforce),
                str(seen["applied"]),
                str(skipped),
                str(seen["waiting_for_parent"]),
                str(seen["failed"]),
                str(len(self.dead_letters(name))),
            )
        console.print(table)
        console.print(
            f"Salesforce API requests used: [bold]{self.api_used()}[/] for everything above. Initial sync {initial:.1f} s; "
            f"whole demo {time.monotonic() - started:.1f} s.\n"
            "Try it yourself: [bold]billsync local up[/] keeps this stack running; the README's operator tour shows what to run."
        )


SUMMARY = {  # object: (Invoiced collection, Salesforce object)
    "customer": ("customers", "Account"),
    "contact": ("contacts", "Contact"),
    "invoice": ("invoices", "Billing_Invoice__c"),
    "credit_note": ("credit_notes", "Billing_Credit_Note__c"),
    "estimate": ("estimates", "Billing_Estimate__c"),
    "subscription": ("subscriptions", "Billing_Subscription__c"),
    "payment": ("payments", "Billing_Payment__c"),
    "card": ("payment_sources", "Billing_Card__c"),
    "note": ("notes", "Billing_Note__c"),
}


def run_demo(
    *,
    sizes: BillingSizes,
    new: int = 20,
    seed: int = 7,
    workdir: Path = Path(".billsync/demo"),
) -> None:
    started = time.monotonic()
    console.print(
        "[bold]billsync demo[/]: starting the local stack (AWS stand-in, Salesforce and Invoiced emulators, every function of template.yaml)…"
    )
    settings = StackSettings(
        workdir=workdir,
        schedules="manual",  # the timer starts once both systems hold their history
        schedule_interval=3.0,
        invoiced=InvoicedSettings(webhook_timeout_s=10.0, webhook_connect_timeout_s=2.0),
    )
    with DevStack(settings) as stack:
        assert stack.runtime and stack.salesforce and stack.invoiced
        console.print(
            f"API (webhooks): {stack.webhook_url}\nSalesforce: {stack.salesforce.base_url}\nInvoiced: {stack.invoiced.base_url}"
        )
        demo = Demo(stack, seed)
        ids = demo.seed(sizes, new)
        stack.runtime.start_schedules()
        initial = demo.initial_sync(sizes, new)
        first_customer = ids["customers"][0]
        demo.live_webhook(first_customer)
        demo.live_schedule(demo.account_ids[0])
        demo.card_from_salesforce(demo.account_ids[0])
        demo.origin_wins(ids["invoices"][0])
        demo.forged_webhook()
        demo.bad_record(first_customer)
        demo.summary(started, initial)
