"""Several billing entities feed one org; switches turn objects off or manual; last-synced times are kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from boto3.dynamodb.types import TypeDeserializer

from local.stack import SECOND_SOURCE_KEY, SOURCE_KEY, DevStack
from tests.e2e.helpers import one, pull, records, settle, sync_log


def checkpoint(stack: DevStack, source: str, object_name: str, direction: str) -> dict:
    assert stack.runtime
    client = stack.runtime.boto3_client("dynamodb")
    key = {"pk": {"S": f"C#{source}#{object_name}#{direction}"}, "sk": {"S": "C"}}
    item = client.get_item(TableName=stack.runtime.outputs["StateTableName"], Key=key).get("Item", {})
    return {k: TypeDeserializer().deserialize(v) for k, v in item.items()}


def test_each_account_routes_to_its_entity_and_ids_never_collide(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    stack.reconfigure(sources=(SOURCE_KEY, SECOND_SOURCE_KEY))
    [home, abroad] = stack.salesforce.control.seed(
        "Account",
        [
            {"Name": "Default Entity Co", "Create_In_Billing__c": True},
            {
                "Name": "European Entity GmbH",
                "Create_In_Billing__c": True,
                "Billing_Source__c": SECOND_SOURCE_KEY,
            },
        ],
    )
    result = pull(stack, "customer", "to_billing")
    assert {s["source"]: s["outcomes"] for s in result["streams"]} == {
        SOURCE_KEY: {"applied": 1},
        SECOND_SOURCE_KEY: {"applied": 1},
    }
    [main_customer] = stack.invoiced.control.dump()["customers"]
    [eu_customer] = stack.invoiced.control.dump(account="sandbox")["customers"]
    assert (main_customer["name"], eu_customer["name"]) == ("Default Entity Co", "European Entity GmbH")
    assert one(stack, "Account", Id=home)["Billing_Id__c"] == f"{SOURCE_KEY}:{main_customer['id']}"
    assert one(stack, "Account", Id=abroad)["Billing_Id__c"] == f"{SECOND_SOURCE_KEY}:{eu_customer['id']}"
    # Each entity's invoices reach the account of their own entity, through their own webhook URL.
    for account, key, customer in (
        ("production", SOURCE_KEY, main_customer),
        ("sandbox", SECOND_SOURCE_KEY, eu_customer),
    ):
        stack.invoiced.control.act(
            "create",
            "invoices",
            data={"customer": customer["id"], "items": [{"name": key, "quantity": 1, "unit_cost": 5}]},
            account=account,
        )
    settle(stack)
    invoices = {r["Billing_Source__c"]: r for r in records(stack, "Billing_Invoice__c")}
    assert invoices[SOURCE_KEY]["Account__c"] == home
    assert invoices[SECOND_SOURCE_KEY]["Account__c"] == abroad
    assert invoices[SOURCE_KEY]["Billing_Id__c"] != invoices[SECOND_SOURCE_KEY]["Billing_Id__c"]


def test_a_switched_off_object_is_left_alone_and_says_so(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    stack.reconfigure({"objects": {"invoice": {"enabled": False}}})
    customer = stack.invoiced.control.act("create", "customers", data={"name": "Acme"})
    stack.salesforce.control.seed("Account", [{"Name": "Acme", "Billing_Id__c": f"main:{customer['id']}"}])
    stack.invoiced.control.act(
        "create",
        "invoices",
        data={"customer": customer["id"], "items": [{"name": "Plan", "quantity": 1, "unit_cost": 9}]},
    )
    settle(stack)
    assert pull(stack, "invoice", "to_salesforce")["skipped"] == "manual or switched off"
    assert records(stack, "Billing_Invoice__c") == []
    deliveries = [
        d["status"] for d in stack.invoiced.control.deliveries() if d["event_type"] == "invoice.created"
    ]
    assert deliveries == [202]  # the webhook was acknowledged (and ignored): Invoiced will not retry it


def test_manual_mode_syncs_nothing_on_its_own(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    stack.reconfigure({"sync": {"mode": "manual"}})
    customer = stack.invoiced.control.act("create", "customers", data={"name": "Acme"})
    stack.salesforce.control.seed("Account", [{"Name": "Acme", "Billing_Id__c": f"main:{customer['id']}"}])
    stack.invoiced.control.act(
        "create",
        "invoices",
        data={"customer": customer["id"], "items": [{"name": "Plan", "quantity": 1, "unit_cost": 9}]},
    )
    settle(stack)
    assert pull(stack, "invoice", "to_salesforce")["skipped"] == "manual or switched off"
    assert records(stack, "Billing_Invoice__c") == []
    assert sync_log(stack, "invoice") == []


def test_the_last_synced_time_is_kept_per_object_and_direction(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    before = datetime.now(UTC) - timedelta(seconds=1)
    customer = stack.invoiced.control.act("create", "customers", data={"name": "Acme"})
    stack.salesforce.control.seed("Account", [{"Name": "Acme", "Billing_Id__c": f"main:{customer['id']}"}])
    stack.invoiced.control.act(
        "create",
        "invoices",
        data={"customer": customer["id"], "items": [{"name": "Plan", "quantity": 1, "unit_cost": 9}]},
    )
    settle(stack)
    webhook_synced = datetime.fromisoformat(
        checkpoint(stack, SOURCE_KEY, "invoice", "to_salesforce")["last_synced_at"]
    )
    assert webhook_synced > before
    pull(stack, "invoice", "to_billing")
    pulled = checkpoint(stack, SOURCE_KEY, "invoice", "to_billing")
    assert datetime.fromisoformat(pulled["last_synced_at"]) > before
    assert pulled["cursor"]
    assert checkpoint(stack, SOURCE_KEY, "note", "to_billing") == {}  # never synced
