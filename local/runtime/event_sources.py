"""Drive an SQS event source mapping the way Lambda's pollers do.

A dispatcher receives batches (``MaxNumberOfMessages=min(BatchSize, 10)``, gathering up to
``BatchSize`` within ``MaximumBatchingWindowInSeconds``), builds Lambda's SQS event and invokes the
function with up to ``concurrency`` batches in flight. After the invocation:

- the function failed (error, timeout, crash): nothing is deleted; the messages come back when their
  visibility timeout expires, and SQS's redrive policy moves them to the DLQ after ``maxReceiveCount``
  receives (moto does that lazily, on the next receive, so the dispatcher keeps receiving);
- it succeeded without ``ReportBatchItemFailures``: the whole batch is deleted;
- it succeeded with ``ReportBatchItemFailures``: every message not listed in ``batchItemFailures`` is
  deleted; an invalid response (unknown or empty ``itemIdentifier``, malformed list) fails the batch.

The poller never changes a message's visibility itself, so a visibility the function set on a failed
message (a backoff) decides when that message is received again.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("local.runtime")

_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "SenderId",
    "MessageDeduplicationId",
    "ApproximateFirstReceiveTimestamp",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)


class Outcome(Protocol):
    @property
    def ok(self) -> bool: ...

    @property
    def payload(self) -> Any: ...

    @property
    def error(self) -> dict[str, Any] | None: ...


Invoke = Callable[[str, Any, str], Outcome]


@dataclass(frozen=True)
class SqsSourceConfig:
    """One ``Events: {Type: SQS}`` entry, resolved against the created queue."""

    function_id: str
    event_name: str
    queue_logical_id: str
    queue_url: str
    queue_arn: str
    batch_size: int
    batching_window: float
    report_batch_item_failures: bool
    visibility_timeout: int | None
    concurrency: int
    enabled: bool
    region: str

    def describe(self) -> dict[str, Any]:
        return {
            "function": self.function_id,
            "event": self.event_name,
            "type": "SQS",
            "queue": self.queue_logical_id,
            "queue_url": self.queue_url,
            "batch_size": self.batch_size,
            "report_batch_item_failures": self.report_batch_item_failures,
            "concurrency": self.concurrency,
            "enabled": self.enabled,
        }


def lambda_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of Lambda's SQS event, from a ReceiveMessage result."""
    attributes = message.get("Attributes") or {}
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {name: attributes[name] for name in _RECORD_ATTRIBUTES if name in attributes},
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    shaped: dict[str, Any] = {}
    if "StringValue" in value:
        shaped["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        raw = value["BinaryValue"]
        shaped["binaryValue"] = base64.b64encode(
            raw if isinstance(raw, bytes) else str(raw).encode()
        ).decode()
    shaped["stringListValues"] = list(value.get("StringListValues") or [])
    shaped["binaryListValues"] = [
        base64.b64encode(item).decode() for item in value.get("BinaryListValues") or []
    ]
    shaped["dataType"] = value.get("DataType", "String")
    return shaped


def failed_message_ids(response: Any, batch_ids: set[str]) -> set[str] | None:
    """The ids a partial batch response reports as failed, or None if the response is invalid.

    Lambda treats an empty or null response and an empty or null ``batchItemFailures`` as complete
    success, and an unparseable response or an empty, null or unknown ``itemIdentifier`` as a complete
    failure of the batch.
    """
    if response is None:
        return set()
    if not isinstance(response, dict):
        return None
    items = response.get("batchItemFailures")
    if items is None:
        return set()
    if not isinstance(items, list):
        return None
    failed: set[str] = set()
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in batch_ids:
            return None
        failed.add(identifier)
    return failed


class SqsEventSource:
    """The poller for one SQS event source mapping."""

    def __init__(self, config: SqsSourceConfig, sqs: Any, invoke: Invoke, *, poll_interval: float) -> None:
        self.config = config
        self._sqs = sqs
        self._invoke = invoke
        self._poll_interval = poll_interval
        self._slots = threading.BoundedSemaphore(config.concurrency)
        self._stopping = threading.Event()
        self._resumed = threading.Event()
        self._resumed.set()
        self._lock = threading.Lock()
        self._busy = 0
        self._executor = ThreadPoolExecutor(
            max_workers=config.concurrency, thread_name_prefix=f"sqs-{config.function_id}-{config.event_name}"
        )
        self._thread = threading.Thread(
            target=self._run, name=f"poller-{config.function_id}-{config.event_name}", daemon=True
        )

    @property
    def busy(self) -> int:
        """Batches received and not yet settled (deleted or left for retry)."""
        with self._lock:
            return self._busy

    def start(self) -> None:
        if self.config.enabled:
            self._thread.start()

    def pause(self) -> None:
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.busy == 0

    def stop(self) -> None:
        self._stopping.set()
        self._resumed.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._executor.shutdown(wait=True)

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self._resumed.wait(timeout=0.1) or not self._slots.acquire(timeout=0.1):
                continue
            if not self._resumed.is_set() or self._stopping.is_set():
                self._slots.release()
                continue
            try:
                messages = self._receive()
            except Exception as exc:
                self._slots.release()
                if not self._stopping.is_set():
                    log.warning(
                        "%s/%s: receive failed: %s", self.config.function_id, self.config.event_name, exc
                    )
                self._stopping.wait(max(self._poll_interval, 0.5))
                continue
            if not messages:
                self._slots.release()
                self._stopping.wait(self._poll_interval)
                continue
            with self._lock:
                self._busy += 1
            self._executor.submit(self._process, messages)

    def _receive(self) -> list[dict[str, Any]]:
        config = self.config
        options: dict[str, Any] = {
            "QueueUrl": config.queue_url,
            "WaitTimeSeconds": 0,
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if config.visibility_timeout is not None:
            options["VisibilityTimeout"] = config.visibility_timeout
        batch: list[dict[str, Any]] = []
        deadline = 0.0
        while True:
            wanted = min(10, config.batch_size - len(batch))
            received = self._sqs.receive_message(MaxNumberOfMessages=wanted, **options).get("Messages", [])
            if received and not batch:
                # The window opens with the first message, as Lambda's poller gathers records.
                deadline = time.monotonic() + config.batching_window
            batch.extend(received)
            if not batch or len(batch) >= config.batch_size or self._stopping.is_set():
                return batch
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return batch
            if not received:
                self._stopping.wait(min(self._poll_interval, remaining))

    def _process(self, messages: list[dict[str, Any]]) -> None:
        config = self.config
        try:
            event = {
                "Records": [lambda_record(message, config.queue_arn, config.region) for message in messages]
            }
            outcome = self._invoke(config.function_id, event, f"sqs:{config.event_name}")
            settled = self._settled(outcome, messages)
            for start in range(0, len(settled), 10):
                entries = [
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(settled[start : start + 10])
                ]
                self._sqs.delete_message_batch(QueueUrl=config.queue_url, Entries=entries)
        except Exception:
            log.exception("%s/%s: batch processing failed", config.function_id, config.event_name)
        finally:
            with self._lock:
                self._busy -= 1
            self._slots.release()

    def _settled(self, outcome: Outcome, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not outcome.ok:
            return []
        if not self.config.report_batch_item_failures:
            return messages
        failed = failed_message_ids(outcome.payload, {message["MessageId"] for message in messages})
        if failed is None:
            log.warning(
                "%s/%s: invalid partial batch response, the whole batch failed: %r",
                self.config.function_id,
                self.config.event_name,
                outcome.payload,
            )
            return []
        return [message for message in messages if message["MessageId"] not in failed]
