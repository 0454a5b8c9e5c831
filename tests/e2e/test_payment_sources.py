"""Cards and bank accounts entered in Salesforce become payment sources of the Invoiced customer; only
gateway tokens travel, and neither a card number nor a token reaches a log, the sync log or a DLQ."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.stack import DevStack
from tests.e2e.helpers import FUNCTIONS, dead_letters, linked_customer, one, pull, salesforce_user, sync_log

# Luhn-valid test numbers, as a careless admin might paste them into the token field.
CARD_NUMBER = "4242424242424242"
SPACED_CARD_NUMBER = "5555 5555 5555 4444"


def sources(stack: DevStack) -> list[dict[str, Any]]:
    """Every payment source in Invoiced, in its API shape."""
    assert stack.invoiced
    found: list[dict[str, Any]] = stack.invoiced.control.dump(resources=["payment_sources"])[
        "payment_sources"
    ]
    return found


def everything_billsync_wrote(stack: DevStack, object_name: str) -> str:
    """The function's logs, the object's sync log and its DLQ messages, as one text to search."""
    assert stack.runtime
    logs = stack.runtime.logs_path(FUNCTIONS[object_name]).read_text()
    return "\n".join(
        [
            logs,
            json.dumps(sync_log(stack, object_name), default=str),
            json.dumps(dead_letters(stack, object_name)),
        ]
    )


def test_a_card_entered_in_salesforce_becomes_a_card_of_the_customer_and_gets_its_ids(
    stack: DevStack,
) -> None:
    assert stack.invoiced and stack.salesforce
    _, account = linked_customer(stack)
    token = stack.invoiced.control.tokenize_card(brand="MasterCard", last4="4444", exp_month=7, exp_year=2031)
    [card] = stack.salesforce.control.seed(
        "Billing_Card__c", [{"Account__c": account, "Gateway_Token__c": token}]
    )
    result = pull(stack, "card", "to_billing")
    assert result["streams"][0]["outcomes"] == {"applied": 1}
    [created] = sources(stack)
    assert (created["object"], created["brand"], created["last4"]) == ("card", "MasterCard", "4444")
    synced = one(stack, "Billing_Card__c", Id=card)
    assert synced["Billing_Id__c"] == f"main:{created['id']}"
    # What the gateway knows from the token is written back: Salesforce shows the card as it is.
    assert (synced["Brand__c"], synced["Last4__c"], synced["Exp_Month__c"], synced["Exp_Year__c"]) == (
        "MasterCard",
        "4444",
        7,
        2031,
    )
    assert synced["Funding__c"] == "Credit"
    assert token not in everything_billsync_wrote(stack, "card")

    # Deleting the card in Salesforce removes it from the customer.
    salesforce_user(stack).Billing_Card__c.delete(card)
    pull(stack, "card", "to_billing")
    assert sources(stack) == []
    assert sync_log(stack, "card")[-1]["message"] == "deleted in the billing system"


def test_a_bank_account_entered_in_salesforce_becomes_a_bank_account_of_the_customer(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    _, account = linked_customer(stack)
    token = stack.invoiced.control.tokenize_bank_account(bank_name="FIRST TEST BANK", last4="6789")
    [bank_account] = stack.salesforce.control.seed(
        "Billing_Bank_Account__c", [{"Account__c": account, "Gateway_Token__c": token}]
    )
    pull(stack, "bank_account", "to_billing")
    [created] = sources(stack)
    assert (created["object"], created["bank_name"], created["last4"]) == (
        "bank_account",
        "FIRST TEST BANK",
        "6789",
    )
    synced = one(stack, "Billing_Bank_Account__c", Id=bank_account)
    assert synced["Billing_Id__c"] == f"main:{created['id']}"
    assert (synced["Bank_Name__c"], synced["Last4__c"], synced["Verified__c"]) == (
        "FIRST TEST BANK",
        "6789",
        True,
    )

    salesforce_user(stack).Billing_Bank_Account__c.delete(bank_account)
    pull(stack, "bank_account", "to_billing")
    assert sources(stack) == []


@pytest.mark.parametrize("pasted", [CARD_NUMBER, SPACED_CARD_NUMBER])
def test_a_card_number_in_the_token_field_is_refused_and_never_written_anywhere(
    stack: DevStack, pasted: str
) -> None:
    assert stack.invoiced and stack.salesforce
    _, account = linked_customer(stack)
    [card] = stack.salesforce.control.seed(
        "Billing_Card__c", [{"Account__c": account, "Gateway_Token__c": pasted}]
    )
    pull(stack, "card", "to_billing")
    assert sources(stack) == []
    assert not any("payment_sources" in route for route in stack.invoiced.control.calls()), "nothing sent"
    [failure] = [e for e in sync_log(stack, "card") if e["record_id"] == card]
    assert failure["outcome"] == "failed"
    assert "looks like a full card number" in failure["message"]
    [dead] = dead_letters(stack, "card")
    assert dead["error"]["code"] == "MAPPING_ERROR"
    assert dead["change"].get("record") is None  # payment sources travel as references only
    written = everything_billsync_wrote(stack, "card")
    for shape in (pasted, pasted.replace(" ", "")):
        assert shape not in written


def test_a_token_the_gateway_does_not_know_fails_clearly_without_echoing_it(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    _, account = linked_customer(stack)
    unknown = "tok_unknown_9f8e7d6c5b4a"
    stack.salesforce.control.seed("Billing_Card__c", [{"Account__c": account, "Gateway_Token__c": unknown}])
    pull(stack, "card", "to_billing")
    [failure] = sync_log(stack, "card")
    assert (failure["outcome"], failure["code"]) == ("failed", "INVALID_REQUEST")
    assert failure["message"] == "No such token: [masked]"
    assert unknown not in everything_billsync_wrote(stack, "card")


def test_a_card_waits_for_its_account_to_become_a_customer_then_follows(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce and stack.runtime
    [account] = stack.salesforce.control.seed("Account", [{"Name": "Not yet billed"}])
    stack.salesforce.control.seed(
        "Billing_Card__c", [{"Account__c": account, "Gateway_Token__c": "tok_visa"}]
    )
    result = stack.runtime.fire_schedule(FUNCTIONS["card"], "PullFromSalesforce")
    assert result.ok, result.error
    [waiting] = sync_log(stack, "card")
    assert (waiting["outcome"], waiting["code"]) == ("waiting_for_parent", "PARENT_NOT_SYNCED")
    customer = stack.invoiced.control.act("create", "customers", data={"name": "Not yet billed"})
    salesforce_user(stack).Account.update(account, {"Billing_Id__c": f"main:{customer['id']}"})
    stack.runtime.drain(timeout=60)  # the waiting card is retried from its queue
    [created] = sources(stack)
    assert created["brand"] == "Visa"
    assert sync_log(stack, "card")[-1]["outcome"] == "applied"


def test_changing_the_token_of_a_saved_card_is_refused_with_what_to_do(stack: DevStack) -> None:
    assert stack.invoiced and stack.salesforce
    _, account = linked_customer(stack)
    [card] = stack.salesforce.control.seed(
        "Billing_Card__c", [{"Account__c": account, "Gateway_Token__c": "tok_visa"}]
    )
    pull(stack, "card", "to_billing")
    salesforce_user(stack).Billing_Card__c.update(card, {"Gateway_Token__c": "tok_amex"})
    pull(stack, "card", "to_billing")
    failure = sync_log(stack, "card")[-1]
    assert (failure["outcome"], failure["code"]) == ("failed", "PAYMENT_SOURCE_IMMUTABLE")
    assert "create a new one in Salesforce with the new token and delete this one" in failure["message"]
    [kept] = sources(stack)
    assert kept["brand"] == "Visa"
