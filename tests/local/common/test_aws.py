"""The AWS stand-in keeps DynamoDB's transaction semantics: all conditions first, then all writes or none."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from local.common.aws import LocalAws


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[object]:
    aws = LocalAws().start()
    client = boto3.client(
        "dynamodb",
        endpoint_url=aws.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_table(
        TableName="t",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    yield client
    aws.stop()


def put(pk: str, rev: int, expected: int) -> dict:
    return {
        "Put": {
            "TableName": "t",
            "Item": {"pk": {"S": pk}, "rev": {"N": str(rev)}},
            "ConditionExpression": "attribute_not_exists(pk) OR rev = :e",
            "ExpressionAttributeValues": {":e": {"N": str(expected)}},
        }
    }


def rev(client, pk: str) -> int | None:
    item = client.get_item(TableName="t", Key={"pk": {"S": pk}}).get("Item")
    return int(item["rev"]["N"]) if item else None


def test_a_failed_condition_cancels_the_whole_transaction_with_its_reason(dynamodb) -> None:
    dynamodb.transact_write_items(TransactItems=[put("a", 1, 0), put("b", 1, 0)])
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(TransactItems=[put("a", 2, 1), put("b", 2, 7), put("c", 1, 0)])
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in raised.value.response["CancellationReasons"]]
    assert reasons == ["None", "ConditionalCheckFailed", "None"]
    assert (rev(dynamodb, "a"), rev(dynamodb, "b"), rev(dynamodb, "c")) == (1, 1, None)


def test_passing_conditions_apply_every_write(dynamodb) -> None:
    dynamodb.transact_write_items(TransactItems=[put("d", 1, 0), put("e", 1, 0)])
    dynamodb.transact_write_items(TransactItems=[put("d", 2, 1), put("e", 2, 1)])
    assert (rev(dynamodb, "d"), rev(dynamodb, "e")) == (2, 2)


def test_two_operations_on_one_item_are_refused(dynamodb) -> None:
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(TransactItems=[put("f", 1, 0), put("f", 2, 0)])
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert rev(dynamodb, "f") is None


def test_large_transactions_stay_fast_on_a_large_table(dynamodb) -> None:
    for start in range(0, 3000, 100):
        dynamodb.transact_write_items(
            TransactItems=[put(f"bulk{n}", 1, 0) for n in range(start, start + 100)]
        )
    assert rev(dynamodb, "bulk2999") == 1
