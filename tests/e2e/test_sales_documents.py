"""Credit notes, estimates, subscriptions and payments with their applications, Invoiced ⇄ Salesforce on the
local stack: webhooks and schedules, voids and deletes, parents that arrive after their children."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from local.stack import DevStack
from tests.e2e.helpers import (
    FUNCTIONS,
    linked_customer,
    one,
    pull,
    records,
    salesforce_user,
    settle,
    sync_log,
)

DAY = 86_400


def money(value: Any) -> Decimal:
    return Decimal(str(value))


def test_a_credit_note_reaches_salesforce_with_its_lines_and_its_void_follows(stack: DevStack) -> None:
    assert stack.invoiced
    customer, account = linked_customer(stack)
    credit_note = stack.invoiced.control.act(
        "create",
        "credit_notes",
        data={"customer": customer, "items": [{"name": "Refund", "quantity": 1, "unit_cost": 25}]},
    )
    settle(stack)
    synced = one(stack, "Billing_Credit_Note__c", Billing_Id__c=f"main:{credit_note['id']}")
    assert synced["Account__c"] == account
    assert synced["Credit_Note_Number__c"] == credit_note["number"]
    assert (synced["Status__c"], money(synced["Total__c"]), money(synced["Balance__c"])) == (
        "Open",
        Decimal(25),
        Decimal(25),
    )
    [line] = records(stack, "Billing_Credit_Note_Line__c")
    assert (line["Name"], line["Credit_Note__c"], money(line["Amount__c"])) == ("Refund", synced["Id"], 25)

    stack.invoiced.control.act("void", "credit_notes", credit_note["id"])
    settle(stack)
    voided = one(stack, "Billing_Credit_Note__c", Id=synced["Id"])
    assert (voided["Status__c"], voided["Billing_Deleted__c"]) == ("Voided", False)


def test_a_credit_note_deleted_in_invoiced_is_marked_deleted_not_removed(stack: DevStack) -> None:
    assert stack.invoiced
    customer, _ = linked_customer(stack)
    credit_note = stack.invoiced.control.act(
        "create",
        "credit_notes",
        data={"customer": customer, "draft": True, "items": [{"name": "Refund", "unit_cost": 5}]},
    )
    settle(stack)
    stack.invoiced.control.act("delete", "credit_notes", credit_note["id"])
    settle(stack)
    marked = one(stack, "Billing_Credit_Note__c", Billing_Id__c=f"main:{credit_note['id']}")
    assert marked["Billing_Deleted__c"] is True


def test_an_estimate_follows_approval_expiry_and_conversion_and_links_its_invoice(stack: DevStack) -> None:
    assert stack.invoiced
    customer, account = linked_customer(stack)
    control = stack.invoiced.control
    now = control.clock()["now"]
    approved = control.act(
        "create",
        "estimates",
        data={"customer": customer, "items": [{"name": "Onboarding", "unit_cost": 900}]},
    )
    expiring = control.act(
        "create",
        "estimates",
        data={
            "customer": customer,
            "expiration_date": now + DAY,
            "items": [{"name": "Audit", "unit_cost": 300}],
        },
    )
    settle(stack)
    synced = one(stack, "Billing_Estimate__c", Billing_Id__c=f"main:{approved['id']}")
    assert (synced["Account__c"], synced["Status__c"], money(synced["Total__c"])) == (
        account,
        "Not Sent",
        900,
    )
    assert [line["Name"] for line in records(stack, "Billing_Estimate_Line__c")] == ["Onboarding", "Audit"]

    control.act("approve", "estimates", approved["id"], data={"approved": "Dana Buyer"})
    control.advance_clock(2 * DAY)  # Invoiced's nightly status update expires the second estimate
    settle(stack)
    assert one(stack, "Billing_Estimate__c", Id=synced["Id"])["Status__c"] == "Approved"
    expired = one(stack, "Billing_Estimate__c", Billing_Id__c=f"main:{expiring['id']}")
    assert expired["Status__c"] == "Expired"

    invoice = control.act("invoice", "estimates", approved["id"])
    settle(stack)
    invoiced = one(stack, "Billing_Estimate__c", Id=synced["Id"])
    sf_invoice = one(stack, "Billing_Invoice__c", Billing_Id__c=f"main:{invoice['id']}")
    assert (invoiced["Status__c"], invoiced["Invoice__c"]) == ("Invoiced", sf_invoice["Id"])


def test_an_estimate_issued_in_salesforce_is_created_in_invoiced_and_gets_its_number(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    customer, account = linked_customer(stack)
    [estimate] = stack.salesforce.control.seed(
        "Billing_Estimate__c",
        [
            {
                "Name": "Expansion",
                "Account__c": account,
                "Currency__c": "USD",
                "Issue__c": True,
                "Expiration_Date__c": "2031-01-31",
            }
        ],
    )
    stack.salesforce.control.seed(
        "Billing_Estimate_Line__c",
        [
            {
                "Name": "Seats",
                "Estimate__c": estimate,
                "Quantity__c": 10,
                "Unit_Cost__c": 30,
                "Line_Number__c": 1,
            }
        ],
    )
    result = pull(stack, "estimate", "to_billing")
    assert result["streams"][0]["outcomes"] == {"applied": 1}
    [created] = stack.invoiced.control.dump(resources=["estimates"])["estimates"]
    assert (created["customer"], created["total"], created["items"][0]["quantity"]) == (customer, 300, 10)
    assert created["metadata"]["salesforce_id"] == estimate
    written_back = one(stack, "Billing_Estimate__c", Id=estimate)
    assert written_back["Billing_Id__c"] == f"main:{created['id']}"
    assert written_back["Estimate_Number__c"] == created["number"]
    assert written_back["Status__c"] == "Not Sent"
    [line] = records(stack, "Billing_Estimate_Line__c")
    assert line["Billing_Id__c"] == f"main:{created['items'][0]['id']}"

    # Origin wins: approval in Invoiced flows back; Salesforce keeps owning what it entered.
    stack.invoiced.control.act("approve", "estimates", created["id"])
    settle(stack)
    assert one(stack, "Billing_Estimate__c", Id=estimate)["Status__c"] == "Approved"


def test_salesforce_deletions_of_estimates_void_what_salesforce_created_and_ignore_the_rest(
    stack: DevStack,
) -> None:
    assert stack.invoiced and stack.salesforce
    customer, account = linked_customer(stack)
    [from_salesforce] = stack.salesforce.control.seed(
        "Billing_Estimate__c",
        [{"Name": "Ours", "Account__c": account, "Currency__c": "USD", "Issue__c": True}],
    )
    pull(stack, "estimate", "to_billing")
    from_invoiced = stack.invoiced.control.act(
        "create", "estimates", data={"customer": customer, "items": [{"name": "Theirs", "unit_cost": 1}]}
    )
    settle(stack)
    theirs = one(stack, "Billing_Estimate__c", Billing_Id__c=f"main:{from_invoiced['id']}")["Id"]
    person = salesforce_user(stack)
    person.Billing_Estimate__c.delete(from_salesforce)
    person.Billing_Estimate__c.delete(theirs)
    pull(stack, "estimate", "to_billing")
    estimates = {e["id"]: e for e in stack.invoiced.control.dump(resources=["estimates"])["estimates"]}
    assert estimates[from_invoiced["id"]]["status"] != "voided"
    [ours] = [e for e in estimates.values() if e["id"] != from_invoiced["id"]]
    assert ours["status"] == "voided"
    deletions = {
        e["record_id"]: (e["outcome"], e.get("message", ""))
        for e in sync_log(stack, "estimate")
        if e["direction"] == "to_billing" and e["record_id"] in (from_salesforce, theirs)
    }
    assert deletions[from_salesforce] == ("applied", "voided in the billing system")
    assert deletions[theirs][0] == "skipped_not_owned"
    assert "deleted in Salesforce, but the billing system owns" in deletions[theirs][1]


def _plans(stack: DevStack) -> None:
    assert stack.invoiced
    for plan_id, amount in (("pro-monthly", 49), ("extra-seats", 10), ("support", 25)):
        stack.invoiced.control.act(
            "create",
            "plans",
            data={"id": plan_id, "name": plan_id, "currency": "usd", "amount": amount, "interval": "month"},
        )


def test_a_subscription_arrives_with_its_plan_and_add_ons_and_its_cancellation_follows(
    stack: DevStack,
) -> None:
    assert stack.invoiced
    customer, account = linked_customer(stack)
    _plans(stack)
    subscription = stack.invoiced.control.act(
        "create",
        "subscriptions",
        data={
            "customer": customer,
            "plan": "pro-monthly",
            "quantity": 2,
            "addons": [{"plan": "extra-seats", "quantity": 5}, {"plan": "support", "quantity": 1}],
        },
    )
    settle(stack)
    synced = one(stack, "Billing_Subscription__c", Billing_Id__c=f"main:{subscription['id']}")
    assert (synced["Account__c"], synced["Plan__c"], synced["Status__c"]) == (
        account,
        "pro-monthly",
        "Active",
    )
    assert (money(synced["Recurring_Total__c"]), money(synced["MRR__c"])) == (173, 173)
    assert synced["Period_End__c"] and synced["Cancel_At_Period_End__c"] is False
    items = {i["Plan__c"]: i for i in records(stack, "Billing_Subscription_Item__c")}
    assert {p: (i["Item_Type__c"], i["Quantity__c"]) for p, i in items.items()} == {
        "pro-monthly": ("Plan", 2),
        "extra-seats": ("Add-on", 5),
        "support": ("Add-on", 1),
    }
    assert items["pro-monthly"]["Billing_Id__c"] == f"main:{subscription['id']}-plan"

    stack.invoiced.control.act(
        "update",
        "subscriptions",
        subscription["id"],
        data={"cancel_at_period_end": True, "addons": [{"plan": "extra-seats", "quantity": 5}]},
    )
    settle(stack)
    assert one(stack, "Billing_Subscription__c", Id=synced["Id"])["Cancel_At_Period_End__c"] is True
    assert sorted(i["Plan__c"] for i in records(stack, "Billing_Subscription_Item__c")) == [
        "extra-seats",
        "pro-monthly",
    ]

    stack.invoiced.control.act("cancel", "subscriptions", subscription["id"])  # Invoiced's DELETE
    settle(stack)
    canceled = one(stack, "Billing_Subscription__c", Id=synced["Id"])
    assert (canceled["Status__c"], canceled["Billing_Deleted__c"]) == ("Canceled", False)
    assert canceled["Canceled_At__c"]


def _invoice(stack: DevStack, customer: int, amount: int) -> dict[str, Any]:
    assert stack.invoiced
    invoice: dict[str, Any] = stack.invoiced.control.act(
        "create", "invoices", data={"customer": customer, "items": [{"name": "Service", "unit_cost": amount}]}
    )
    return invoice


def test_a_payment_and_how_it_applies_to_each_invoice_reach_salesforce_and_balances_agree(
    stack: DevStack,
) -> None:
    assert stack.invoiced
    customer, account = linked_customer(stack)
    first, second = _invoice(stack, customer, 100), _invoice(stack, customer, 80)
    payment = stack.invoiced.control.act(
        "create",
        "payments",
        data={
            "customer": customer,
            "amount": 150,
            "method": "check",
            "reference": "1042",
            "applied_to": [
                {"type": "invoice", "invoice": first["id"], "amount": 100},
                {"type": "invoice", "invoice": second["id"], "amount": 50},
            ],
        },
    )
    settle(stack)
    synced = one(stack, "Billing_Payment__c", Billing_Id__c=f"main:{payment['id']}")
    assert (synced["Account__c"], synced["Method__c"], synced["Reference__c"]) == (account, "Check", "1042")
    assert (money(synced["Amount__c"]), money(synced["Unapplied_Balance__c"]), synced["Voided__c"]) == (
        150,
        0,
        False,
    )
    invoices = {
        i["Billing_Id__c"]: i for i in records(stack, "Billing_Invoice__c")
    }  # their balances came with invoice.paid / invoice.updated
    first_sf, second_sf = invoices[f"main:{first['id']}"], invoices[f"main:{second['id']}"]
    applications = {a["Invoice__c"]: a for a in records(stack, "Billing_Payment_Application__c")}
    assert {k: (a["Type__c"], money(a["Amount__c"]), a["Payment__c"]) for k, a in applications.items()} == {
        first_sf["Id"]: ("Invoice", 100, synced["Id"]),
        second_sf["Id"]: ("Invoice", 50, synced["Id"]),
    }
    assert (first_sf["Status__c"], money(first_sf["Balance__c"])) == ("Paid", 0)
    assert money(second_sf["Balance__c"]) == 30

    stack.invoiced.control.act("void", "payments", payment["id"])  # Invoiced's DELETE voids
    settle(stack)
    voided = one(stack, "Billing_Payment__c", Id=synced["Id"])
    assert (voided["Voided__c"], voided["Billing_Deleted__c"]) == (True, False)
    assert records(stack, "Billing_Payment_Application__c") == []
    balances = {i["Billing_Id__c"]: money(i["Balance__c"]) for i in records(stack, "Billing_Invoice__c")}
    assert balances == {f"main:{first['id']}": 100, f"main:{second['id']}": 80}


def test_a_credit_note_applied_to_an_invoice_links_both_through_its_application(stack: DevStack) -> None:
    assert stack.invoiced
    customer, _ = linked_customer(stack)
    invoice = _invoice(stack, customer, 60)
    credit_note = stack.invoiced.control.act(
        "create",
        "credit_notes",
        data={"customer": customer, "items": [{"name": "Goodwill", "unit_cost": 20}]},
    )
    application = stack.invoiced.control.act(
        "create",
        "payments",
        data={
            "customer": customer,
            "amount": 0,
            "applied_to": [
                {
                    "type": "credit_note",
                    "credit_note": credit_note["id"],
                    "document_type": "invoice",
                    "invoice": invoice["id"],
                    "amount": 20,
                }
            ],
        },
    )
    settle(stack)
    [link] = records(stack, "Billing_Payment_Application__c")
    sf_credit_note = one(stack, "Billing_Credit_Note__c", Billing_Id__c=f"main:{credit_note['id']}")
    sf_invoice = one(stack, "Billing_Invoice__c", Billing_Id__c=f"main:{invoice['id']}")
    assert (link["Type__c"], link["Credit_Note__c"], link["Invoice__c"], money(link["Amount__c"])) == (
        "Credit Note",
        sf_credit_note["Id"],
        sf_invoice["Id"],
        20,
    )
    assert (
        link["Payment__c"]
        == one(stack, "Billing_Payment__c", Billing_Id__c=f"main:{application['id']}")["Id"]
    )
    assert money(sf_invoice["Balance__c"]) == 40
    assert money(sf_credit_note["Balance__c"]) == 0


def test_the_first_read_of_payments_starts_after_the_first_reads_of_what_they_pay(stack: DevStack) -> None:
    assert stack.invoiced and stack.runtime
    customer, _ = linked_customer(stack)
    [endpoint] = stack.invoiced.control.webhooks()
    stack.invoiced.control.pause_webhook(endpoint["id"])  # a backfill: everything comes from the pulls
    invoice = _invoice(stack, customer, 40)
    stack.invoiced.control.act(
        "create",
        "payments",
        data={
            "customer": customer,
            "amount": 40,
            "applied_to": [{"type": "invoice", "invoice": invoice["id"], "amount": 40}],
        },
    )
    first = pull(stack, "payment", "to_salesforce")
    assert [(s["status"], s["detail"]) for s in first["streams"]] == [
        ("waiting", "its first read starts after the first read of invoice, credit_note, estimate")
    ]
    assert records(stack, "Billing_Payment__c") == []
    for prerequisite in ("invoice", "credit_note", "estimate"):
        pull(stack, prerequisite, "to_salesforce")
    second = pull(stack, "payment", "to_salesforce")
    assert second["streams"][0]["outcomes"] == {"applied": 1}
    [application] = records(stack, "Billing_Payment_Application__c")
    assert (
        application["Invoice__c"]
        == one(stack, "Billing_Invoice__c", Billing_Id__c=f"main:{invoice['id']}")["Id"]
    )


def test_a_payment_that_arrives_before_its_invoice_waits_for_it_then_links(stack: DevStack) -> None:
    assert stack.invoiced and stack.runtime
    for first_read in ("invoice", "credit_note", "estimate", "payment"):
        pull(stack, first_read, "to_salesforce")
    customer, _ = linked_customer(stack)
    [endpoint] = stack.invoiced.control.webhooks()
    stack.invoiced.control.pause_webhook(endpoint["id"])
    invoice = _invoice(stack, customer, 70)
    payment = stack.invoiced.control.act(
        "create",
        "payments",
        data={
            "customer": customer,
            "amount": 70,
            "applied_to": [{"type": "invoice", "invoice": invoice["id"], "amount": 70}],
        },
    )
    # The payment's scheduled pull runs while the invoice is not in Salesforce yet.
    result = stack.runtime.fire_schedule(FUNCTIONS["payment"], "PullFromBilling")
    assert result.ok, result.error
    waiting = [e for e in sync_log(stack, "payment") if e["billing_id"] == str(payment["id"])]
    assert waiting and waiting[-1]["outcome"] == "waiting_for_parent"
    assert records(stack, "Billing_Payment_Application__c") == []

    pull(stack, "invoice", "to_salesforce")  # meanwhile the waiting payment is retried from its queue
    sf_invoice = one(stack, "Billing_Invoice__c", Billing_Id__c=f"main:{invoice['id']}")
    [application] = records(stack, "Billing_Payment_Application__c")
    assert (application["Invoice__c"], money(application["Amount__c"])) == (sf_invoice["Id"], 70)
    assert sync_log(stack, "payment")[-1]["outcome"] == "applied"
    stack.invoiced.control.resume_webhook(endpoint["id"])
