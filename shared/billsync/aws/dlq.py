"""The objects' dead-letter queues (and the failed-runs queue) as an operator reads and empties them.

Queues are found by name in a mapping (`DLQ_URL_<OBJECT>`, `QUEUE_URL_<OBJECT>`, `FAILED_RUNS_QUEUE_URL`),
as the functions find theirs in their environment; the operator command line builds it from the stack's
outputs. A whole DLQ is redriven with SQS's own message move task where the API exists (FIFO
dead-letter queues are supported since November 2023): it runs inside SQS, at a rate SQS chooses,
and survives the operator's terminal closing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billsync.usecases.dlq import FAILED_RUNS
from billsync.usecases.ops_ports import QueueDepth, QueueMessage

_DEPTH_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


class QueueUnknown(LookupError):
    pass


@dataclass(frozen=True)
class MoveTask:
    handle: str | None
    status: str  # RUNNING | COMPLETED | CANCELLING | CANCELLED | FAILED
    moved: int
    to_move: int | None
    failure: str | None = None


class SqsDeadLetters:
    def __init__(self, client: Any, urls: Mapping[str, str]) -> None:
        self.client = client
        self._urls = urls
        self.requests_made = 0

    def url(self, name: str, *, dead_letter: bool = True) -> str:
        key = (
            "FAILED_RUNS_QUEUE_URL"
            if name == FAILED_RUNS
            else f"{'DLQ' if dead_letter else 'QUEUE'}_URL_{name.upper()}"
        )
        url = self._urls.get(key)
        if not url:
            raise QueueUnknown(f"the stack has no {'dead-letter ' if dead_letter else ''}queue for {name!r}")
        return url

    def receive(self, object_name: str, *, max_messages: int, hold_seconds: int) -> list[QueueMessage]:
        self.requests_made += 1
        response = self.client.receive_message(
            QueueUrl=self.url(object_name),
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            VisibilityTimeout=hold_seconds,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return [_message(raw) for raw in response.get("Messages", [])]

    def release(self, object_name: str, messages: Sequence[QueueMessage]) -> None:
        if not messages:
            return
        self.requests_made += 1
        self.client.change_message_visibility_batch(
            QueueUrl=self.url(object_name),
            Entries=[
                {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                for i, m in enumerate(messages)
            ],
        )

    def delete(self, object_name: str, messages: Sequence[QueueMessage]) -> list[QueueMessage]:
        kept: list[QueueMessage] = []
        url = self.url(object_name)
        for start in range(0, len(messages), 10):
            chunk = list(messages[start : start + 10])
            self.requests_made += 1
            response = self.client.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(chunk)],
            )
            kept.extend(chunk[int(failure["Id"])] for failure in response.get("Failed", []))
        return kept

    def purge(self, object_name: str) -> None:
        self.requests_made += 1
        self.client.purge_queue(QueueUrl=self.url(object_name))

    def depth(self, object_name: str) -> QueueDepth:
        return self.queue_depth(self.url(object_name))

    def queue_depth(self, url: str) -> QueueDepth:
        self.requests_made += 1
        attributes = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=list(_DEPTH_ATTRIBUTES))[
            "Attributes"
        ]
        visible, in_flight, delayed = (int(attributes.get(name, 0)) for name in _DEPTH_ATTRIBUTES)
        return QueueDepth(visible=visible, in_flight=in_flight, delayed=delayed)

    # ------------------------------------------------------------------------------ move tasks

    def queue_arn(self, url: str) -> str:
        self.requests_made += 1
        arn: str = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return arn

    def start_move_task(self, object_name: str, *, max_per_second: int | None = None) -> str:
        """Move every message of the object's DLQ back to its queue, inside SQS; returns the task handle."""
        request: dict[str, Any] = {
            "SourceArn": self.queue_arn(self.url(object_name)),
            "DestinationArn": self.queue_arn(self.url(object_name, dead_letter=False)),
        }
        if max_per_second is not None:
            request["MaxNumberOfMessagesPerSecond"] = max_per_second
        self.requests_made += 1
        handle: str = self.client.start_message_move_task(**request)["TaskHandle"]
        return handle

    def move_task(self, object_name: str, handle: str | None = None) -> MoveTask | None:
        """The object DLQ's move task (the given one, or the most recent)."""
        self.requests_made += 1
        tasks = self.client.list_message_move_tasks(
            SourceArn=self.queue_arn(self.url(object_name)), MaxResults=10
        ).get("Results", [])
        for task in tasks:
            if handle is None or task.get("TaskHandle") in (handle, None):
                return MoveTask(
                    handle=task.get("TaskHandle"),
                    status=str(task.get("Status", "")),
                    moved=int(task.get("ApproximateNumberOfMessagesMoved", 0)),
                    to_move=task.get("ApproximateNumberOfMessagesToMove"),
                    failure=task.get("FailureReason"),
                )
        return None


def _message(raw: Mapping[str, Any]) -> QueueMessage:
    attributes = raw.get("Attributes") or {}
    sent = attributes.get("SentTimestamp")
    custom = {
        name: str(value.get("StringValue", ""))
        for name, value in (raw.get("MessageAttributes") or {}).items()
        if isinstance(value, Mapping)
    }
    return QueueMessage(
        message_id=str(raw["MessageId"]),
        receipt_handle=str(raw["ReceiptHandle"]),
        body=str(raw.get("Body", "")),
        sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
        receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
        group=attributes.get("MessageGroupId"),
        attributes=custom,
    )
