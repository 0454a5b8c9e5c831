"""SQS event source mappings driven against moto: batches, partial failures, retries, DLQs, FIFO order."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from local.runtime import LocalStack
from local.runtime.event_sources import failed_message_ids

from .conftest import queue_counts, records, send, take_messages, wait_for


def tag() -> str:
    return uuid.uuid4().hex[:12]


def bodies(label: str, count: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"tag": label, "id": f"{label}-{index}", **extra} for index in range(count)]


def dead_lettered(stack: LocalStack, queue: str, label: str) -> list[str]:
    return sorted(json.loads(m["Body"])["id"] for m in take_messages(stack, queue) if label in m["Body"])


def test_batches_respect_the_batch_size(app_stack: LocalStack, record_dir: Path) -> None:
    label = tag()
    app_stack.pause_event_sources()
    send(app_stack, "WorkQueue", bodies(label, 7))
    app_stack.resume_event_sources()
    app_stack.drain(15)
    seen = records(record_dir, label)
    assert sorted(entry["id"] for entry in seen) == sorted(f"{label}-{index}" for index in range(7))
    assert max(entry["batch"] for entry in seen) == 3
    assert {entry["receive"] for entry in seen} == {1}


def test_partial_batch_failure_retries_exactly_the_failed_messages(
    app_stack: LocalStack, record_dir: Path
) -> None:
    label = tag()
    app_stack.pause_event_sources()
    send(
        app_stack,
        "WorkQueue",
        bodies(label, 2) + [{"tag": label, "id": f"{label}-bad-{i}", "fail": True} for i in (0, 1)],
    )
    app_stack.resume_event_sources()
    app_stack.drain(20)
    attempts = Counter(entry["id"] for entry in records(record_dir, label))
    # Succeeded once and deleted; failed ones received maxReceiveCount (2) times, then dead-lettered.
    assert attempts == {f"{label}-0": 1, f"{label}-1": 1, f"{label}-bad-0": 2, f"{label}-bad-1": 2}
    assert dead_lettered(app_stack, "WorkDLQ", label) == [f"{label}-bad-0", f"{label}-bad-1"]
    assert queue_counts(app_stack, "WorkQueue") == (0, 0, 0)


def test_an_invalid_batch_response_fails_the_whole_batch(app_stack: LocalStack, record_dir: Path) -> None:
    label = tag()
    app_stack.pause_event_sources()
    send(
        app_stack,
        "WorkQueue",
        [{"tag": label, "id": f"{label}-ok"}, {"tag": label, "id": f"{label}-x", "invalid_response": True}],
    )
    app_stack.resume_event_sources()
    app_stack.drain(20)
    assert Counter(entry["id"] for entry in records(record_dir, label)) == {f"{label}-ok": 2, f"{label}-x": 2}
    assert dead_lettered(app_stack, "WorkDLQ", label) == [f"{label}-ok", f"{label}-x"]


def test_function_errors_are_retried_then_dead_lettered(app_stack: LocalStack, record_dir: Path) -> None:
    label = tag()
    send(app_stack, "WorkQueue", [{"tag": label, "id": f"{label}-crash", "raise": True}])
    app_stack.drain(20)
    seen = records(record_dir, label)
    assert [entry["receive"] for entry in seen] == [1, 2]
    assert (
        seen[1]["at"] - seen[0]["at"] >= 0.9
    )  # the visibility timeout (overridden to 1 s) ran out in between
    assert dead_lettered(app_stack, "WorkDLQ", label) == [f"{label}-crash"]
    failures = [r for r in app_stack.invocations if r.function_id == "WorkerFunction" and not r.ok]
    assert any(r.error and r.error["errorMessage"] == "a message asked the batch to fail" for r in failures)
    assert all(r.trigger == "sqs:Queue" for r in failures)


def test_a_visibility_set_by_the_function_is_left_alone(app_stack: LocalStack, record_dir: Path) -> None:
    label = tag()
    send(app_stack, "WorkQueue", [{"tag": label, "id": f"{label}-later", "backoff": 3}])
    seen = wait_for(lambda: len(records(record_dir, label)) >= 2 and records(record_dir, label), timeout=15)
    # The function pushed its failed message 3 s out; the poller's own 1 s visibility did not bring it back.
    assert seen[1]["at"] - seen[0]["at"] >= 2.9
    assert [entry["receive"] for entry in seen] == [1, 2]
    app_stack.drain(10)
    assert dead_lettered(app_stack, "WorkDLQ", label) == []


def test_a_disabled_mapping_is_not_polled(app_stack: LocalStack) -> None:
    [idle] = [s for s in app_stack.event_sources if s.get("queue") == "IdleQueue"]
    assert idle["enabled"] is False
    send(app_stack, "IdleQueue", [{"tag": "idle", "id": "idle"}])
    time.sleep(0.5)
    assert queue_counts(app_stack, "IdleQueue") == (1, 0, 0)
    app_stack.drain(5)  # nothing drains a disabled mapping, so drain does not wait for it
    assert len(take_messages(app_stack, "IdleQueue")) == 1


def test_fifo_groups_are_processed_in_order(app_stack: LocalStack, record_dir: Path) -> None:
    label = tag()
    sqs = app_stack.boto3_client("sqs")
    url = app_stack.resources["OrderedQueue"].url
    app_stack.pause_event_sources()
    for index in range(5):
        for group in ("a", "b", "c"):
            body = {"tag": label, "id": f"{group}{index}", "fail_first_receive": group == "a" and index == 1}
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body), MessageGroupId=group)
    app_stack.resume_event_sources()
    app_stack.drain(20)
    seen = records(record_dir, label)
    for group in ("a", "b", "c"):
        assert [entry["id"] for entry in seen if entry["group"] == group] == [f"{group}{i}" for i in range(5)]
    retried = {entry["id"]: entry["receive"] for entry in seen if entry["group"] == "a"}
    assert retried["a1"] == 2  # it failed once and held the rest of its group back
    assert len({entry["pid"] for entry in seen}) <= 2  # at most max_concurrency environments


def test_large_batches_are_gathered_within_the_batching_window(
    app_stack: LocalStack, record_dir: Path
) -> None:
    label = tag()
    sqs = app_stack.boto3_client("sqs")
    url = app_stack.resources["BigQueue"].url
    app_stack.pause_event_sources()
    for start in (0, 10):
        entries = [
            {
                "Id": str(index),
                "MessageBody": json.dumps({"tag": label, "id": f"{label}-{index}"}),
                "MessageAttributes": {
                    "kind": {"DataType": "String", "StringValue": "test"},
                    "size": {"DataType": "Number", "StringValue": "3"},
                },
            }
            for index in range(start, min(start + 10, 15))
        ]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    app_stack.resume_event_sources()
    app_stack.drain(15)
    seen = records(record_dir, label)
    assert len(seen) == 15
    assert {entry["batch"] for entry in seen} == {15}
    record = next(entry["record"] for entry in seen if "record" in entry)
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert set(record["attributes"]) == {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    }
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "test",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["size"]["dataType"] == "Number"
    assert (record["eventSource"], record["awsRegion"]) == ("aws:sqs", "us-east-1")
    assert record["eventSourceARN"] == app_stack.resources["BigQueue"].arn


def test_fifo_records_carry_group_and_deduplication_attributes(app_stack: LocalStack) -> None:
    from local.runtime.event_sources import lambda_record

    message = {
        "MessageId": "m-1",
        "ReceiptHandle": "r-1",
        "Body": "{}",
        "MD5OfBody": "99914b932bd37a50b983c5e7c90ae93b",
        "Attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1",
            "SenderId": "AIDA",
            "ApproximateFirstReceiveTimestamp": "2",
            "MessageGroupId": "g",
            "MessageDeduplicationId": "d",
            "SequenceNumber": "10",
        },
    }
    record = lambda_record(message, "arn:aws:sqs:us-east-1:123456789012:q.fifo", "us-east-1")
    assert record["attributes"] == {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": "1",
        "SequenceNumber": "10",
        "MessageGroupId": "g",
        "SenderId": "AIDA",
        "MessageDeduplicationId": "d",
        "ApproximateFirstReceiveTimestamp": "2",
    }
    assert record["messageAttributes"] == {}


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "a"}]}, {"a"}),
        ({"batchItemFailures": [{"itemIdentifier": "z"}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, None),
        ({"batchItemFailures": [{"id": "a"}]}, None),
        ({"batchItemFailures": "a"}, None),
        ("not a response", None),
    ],
)
def test_partial_batch_responses_follow_lambdas_rules(response: Any, expected: set[str] | None) -> None:
    assert failed_message_ids(response, {"a", "b"}) == expected
