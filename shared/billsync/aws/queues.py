"""The object queues and their dead-letter queues (SQS FIFO).

Messages of one group (a parent record, e.g. one customer and everything that hangs off it) are
delivered in order and never to two workers at once. Deduplication ids make a repeated webhook
delivery inside SQS's five-minute window a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from billsync.domain.models import DeadLetter
from billsync.ports import Envelope, dedup_id

SEND_BATCH_LIMIT = 10
MAX_DELAY_SECONDS = 43_200  # SQS's longest visibility timeout


class QueueNotConfigured(RuntimeError):
    pass


class SqsQueues:
    def __init__(self, *, client: Any = None, env: dict[str, str] | None = None) -> None:
        self._client = client
        self._env = env if env is not None else os.environ
        self.requests_made = 0

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("sqs")
        return self._client

    def url(self, object_name: str, *, dead_letter: bool = False) -> str:
        name = f"{'DLQ' if dead_letter else 'QUEUE'}_URL_{object_name.upper()}"
        url = self._env.get(name)
        if not url:
            raise QueueNotConfigured(
                f"no {'dead-letter ' if dead_letter else ''}queue for {object_name!r} ({name} is not set)"
            )
        return url

    def send(self, object_name: str, envelopes: Sequence[Envelope]) -> None:
        url = self.url(object_name)
        entries = [
            {
                "Id": str(i),
                "MessageBody": envelope.change.model_dump_json(exclude_none=True),
                "MessageGroupId": envelope.group[:128],
                "MessageDeduplicationId": envelope.dedup_id,
            }
            for i, envelope in enumerate(envelopes)
        ]
        self._send_batches(url, entries)

    def dead_letter(self, object_name: str, letters: Sequence[DeadLetter]) -> None:
        url = self.url(object_name, dead_letter=True)
        entries = [
            {
                "Id": str(i),
                "MessageBody": letter.model_dump_json(exclude_none=True),
                # One group per record: a stuck record never holds up another's redrive.
                "MessageGroupId": dedup_id(letter.change.key),
                # A queue message delivered twice (SQS is at least once) and refused twice leaves one
                # dead letter; a redriven change is a new message, so it can fail again.
                "MessageDeduplicationId": dedup_id(
                    letter.change.key, letter.message_id or letter.failed_at.isoformat()
                ),
            }
            for i, letter in enumerate(letters)
        ]
        self._send_batches(url, entries)

    def delay(self, object_name: str, receipt_handle: str, seconds: int) -> bool:
        """Back a failed message off; False when SQS refused (the queue's visibility timeout applies then)."""
        from botocore.exceptions import ClientError

        self.requests_made += 1
        try:
            self.client.change_message_visibility(
                QueueUrl=self.url(object_name),
                ReceiptHandle=receipt_handle,
                VisibilityTimeout=min(seconds, MAX_DELAY_SECONDS),
            )
        except ClientError:
            return False
        return True

    def _send_batches(self, url: str, entries: list[dict[str, Any]]) -> None:
        for start in range(0, len(entries), SEND_BATCH_LIMIT):
            batch = entries[start : start + SEND_BATCH_LIMIT]
            for _ in range(5):
                self.requests_made += 1
                response = self.client.send_message_batch(QueueUrl=url, Entries=batch)
                failed = {f["Id"] for f in response.get("Failed", [])}
                batch = [e for e in batch if e["Id"] in failed]
                if not batch:
                    break
            if batch:
                raise RuntimeError(f"SQS refused {len(batch)} messages for {url}")
