"""A session-wide local stack running the fixture application, and helpers to look into it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local.runtime import LocalStack, StackOptions

FIXTURES = Path(__file__).parent / "fixtures"
APP_TEMPLATE = FIXTURES / "app" / "template.yaml"
TIMER_TEMPLATE = FIXTURES / "timer" / "template.yaml"


@pytest.fixture(scope="session")
def record_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("records")


@pytest.fixture(scope="session")
def app_stack(tmp_path_factory: pytest.TempPathFactory, record_dir: Path) -> Iterator[LocalStack]:
    options = StackOptions(
        stack_name="fixture",
        parameter_overrides={"Stage": "test"},
        env_overrides={"*": {"RECORD_DIR": str(record_dir)}, "EchoFunction": {"OVERRIDDEN": "caller"}},
        visibility_timeout_override=1,
        logs_dir=tmp_path_factory.mktemp("logs"),
        poll_interval=0.1,
    )
    with LocalStack(APP_TEMPLATE, options) as stack:
        stack.warm_up()
        yield stack


def records(record_dir: Path, tag: str) -> list[dict[str, Any]]:
    path = record_dir / f"{tag}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def send(stack: LocalStack, queue: str, bodies: list[dict[str, Any]], **extra: Any) -> list[str]:
    sqs = stack.boto3_client("sqs")
    url = stack.resources[queue].url
    return [
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body), **extra)["MessageId"] for body in bodies
    ]


def queue_counts(stack: LocalStack, queue: str) -> tuple[int, int, int]:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = stack.boto3_client("sqs").get_queue_attributes(
        QueueUrl=stack.resources[queue].url, AttributeNames=names
    )["Attributes"]
    visible, in_flight, delayed = (int(attributes[name]) for name in names)
    return visible, in_flight, delayed


def take_messages(stack: LocalStack, queue: str) -> list[dict[str, Any]]:
    """Receive and delete everything visible in a queue nobody polls (a DLQ, a destination)."""
    sqs = stack.boto3_client("sqs")
    url = stack.resources[queue].url
    taken: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return taken
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        taken.extend(messages)
