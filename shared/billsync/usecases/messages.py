"""Reading queued changes out of an SQS event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from billsync.domain.models import Change
from billsync.ports import QueuedChange


def read_sqs_records(records: Sequence[dict[str, Any]]) -> tuple[list[QueuedChange], list[tuple[str, str]]]:
    """The changes in an SQS batch, and the ids of messages that are not changes (with why)."""
    changes: list[QueuedChange] = []
    unreadable: list[tuple[str, str]] = []
    for record in records:
        message_id = str(record.get("messageId", ""))
        attributes = record.get("attributes") or {}
        try:
            change = Change.model_validate_json(record.get("body") or "")
        except ValidationError as exc:
            unreadable.append((message_id, f"not a billsync change: {exc.error_count()} problem(s)"))
            continue
        first = attributes.get("ApproximateFirstReceiveTimestamp")
        changes.append(
            QueuedChange(
                change=change,
                message_id=message_id,
                receipt_handle=str(record.get("receiptHandle", "")),
                receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
                group=attributes.get("MessageGroupId"),
                first_received_at=datetime.fromtimestamp(int(first) / 1000, UTC) if first else None,
            )
        )
    return changes, unreadable
