"""Schedules → pulls since the checkpoint, in both directions, on the local stack."""

from __future__ import annotations

from decimal import Decimal

from local.stack import DevStack
from tests.e2e.helpers import FUNCTIONS, linked_customer, one, pull, records, salesforce_user, sync_log


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


def test_a_scheduled_pull_applies_what_changed_since_the_checkpoint(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    customer, _ = linked_customer(stack)
    quiet_invoices(stack, customer, 25)
    first = pull(stack, "invoice", "to_salesforce")
    assert first["streams"][0]["status"] == "done"
    assert first["streams"][0]["outcomes"] == {"applied": 25}
    assert len(records(stack, "Billing_Invoice__c")) == 25
    calls_before = stack.salesforce.control.calls()["calls"].get("POST /composite", 0)
    changed = stack.invoiced.control.act(
        "create",
        "invoices",
        data={"customer": customer, "items": [{"name": "New", "quantity": 1, "unit_cost": 7}]},
    )
    stack.invoiced.control.remove_webhook(
        stack.invoiced.control.webhooks()[0]["id"]
    )  # only the schedule sees it
    second = pull(stack, "invoice", "to_salesforce")
    assert second["streams"][0]["outcomes"] == {"applied": 1}, second
    assert one(stack, "Billing_Invoice__c", Billing_Id__c=f"main:{changed['id']}")["Total__c"] == 7
    assert stack.salesforce.control.calls()["calls"]["POST /composite"] == calls_before + 1
    third = pull(stack, "invoice", "to_salesforce")
    assert third["streams"][0]["records"] <= 1  # only the lookback's overlap, skipped as unchanged
    assert set(third["streams"][0]["outcomes"]) <= {"skipped_unchanged"}


def test_an_account_marked_for_billing_becomes_a_customer_with_its_ids_written_back(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    [ticked, plain] = stack.salesforce.control.seed(
        "Account",
        [
            {
                "Name": "Globex",
                "Create_In_Billing__c": True,
                "Phone": "555-0100",
                "BillingCity": "Lyon",
                "BillingCountry": "FR",
            },
            {"Name": "Not For Billing", "Phone": "555-0199"},
        ],
    )
    result = pull(stack, "customer", "to_billing")
    assert result["streams"][0]["outcomes"] == {"applied": 1}
    [customer] = stack.invoiced.control.dump()["customers"]
    assert customer["name"] == "Globex"
    assert customer["city"] == "Lyon"
    assert customer["metadata"]["salesforce_id"] == ticked
    account = one(stack, "Account", Id=ticked)
    assert account["Billing_Id__c"] == f"main:{customer['id']}"
    assert account["Billing_Customer_Number__c"] == customer["number"]
    assert one(stack, "Account", Id=plain)["Billing_Id__c"] is None
    # A later edit of the account updates the customer; the write-back itself is not sent back.
    salesforce_user(stack).Account.update(ticked, {"Phone": "555-0111"})
    again = pull(stack, "customer", "to_billing")
    assert again["streams"][0]["outcomes"] == {"applied": 1}
    assert stack.invoiced.control.dump()["customers"][0]["phone"] == "555-0111"
    quiet = pull(stack, "customer", "to_billing")
    assert set(quiet["streams"][0]["outcomes"]) <= {"skipped_unchanged"}
    assert len(stack.invoiced.control.dump()["customers"]) == 1


def test_contacts_of_billing_accounts_become_customer_contacts(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    [account] = stack.salesforce.control.seed("Account", [{"Name": "Initech", "Create_In_Billing__c": True}])
    [contact] = stack.salesforce.control.seed(
        "Contact",
        [{"FirstName": "Ana", "LastName": "Lee", "Email": "ana@initech.test", "AccountId": account}],
    )
    # The contact's customer does not exist yet: it waits for its parent.
    waiting = pull(stack, "contact", "to_billing")
    assert waiting["streams"][0]["outcomes"] == {"waiting_for_parent": 1}
    pull(stack, "customer", "to_billing")
    salesforce_user(stack).Contact.update(contact, {"Title": "CFO"})
    pull(stack, "contact", "to_billing")
    [customer] = stack.invoiced.control.dump()["customers"]
    contacts = stack.invoiced.control.dump()["contacts"]
    assert [(c["name"], c["email"], c["title"], c["customer"]) for c in contacts] == [
        ("Ana Lee", "ana@initech.test", "CFO", customer["id"])
    ]
    assert one(stack, "Contact", Id=contact)["Billing_Id__c"] == f"main:{contacts[0]['id']}"
    # Deleting it in Salesforce deletes it under its customer in Invoiced.
    salesforce_user(stack).Contact.delete(contact)
    pull(stack, "contact", "to_billing")
    assert stack.invoiced.control.dump()["contacts"] == []


def test_a_contact_waiting_for_its_account_follows_once_the_account_is_a_customer(stack: DevStack) -> None:
    """The retry re-reads the contact: the customer id it waited for is not in the row it first read."""
    assert stack.invoiced and stack.salesforce and stack.runtime
    [account] = stack.salesforce.control.seed("Account", [{"Name": "Hooli", "Create_In_Billing__c": True}])
    stack.salesforce.control.seed(
        "Contact", [{"FirstName": "Gavin", "LastName": "Belson", "AccountId": account}]
    )
    result = stack.runtime.fire_schedule(FUNCTIONS["contact"], "PullFromSalesforce")
    assert result.ok, result.error
    assert result.payload["streams"][0]["outcomes"] == {"waiting_for_parent": 1}
    pull(stack, "customer", "to_billing")  # meanwhile the contact is retried from its queue
    stack.runtime.drain(timeout=60)
    [customer] = stack.invoiced.control.dump()["customers"]
    assert [(c["name"], c["customer"]) for c in stack.invoiced.control.dump()["contacts"]] == [
        ("Gavin Belson", customer["id"])
    ]


def test_an_issued_salesforce_invoice_is_created_in_invoiced_with_its_number_and_ids_written_back(
    stack: DevStack,
) -> None:
    assert stack.invoiced and stack.salesforce
    customer, account = linked_customer(stack)
    [draft, issued] = stack.salesforce.control.seed(
        "Billing_Invoice__c",
        [
            {"Name": "Draft", "Account__c": account, "Currency__c": "USD"},
            {
                "Name": "Consulting",
                "Account__c": account,
                "Currency__c": "USD",
                "Issue__c": True,
                "Payment_Terms__c": "NET 30",
            },
        ],
    )
    lines = stack.salesforce.control.seed(
        "Billing_Invoice_Line__c",
        [
            {
                "Name": "Workshop",
                "Invoice__c": issued,
                "Quantity__c": 2,
                "Unit_Cost__c": 400,
                "Line_Number__c": 1,
            },
            {
                "Name": "Travel",
                "Invoice__c": issued,
                "Quantity__c": 1,
                "Unit_Cost__c": 120.5,
                "Line_Number__c": 2,
            },
        ],
    )
    result = pull(stack, "invoice", "to_billing")
    assert result["streams"][0]["outcomes"] == {"applied": 1}
    [invoice] = stack.invoiced.control.dump()["invoices"]
    assert invoice["customer"] == customer
    assert invoice["metadata"]["salesforce_id"] == issued
    assert [(i["name"], Decimal(str(i["amount"]))) for i in invoice["items"]] == [
        ("Workshop", Decimal("800")),
        ("Travel", Decimal("120.5")),
    ]
    synced = one(stack, "Billing_Invoice__c", Id=issued)
    assert synced["Billing_Id__c"] == f"main:{invoice['id']}"
    assert synced["Invoice_Number__c"] == invoice["number"]
    assert Decimal(str(synced["Balance__c"])) == Decimal("920.5")
    line_ids = {r["Id"]: r["Billing_Id__c"] for r in records(stack, "Billing_Invoice_Line__c")}
    assert [line_ids[i] for i in lines] == [f"main:{item['id']}" for item in invoice["items"]]
    assert one(stack, "Billing_Invoice__c", Id=draft)["Billing_Id__c"] is None
    # Invoiced's own webhook about the new invoice only refreshes what Invoiced computes.
    pull(stack, "invoice", "to_salesforce")
    assert len(records(stack, "Billing_Invoice__c")) == 2
    assert [e["outcome"] for e in sync_log(stack, "invoice") if e["direction"] == "to_billing"] == ["applied"]


def test_notes_travel_both_ways(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    customer, account = linked_customer(stack)
    from_billing = stack.invoiced.control.act(
        "create", "notes", data={"customer_id": customer, "notes": "Called about terms."}
    )
    pull(stack, "note", "to_salesforce")
    note = one(stack, "Billing_Note__c", Billing_Id__c=f"main:{from_billing['id']}")
    assert note["Body__c"] == "Called about terms."
    assert note["Account__c"] == account
    [from_salesforce] = stack.salesforce.control.seed(
        "Billing_Note__c", [{"Body__c": "Prefers email.", "Account__c": account}]
    )
    salesforce_user(stack).Account.update(account, {"Create_In_Billing__c": True})
    pull(stack, "note", "to_billing")
    notes = {n["notes"]: n for n in stack.invoiced.control.dump()["notes"]}
    assert notes["Prefers email."]["customer"] == customer
    assert (
        one(stack, "Billing_Note__c", Id=from_salesforce)["Billing_Id__c"]
        == f"main:{notes['Prefers email.']['id']}"
    )


def test_origin_wins_and_the_sync_log_says_so(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    customer, _ = linked_customer(stack)
    invoice = stack.invoiced.control.act(
        "create",
        "invoices",
        data={
            "customer": customer,
            "notes": "Thanks!",
            "items": [{"name": "Plan", "quantity": 1, "unit_cost": 9}],
        },
    )
    pull(stack, "invoice", "to_salesforce")
    synced = one(stack, "Billing_Invoice__c", Billing_Id__c=f"main:{invoice['id']}")
    # An edit in Salesforce of an invoice Invoiced owns is ignored, and logged as such.
    salesforce_user(stack).Billing_Invoice__c.update(
        synced["Id"], {"Notes__c": "Edited in Salesforce", "Issue__c": True}
    )
    pull(stack, "invoice", "to_billing")
    assert stack.invoiced.control.dump()["invoices"][0]["notes"] == "Thanks!"
    [ignored] = [e for e in sync_log(stack, "invoice") if e["direction"] == "to_billing"]
    assert ignored["outcome"] == "skipped_not_owned"
    assert "billing system owns" in ignored["message"]
    # The next change from Invoiced overwrites the Salesforce edit.
    stack.invoiced.control.act("update", "invoices", invoice["id"], data={"purchase_order": "PO-9"})
    pull(stack, "invoice", "to_salesforce")
    again = one(stack, "Billing_Invoice__c", Id=synced["Id"])
    assert again["Notes__c"] == "Thanks!"
    assert again["Purchase_Order__c"] == "PO-9"
