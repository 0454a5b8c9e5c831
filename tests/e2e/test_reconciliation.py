"""After a full sync of the demo's data set, Salesforce agrees with Invoiced record for record and amount
for amount: invoices, credit notes, estimates, subscriptions, payments and how each payment applies."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal
from typing import Any

from local.demo.data import BillingSizes, billing_seed, linked_accounts
from local.stack import SOURCE_KEY, DevStack
from tests.e2e.helpers import dead_letters, pull, records

SIZES = BillingSizes(
    customers=12, invoices=60, notes=5, credit_notes=10, estimates=15, subscriptions=12, payments=30
)
DOCUMENTS = {  # Invoiced collection: (Salesforce object, its line object, the line's parent field)
    "invoices": ("Billing_Invoice__c", "Billing_Invoice_Line__c", "Invoice__c"),
    "credit_notes": ("Billing_Credit_Note__c", "Billing_Credit_Note_Line__c", "Credit_Note__c"),
    "estimates": ("Billing_Estimate__c", "Billing_Estimate_Line__c", "Estimate__c"),
}


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def by_billing_id(stack: DevStack, sobject: str) -> dict[str, dict[str, Any]]:
    rows = records(stack, sobject)
    found = {row["Billing_Id__c"]: row for row in rows}
    assert len(found) == len(rows), f"duplicate {sobject} records"
    return found


def test_a_full_sync_of_the_demo_data_agrees_with_invoiced_record_for_record(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    data = billing_seed(random.Random(11), SIZES)
    ids = stack.invoiced.control.seed(data)
    accounts = stack.salesforce.control.seed(
        "Account", linked_accounts(data["customers"], ids["customers"], SOURCE_KEY)
    )
    account_of = {f"{SOURCE_KEY}:{c}": a for c, a in zip(ids["customers"], accounts, strict=True)}
    for object_name in ("invoice", "credit_note", "estimate", "subscription", "payment"):
        pull(stack, object_name, "to_salesforce")
    billing = stack.invoiced.control.dump()

    for collection, (sobject, line_object, line_parent) in DOCUMENTS.items():
        synced = by_billing_id(stack, sobject)
        assert len(synced) == len(billing[collection]) > 0
        lines = Counter(row[line_parent] for row in records(stack, line_object))
        for document in billing[collection]:
            row = synced[f"{SOURCE_KEY}:{document['id']}"]
            assert row["Account__c"] == account_of[f"{SOURCE_KEY}:{document['customer']}"]
            assert money(row["Total__c"]) == money(document["total"]), (collection, document["id"])
            if "balance" in document:
                assert money(row["Balance__c"]) == money(document["balance"]), (collection, document["id"])
            assert lines[row["Id"]] == len(document["items"])

    subscriptions = by_billing_id(stack, "Billing_Subscription__c")
    items = Counter(row["Subscription__c"] for row in records(stack, "Billing_Subscription_Item__c"))
    assert len(subscriptions) == len(billing["subscriptions"])
    for subscription in billing["subscriptions"]:
        row = subscriptions[f"{SOURCE_KEY}:{subscription['id']}"]
        assert (money(row["MRR__c"]), money(row["Recurring_Total__c"])) == (
            money(subscription["mrr"]),
            money(subscription["recurring_total"]),
        )
        assert items[row["Id"]] == 1 + len(subscription["addons"])

    payments = by_billing_id(stack, "Billing_Payment__c")
    invoice_ids = {
        row["Id"]: billing_id for billing_id, row in by_billing_id(stack, "Billing_Invoice__c").items()
    }
    payment_ids = {row["Id"]: billing_id for billing_id, row in payments.items()}
    applied = {
        (payment_ids[row["Payment__c"]], invoice_ids[row["Invoice__c"]], money(row["Amount__c"]))
        for row in records(stack, "Billing_Payment_Application__c")
    }
    expected = set()
    assert len(payments) == len(billing["payments"])
    for payment in billing["payments"]:
        row = payments[f"{SOURCE_KEY}:{payment['id']}"]
        assert (money(row["Amount__c"]), money(row["Unapplied_Balance__c"])) == (
            money(payment["amount"]),
            money(payment["balance"]),
        )
        expected |= {
            (f"{SOURCE_KEY}:{payment['id']}", f"{SOURCE_KEY}:{split['invoice']}", money(split["amount"]))
            for split in payment["applied_to"]
        }
    assert applied == expected
    for object_name in ("invoice", "credit_note", "estimate", "subscription", "payment"):
        assert dead_letters(stack, object_name) == []
