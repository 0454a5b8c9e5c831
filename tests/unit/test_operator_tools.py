"""Pure parts of the operator tools: durations and times, resource names from stack outputs, and SQS's
message move task (which the local AWS stand-in lacks), checked against botocore's request shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import click
import pytest
from billsync.aws.dlq import SqsDeadLetters
from billsync.aws.stack import Stack, pascal
from billsync.cli.target import ago, parse_duration, parse_when
from botocore.stub import Stubber

NOW = datetime(2024, 5, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("3d", timedelta(days=3)),
    ],
)
def test_durations_are_read_with_their_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text, "--older-than") == expected


@pytest.mark.parametrize("text", ["", "soon", "5", "h2", "1.5h", "-2h"])
def test_a_bad_duration_is_refused_with_its_option(text: str) -> None:
    with pytest.raises(click.BadParameter, match="not a duration"):
        parse_duration(text, "--older-than")


def test_times_are_dates_iso_times_or_durations_ago() -> None:
    assert parse_when("2024-01-31", "--since") == datetime(2024, 1, 31, tzinfo=UTC)
    assert parse_when("2024-01-31T10:00:00+02:00", "--since") == datetime(2024, 1, 31, 8, tzinfo=UTC)
    assert parse_when("2h", "--since", now=NOW) == NOW - timedelta(hours=2)
    with pytest.raises(click.BadParameter, match="needs a time zone"):
        parse_when("2024-01-31T10:00:00", "--since")
    assert (ago(None, NOW), ago(NOW - timedelta(minutes=3), NOW)) == ("never", "3m ago")


def test_objects_resources_come_from_the_stack_outputs_by_name() -> None:
    outputs = {
        "BankAccountFunctionName": "fn-bank",
        "BankAccountQueueUrl": "https://sqs/bank.fifo",
        "BankAccountDLQUrl": "https://sqs/bank-dlq.fifo",
        "FailedRunsQueueUrl": "https://sqs/failed",
        "StateTableName": "state",
    }
    stack = Stack(name="billsync", outputs=outputs, session=None)
    assert pascal("bank_account") == "BankAccount"
    assert stack.deployed(["bank_account", "invoice"]) == ["bank_account"]
    assert stack.resource_names(["bank_account", "invoice"]) == {
        "QUEUE_URL_BANK_ACCOUNT": "https://sqs/bank.fifo",
        "DLQ_URL_BANK_ACCOUNT": "https://sqs/bank-dlq.fifo",
        "FUNCTION_NAME_BANK_ACCOUNT": "fn-bank",
        "FAILED_RUNS_QUEUE_URL": "https://sqs/failed",
    }


def test_a_whole_dlq_is_moved_back_by_an_sqs_move_task() -> None:
    client = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    urls = {"DLQ_URL_INVOICE": "https://sqs/dlq.fifo", "QUEUE_URL_INVOICE": "https://sqs/q.fifo"}
    dlq_arn, queue_arn = "arn:aws:sqs:us-east-1:1:dlq.fifo", "arn:aws:sqs:us-east-1:1:q.fifo"
    with Stubber(client) as stub:
        for url, arn in ((urls["DLQ_URL_INVOICE"], dlq_arn), (urls["QUEUE_URL_INVOICE"], queue_arn)):
            stub.add_response(
                "get_queue_attributes",
                {"Attributes": {"QueueArn": arn}},
                {"QueueUrl": url, "AttributeNames": ["QueueArn"]},
            )
        stub.add_response(
            "start_message_move_task",
            {"TaskHandle": "task-1"},
            {"SourceArn": dlq_arn, "DestinationArn": queue_arn},
        )
        stub.add_response(
            "get_queue_attributes",
            {"Attributes": {"QueueArn": dlq_arn}},
            {"QueueUrl": urls["DLQ_URL_INVOICE"], "AttributeNames": ["QueueArn"]},
        )
        stub.add_response(
            "list_message_move_tasks",
            {
                "Results": [
                    {
                        "TaskHandle": "task-1",
                        "Status": "COMPLETED",
                        "SourceArn": dlq_arn,
                        "ApproximateNumberOfMessagesMoved": 7,
                        "ApproximateNumberOfMessagesToMove": 7,
                    }
                ]
            },
            {"SourceArn": dlq_arn, "MaxResults": 10},
        )
        dead_letters = SqsDeadLetters(client, urls)
        assert dead_letters.start_move_task("invoice") == "task-1"
        task = dead_letters.move_task("invoice", "task-1")
        stub.assert_no_pending_responses()
    assert task is not None and (task.status, task.moved, task.to_move) == ("COMPLETED", 7, 7)
