"""Small helpers the use cases share."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from billsync.domain.mapping import FieldMappingError, FieldSpec, relationship_id_field
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


def parent_external_id(spec: FieldSpec) -> str | None:
    """The external id a field's `parent` transform links through, if the field is a parent link."""
    for step in spec.transform:
        if step.name == "parent":
            args = step.args
            return str(args["external_id"] if isinstance(args, dict) else args.external_id)
    return None


def salesforce_values(fields: dict[str, Any], specs: Iterable[FieldSpec]) -> dict[str, Any]:
    """Field values as Salesforce takes them: an empty parent link clears its lookup field (Salesforce
    refuses a null relationship object)."""
    links = {spec.to for spec in specs if parent_external_id(spec)}
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None and name in links:
            values[relationship_id_field(name)] = None
        else:
            values[name] = value
    return values
