"""Bulk API 2.0 ingest jobs as billsync uses them: writes to CSV, job results back to per-record results.

One job carries every write of one object and operation in a plan (upsert by external id, update
or delete by Id). Rows are sorted by their parent references, so the children of one parent sit
side by side and land in the same chunk when Salesforce splits the job: chunks processed in
parallel then never contend for the same parent row. Results come back as CSV; each row is matched
to its write by the correlation column (the external id, or the Id), never by position, since
Salesforce does not promise to keep the upload's order.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from billsync.domain.models import ErrorInfo
from billsync.domain.rules import classify_salesforce_error
from billsync.ports import SfDelete, SfUpdate, SfUpsert, SfWrite, SfWriteResult
from billsync.salesforce.gateway import encode

NULL_CELL = "#N/A"  # Bulk API's way of setting a field to null; an empty cell leaves it unchanged
_FIELD_LIST = re.compile(r"^[A-Za-z0-9_.,]+$")


@dataclass(frozen=True)
class IngestJob:
    """The writes of one Bulk API 2.0 ingest job and how their rows are told apart in its results."""

    operation: str  # upsert | update | delete
    object: str
    external_id_field: str | None
    writes: list[SfWrite]

    @property
    def correlation(self) -> str:
        return self.external_id_field if self.operation == "upsert" and self.external_id_field else "Id"

    def create_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "object": self.object,
            "operation": self.operation,
            "contentType": "CSV",
            "lineEnding": "LF",
        }
        if self.operation == "upsert":
            body["externalIdFieldName"] = self.external_id_field
        return body


def cell(value: Any) -> str:
    """One CSV cell in Bulk API 2.0's formats (null as #N/A, booleans lower case, exact decimals)."""
    if value is None or value == "":
        return NULL_CELL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (datetime, date)):
        return str(encode(value))
    return str(value)


def _row_values(write: SfWrite) -> dict[str, str]:
    """A write's columns: fields, relationship references as `Rel__r.Ext__c`, and the Id where it has one."""
    values: dict[str, str] = {}
    if isinstance(write, (SfUpdate, SfDelete)):
        values["Id"] = write.id
    if isinstance(write, (SfUpsert, SfUpdate)):
        for name, value in write.fields.items():
            if isinstance(value, dict):
                for key, inner in value.items():
                    values[f"{name}.{key}"] = cell(inner)
            elif value is None and name.endswith("__r"):
                continue  # no parent named: a relationship has no column of its own in a CSV
            else:
                values[name] = cell(value)
    return values


def to_csv(job: IngestJob) -> str:
    """The job's upload: a header of every column its writes use, one row per write, sorted by parent."""
    rows = [_row_values(w) for w in job.writes]
    header: dict[str, None] = {}
    for row in rows:
        header.update(dict.fromkeys(row))
    columns = list(header)
    references = [c for c in columns if "." in c]
    correlation = job.correlation
    rows.sort(key=lambda r: (*(r.get(c, "") for c in references), r.get(correlation, "")))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([row.get(c, "") for c in columns] for row in rows)
    return buffer.getvalue()


def _key_index(job: IngestJob) -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
    for write in job.writes:
        value = _row_values(write).get(job.correlation, "")
        index.setdefault(value, []).append(write.key)
    return index


def _read(text: str) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    rows = [r for r in rows if r]
    return (rows[0], rows[1:]) if rows else ([], [])


def parse_error(text: str) -> ErrorInfo:
    """An `sf__Error` cell (`CODE:message:Field1,Field2 --`) in billsync's terms."""
    body = text.strip().removesuffix("--").strip()
    code, _, rest = body.partition(":")
    message = rest
    fields: tuple[str, ...] = ()
    head, sep, tail = rest.rpartition(":")
    if sep and _FIELD_LIST.match(tail):
        message, fields = head, tuple(tail.split(","))
    return classify_salesforce_error(code or "UNKNOWN_EXCEPTION", message.strip() or code, fields)


UNPROCESSED = ErrorInfo(
    code="BULK_UNPROCESSED",
    message="Salesforce did not process this record before its Bulk API job ended",
    retryable=True,
)
NO_RESULT = ErrorInfo(
    code="NO_RESULT", message="Salesforce returned no result for this record", retryable=True
)


def map_results(
    job: IngestJob,
    successful: str | None,
    failed: str | None,
    unprocessed: str | None,
    *,
    missing: ErrorInfo = NO_RESULT,
) -> dict[str, SfWriteResult]:
    """Per-write results from a job's three result files, exactly as a collection would give them;
    a write in none of them gets `missing`."""
    index = _key_index(job)
    results: dict[str, SfWriteResult] = {}

    def rows(text: str | None) -> Iterable[tuple[str, list[str]]]:
        header, body = _read(text or "")
        column = header.index(job.correlation) if job.correlation in header else -1
        for row in body:
            for key in index.get(row[column], []) if 0 <= column < len(row) else []:
                yield key, row

    for key, (sf_id, created, *_) in rows(successful):
        results[key] = SfWriteResult(key=key, ok=True, id=sf_id or None, created=created == "true")
    for key, (sf_id, error, *_) in rows(failed):
        results[key] = SfWriteResult(key=key, ok=False, id=sf_id or None, error=parse_error(error))
    for key, _ in rows(unprocessed):
        results.setdefault(key, SfWriteResult(key=key, ok=False, error=UNPROCESSED))
    for write in job.writes:
        results.setdefault(write.key, SfWriteResult(key=write.key, ok=False, error=missing))
    return results


def failed_everywhere(writes: Sequence[SfWrite], error: ErrorInfo) -> dict[str, SfWriteResult]:
    return {w.key: SfWriteResult(key=w.key, ok=False, error=error) for w in writes}
