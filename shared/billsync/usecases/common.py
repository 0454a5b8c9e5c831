"""Small helpers the use cases share."""

from __future__ import annotations

from typing import Any

from billsync.domain.mapping import FieldMappingError
from billsync.domain.models import Change, ErrorInfo, Outcome, RecordResult


def external_id(source_key: str, vendor_id: str) -> str:
    """The value of a record's external id in Salesforce: unique across billing sources."""
    return f"{source_key}:{vendor_id}"


def mapping_error(exc: FieldMappingError) -> ErrorInfo:
    errors = getattr(exc, "errors", None) or [(exc.field, exc.reason)]
    message = "; ".join(f"{field}: {reason}" for field, reason in errors)
    return ErrorInfo(code="MAPPING_ERROR", message=message, fields=tuple(field for field, _ in errors))


def result_for(change: Change, outcome: Outcome, **kwargs: Any) -> RecordResult:
    return RecordResult(change_key=change.key, outcome=outcome, **kwargs)
