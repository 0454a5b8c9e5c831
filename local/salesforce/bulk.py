"""Bulk API 2.0: ingest jobs and query jobs, processed asynchronously by a worker thread.

Ingest: create (``Open``) -> one CSV upload (201) -> ``UploadComplete`` -> the worker moves the job
to ``InProgress`` and processes it in chunks (default 200 records, each chunk one transaction
with row locks and injected latency, like a REST write) -> ``JobComplete`` (or ``Failed`` when
the data cannot be processed at all, ``Aborted`` on request). Results are CSV: successful rows
with ``sf__Id,sf__Created``, failed rows with ``sf__Id,sf__Error``, both followed by the uploaded
columns, and rows never attempted. Relationship columns (``Account__r.Billing_Id__c``) resolve
parents by external ID; ``#N/A`` sets a field to null, an empty cell leaves it unchanged.

Query: create (``UploadComplete``) -> the worker runs the SOQL -> ``JobComplete``; results are
pages of fully quoted CSV with ``Sforce-Locator`` (``null`` on the last page) and
``Sforce-NumberOfRecords`` headers.
"""

from __future__ import annotations

import csv
import io
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from werkzeug.wrappers import Response

from local.salesforce.auth import Session
from local.salesforce.dml import ExtRef, MultipleMatches, Prepared, RecordFailure
from local.salesforce.errors import ApiError, SfError, not_found
from local.salesforce.formats import check_value, format_datetime, from_csv, to_csv
from local.salesforce.http import CSV_TYPE, CallContext, json_response, no_content
from local.salesforce.ids import canonical_id, is_id_shaped
from local.salesforce.locks import ext_key
from local.salesforce.org import Org, Work
from local.salesforce.rest import upsertable
from local.salesforce.schema import FieldDef, ObjectDef
from local.salesforce.soql import SoqlError, execute, parse
from local.salesforce.soql_syntax import FieldPath, Select
from local.salesforce.store import Txn

__all__ = ["Bulk"]

_DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
_LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
_INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")


def _job_error(status: int, code: str, message: str) -> ApiError:
    return ApiError.request(status, code, message)


@dataclass
class _Column:
    header: str
    kind: str  # field, ref, id
    fdef: FieldDef | None = None
    target: ObjectDef | None = None
    ext_field: FieldDef | None = None


@dataclass
class IngestJob:
    id: str
    operation: str
    obj: ObjectDef
    external_id_field: str | None
    user_id: str
    session: Session
    client: str
    created: datetime
    modstamp: datetime
    api_version: str
    line_ending: str
    column_delimiter: str
    state: str = "Open"
    data: str | None = None
    processed: int = 0
    failed: int = 0
    retries: int = 0
    processing_ms: int = 0
    error_message: str | None = None
    header: list[str] = field(default_factory=list)
    successful: list[list[str]] = field(default_factory=list)
    failures: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.obj.name,
            "createdById": self.user_id,
            "createdDate": format_datetime(self.created),
            "systemModstamp": format_datetime(self.modstamp),
            "state": self.state,
            "externalIdFieldName": self.external_id_field,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "jobType": "V2Ingest",
            "contentUrl": f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
            "numberRecordsProcessed": self.processed,
            "numberRecordsFailed": self.failed,
            "retries": self.retries,
            "totalProcessingTime": self.processing_ms,
            "apiActiveProcessingTime": self.processing_ms,
            "apexProcessingTime": 0,
        }
        if self.external_id_field is None:
            del body["externalIdFieldName"]
        if self.error_message:
            body["errorMessage"] = self.error_message
        return body


@dataclass
class QueryJob:
    id: str
    operation: str
    obj: ObjectDef
    query: str
    select: Select
    user_id: str
    created: datetime
    modstamp: datetime
    api_version: str
    line_ending: str
    column_delimiter: str
    state: str = "UploadComplete"
    processed: int = 0
    processing_ms: int = 0
    error_message: str | None = None
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.obj.name,
            "createdById": self.user_id,
            "createdDate": format_datetime(self.created),
            "systemModstamp": format_datetime(self.modstamp),
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "jobType": "V2Query",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
            "numberRecordsProcessed": self.processed,
            "retries": 0,
            "totalProcessingTime": self.processing_ms,
            "isPkChunkingSupported": True,
        }
        if self.error_message:
            body["errorMessage"] = self.error_message
        return body


class Bulk:
    def __init__(self, org: Org) -> None:
        self.org = org
        self._lock = threading.Lock()
        self.ingest: dict[str, IngestJob] = {}
        self.queries: dict[str, QueryJob] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._generation = 0
        org.hooks.append(self.clear)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name="salesforce-bulk", daemon=True)
            self._worker.start()

    def stop(self) -> None:
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=5)
            self._worker = None

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self.ingest.clear()
            self.queries.clear()

    def _run(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                ingest = self.ingest.get(job_id)
                query = self.queries.get(job_id)
            try:
                if ingest is not None:
                    self._process_ingest(ingest)
                elif query is not None:
                    self._process_query(query)
            except Exception as exc:  # a job failure must never kill the worker
                job = ingest or query
                if job is not None:
                    job.state = "Failed"
                    job.error_message = f"InternalServerError : {exc}"

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued job has been processed (tests and demos)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                busy = any(j.state in ("UploadComplete", "InProgress") for j in self.ingest.values()) or any(
                    j.state in ("UploadComplete", "InProgress") for j in self.queries.values()
                )
            if not busy:
                return True
            time.sleep(0.01)
        return False

    # -- ingest: REST ----------------------------------------------------------------------------

    def _ingest_job(self, ctx: CallContext, job_id: str) -> IngestJob:
        with self._lock:
            job = self.ingest.get(job_id)
        if job is None:
            raise not_found()
        return job

    def create_ingest(self, ctx: CallContext) -> Response:
        body = ctx.body()
        if not isinstance(body, dict):
            raise _job_error(400, "INVALIDJOB", "InvalidJob : The request body must be a JSON object")
        operation = body.get("operation")
        if operation not in _INGEST_OPERATIONS:
            raise _job_error(400, "INVALIDJOB", f"InvalidJob : Invalid value for operation: {operation}")
        obj = self.org.schema.get_object(str(body.get("object", "")))
        if obj is None:
            raise _job_error(400, "INVALIDJOB", f"InvalidJob : Unable to find object: {body.get('object')}")
        if body.get("contentType", "CSV") != "CSV":
            raise _job_error(400, "INVALIDJOB", "InvalidJob : Only CSV content is supported")
        delimiter = body.get("columnDelimiter", "COMMA")
        line_ending = body.get("lineEnding", "LF")
        if delimiter not in _DELIMITERS or line_ending not in _LINE_ENDINGS:
            raise _job_error(400, "INVALIDJOB", "InvalidJob : Invalid columnDelimiter or lineEnding")
        ext_name = body.get("externalIdFieldName")
        if operation == "upsert":
            if not ext_name:
                raise _job_error(
                    400,
                    "INVALIDJOB",
                    f"InvalidJob : External ID was blank for {obj.name}. An External ID must be specified for upsert.",
                )
            fdef = obj.get_field(str(ext_name))
            if fdef is None or not upsertable(obj, fdef):
                raise _job_error(
                    400,
                    "INVALIDJOB",
                    f"InvalidJob : Field name provided, {ext_name} does not match an External ID, Salesforce Id, "
                    f"or indexed field for {obj.name}",
                )
            ext_name = fdef.name
        else:
            ext_name = None
        now = self.org.clock.now()
        job = IngestJob(
            id=self.org.ids.new_id("750"),
            operation=operation,
            obj=obj,
            external_id_field=ext_name,
            user_id=ctx.session.user_id,
            session=ctx.session,
            client=ctx.client_name,
            created=now,
            modstamp=now,
            api_version=ctx.version,
            line_ending=line_ending,
            column_delimiter=delimiter,
        )
        with self._lock:
            self.ingest[job.id] = job
        return json_response(job.info())

    def upload(self, ctx: CallContext, job_id: str) -> Response:
        job = self._ingest_job(ctx, job_id)
        if job.data is not None:
            raise _job_error(
                400,
                "BULK_API_ERROR",
                f"Found multiple contents for job: <{job.id}>, please 'Close' / 'Abort' / 'Delete' the current Job then "
                "create a new Job and make sure you only do 'PUT' once on a given Job.",
            )
        if job.state != "Open":
            raise _job_error(409, "INVALIDJOBSTATE", f"Job's state is {job.state}, unable to upload data")
        content_type = (ctx.request.headers.get("Content-Type", "") if ctx.request else "").lower()
        if "text/csv" not in content_type:
            raise _job_error(415, "UNSUPPORTED_MEDIA_TYPE", f"Unsupported Content-Type: {content_type}")
        job.data = ctx.body_text
        job.modstamp = self.org.clock.now()
        return no_content(201)

    def patch_ingest(self, ctx: CallContext, job_id: str) -> Response:
        job = self._ingest_job(ctx, job_id)
        body = ctx.body()
        state = body.get("state") if isinstance(body, dict) else None
        if state == "UploadComplete":
            if job.state != "Open":
                raise _job_error(
                    409, "INVALIDJOBSTATE", f"Job's state is {job.state}, unable to close the job"
                )
            job.state = "UploadComplete"
            job.modstamp = self.org.clock.now()
            self._queue.put(job.id)
        elif state == "Aborted":
            if job.state not in ("Open", "UploadComplete", "InProgress"):
                raise _job_error(
                    409, "INVALIDJOBSTATE", f"Job's state is {job.state}, unable to abort the job"
                )
            if job.state in ("Open", "UploadComplete"):
                job.unprocessed = self._all_rows(job)
            job.state = "Aborted"
            job.modstamp = self.org.clock.now()
        else:
            raise _job_error(400, "INVALIDJOBSTATE", f"Invalid state: {state}")
        return json_response(job.info())

    def get_ingest(self, ctx: CallContext, job_id: str) -> Response:
        return json_response(self._ingest_job(ctx, job_id).info())

    def list_ingest(self, ctx: CallContext) -> Response:
        with self._lock:
            jobs = [j.info() for j in self.ingest.values()]
        return json_response({"done": True, "records": jobs, "nextRecordsUrl": None})

    def delete_ingest(self, ctx: CallContext, job_id: str) -> Response:
        job = self._ingest_job(ctx, job_id)
        if job.state in ("UploadComplete", "InProgress"):
            raise _job_error(409, "INVALIDJOBSTATE", f"Job's state is {job.state}, unable to delete the job")
        with self._lock:
            self.ingest.pop(job.id, None)
        return no_content()

    def results(self, ctx: CallContext, job_id: str, kind: str) -> Response:
        job = self._ingest_job(ctx, job_id)
        kind = kind.lower()
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if kind == "successfulresults":
            buffer.write('"sf__Id","sf__Created"' + ("," if job.header else "") + _csv_line(job.header))
            rows = job.successful
            for row in rows:
                buffer.write(f'"{row[0]}","{row[1]}"' + ("," if len(row) > 2 else "") + _csv_line(row[2:]))
        elif kind == "failedresults":
            buffer.write('"sf__Id","sf__Error"' + ("," if job.header else "") + _csv_line(job.header))
            rows = job.failures
            for row in rows:
                error = row[1].replace('"', '""')
                buffer.write(f'"{row[0]}","{error}"' + ("," if len(row) > 2 else "") + _csv_line(row[2:]))
        elif kind == "unprocessedrecords":
            if job.header:
                writer.writerow(job.header)
            rows = job.unprocessed
            writer.writerows(rows)
        else:
            raise not_found()
        ctx.records = len(rows)
        return Response(buffer.getvalue().encode("utf-8"), status=200, content_type=CSV_TYPE)

    # -- ingest: processing ----------------------------------------------------------------------

    def _read(self, job: IngestJob) -> tuple[list[str], list[list[str]]]:
        text = job.data or ""
        reader = csv.reader(
            io.StringIO(text, newline=""), delimiter=_DELIMITERS[job.column_delimiter], strict=True
        )
        rows = [row for row in reader if row and any(cell != "" for cell in row)]
        if not rows:
            return [], []
        return rows[0], rows[1:]

    def _all_rows(self, job: IngestJob) -> list[list[str]]:
        try:
            header, rows = self._read(job)
        except csv.Error:
            return []
        job.header = header
        return rows

    def _columns(self, job: IngestJob, header: list[str]) -> list[_Column]:
        obj = job.obj
        columns = []
        for name in header:
            if "." in name:
                rel_name, _, ext = name.partition(".")
                rel = obj.get_relationship(rel_name)
                target = self.org.schema.get_object(rel.reference_to[0]) if rel is not None else None
                ext_field = target.get_field(ext) if target is not None else None
                if (
                    rel is None
                    or target is None
                    or ext_field is None
                    or not (ext_field.external_id or ext_field.id_lookup)
                ):
                    raise _BatchError(f"InvalidBatch : Field name not found : {name}")
                columns.append(_Column(name, "ref", rel, target, ext_field))
                continue
            fdef = obj.get_field(name)
            if fdef is None:
                raise _BatchError(f"InvalidBatch : Field name not found : {name}")
            columns.append(_Column(name, "id" if fdef.name == "Id" else "field", fdef))
        if job.operation in ("delete", "hardDelete") and [c.kind for c in columns] != ["id"]:
            raise _BatchError("InvalidBatch : The 'delete/hardDelete' batch must contain only 'Id'")
        return columns

    def _prepare(
        self, job: IngestJob, columns: list[_Column], row: list[str]
    ) -> tuple[Prepared, SfError | None]:
        prepared = Prepared(job.obj)
        error: SfError | None = None
        for column, cell in zip(columns, row, strict=False):
            if cell == "":
                continue
            null = cell == "#N/A"
            if column.kind == "id":
                prepared.has_id = True
                prepared.id_value = None if null else cell
                continue
            if column.kind == "ref":
                assert column.fdef is not None
                assert column.target is not None
                assert column.ext_field is not None
                value: Any = None
                if not null:
                    try:
                        value = from_csv(column.ext_field, cell)
                    except ValueError:
                        error = error or _value_error(column.ext_field, cell)
                        continue
                prepared.refs.append(
                    ExtRef(column.fdef, column.header, column.target, column.ext_field, value)
                )
                continue
            fdef = column.fdef
            assert fdef is not None
            if null:
                prepared.values[fdef.name] = (fdef, False if fdef.type == "boolean" else None)
                continue
            try:
                typed = from_csv(fdef, cell)
            except ValueError:
                error = error or _value_error(fdef, cell)
                continue
            if not fdef.is_reference:
                typed, rule = check_value(fdef, typed)
                if rule is not None:
                    prepared.errors.append(rule)
            prepared.values[fdef.name] = (fdef, typed)
        if len(row) > len(columns):
            error = error or SfError("INVALID_FIELD", "Too many columns in the row", ())
        return prepared, error

    def _process_ingest(self, job: IngestJob) -> None:
        generation = self._generation
        if job.state != "UploadComplete":
            return
        started = time.monotonic()
        job.state = "InProgress"
        job.modstamp = self.org.clock.now()
        try:
            header, rows = self._read(job)
            job.header = header
            if not header:
                raise _BatchError("InvalidBatch : Records not found")
            columns = self._columns(job, header)
        except (csv.Error, _BatchError) as exc:
            job.state = "Failed"
            job.error_message = str(exc) if isinstance(exc, _BatchError) else f"InvalidBatch : {exc}"
            job.unprocessed = rows if "rows" in locals() else []
            job.modstamp = self.org.clock.now()
            return
        size = max(1, int(self.org.settings.bulk_chunk_size))
        for start in range(0, len(rows), size):
            if job.state == "Aborted" or generation != self._generation:
                job.unprocessed = rows[start:]
                return
            self._chunk(job, columns, rows[start : start + size])
        job.processing_ms = int((time.monotonic() - started) * 1000)
        job.state = "JobComplete"
        job.modstamp = self.org.clock.now()

    def _chunk(self, job: IngestJob, columns: list[_Column], rows: list[list[str]]) -> None:
        pending = list(rows)
        for attempt in range(self.org.settings.bulk_lock_retries + 1):
            pending = self._attempt(
                job, columns, pending, final=attempt == self.org.settings.bulk_lock_retries
            )
            if not pending:
                return
            job.retries += 1

    def _attempt(
        self, job: IngestJob, columns: list[_Column], rows: list[list[str]], *, final: bool
    ) -> list[list[str]]:
        """Process rows in one transaction; returns rows to retry because their rows were locked."""
        ext = job.obj.get_field(job.external_id_field) if job.external_id_field else None
        items = []
        for row in rows:
            prepared, error = self._prepare(job, columns, row)
            items.append((row, prepared, error, self._work(job, prepared, ext)))
        settings = self.org.faults.settings
        kind = "UNABLE_TO_LOCK_ROW"
        faults = bool(settings.rates.get(kind) or settings.every.get(kind) or settings.bursts.get(kind))
        injected = [faults and self.org.faults.draw((kind,)) == kind for _ in items]
        retry: list[list[str]] = []
        ctx = CallContext(None, job.api_version, job.session, client=job.client)

        def body(txn: Txn) -> None:
            for (row, prepared, problem, work), inject in zip(items, injected, strict=True):
                if problem is None and (work.blocked or inject) and not final:
                    retry.append(row)
                    continue
                self._row(txn, job, row, prepared, problem, work, inject, ext)

        self.org.write(ctx, [w for _, _, _, w in items], body, records=len(items), api="bulkapi")
        return retry

    def _row(
        self,
        txn: Txn,
        job: IngestJob,
        row: list[str],
        prepared: Prepared,
        error: SfError | None,
        work: Work,
        inject: bool,
        ext: FieldDef | None,
    ) -> None:
        """Apply one row (or record why it failed) and add it to the job's results."""
        record_id = ""
        if error is None and (work.blocked or inject):
            error = SfError("UNABLE_TO_LOCK_ROW", work.lock_message(), ())
        if error is None:
            point = txn.savepoint()
            try:
                record_id, created = self._apply(txn, job, prepared, ext)
            except RecordFailure as exc:
                txn.rollback_to(point)
                error = exc.errors[0]
                if error.code == "NOT_FOUND":
                    error = SfError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ())
            except MultipleMatches as exc:
                txn.rollback_to(point)
                error = SfError(
                    "DUPLICATE_EXTERNAL_ID",
                    f"{job.external_id_field}: more than one record found for external id field: [{', '.join(exc.ids)}]",
                    (),
                )
            else:
                job.successful.append([record_id, "true" if created else "false", *row])
        job.processed += 1
        if error is not None:
            job.failed += 1
            failed_id = record_id or (canonical_id(prepared.id_value) or "" if prepared.id_value else "")
            job.failures.append([failed_id, error.bulk(), *row])

    def _work(self, job: IngestJob, prepared: Prepared, ext: FieldDef | None) -> Work:
        dml = self.org.dml
        keys = set(dml.parent_ids(prepared))
        table = self.org.store.tables[job.obj.name]
        if prepared.id_value and is_id_shaped(prepared.id_value):
            cid = canonical_id(prepared.id_value)
            if cid:
                keys.add(cid)
                keys.update(dml.master_ids(job.obj, table.rows.get(cid)))
        if ext is not None and ext.name != "Id":
            entry = prepared.values.get(ext.name)
            if entry is not None and entry[1] is not None:
                keys.add(ext_key(job.obj.name, ext.name, entry[1]))
                for rid in table.find(ext, entry[1]):
                    keys.add(rid)
                    keys.update(dml.master_ids(job.obj, table.rows.get(rid)))
        return Work(keys)

    def _apply(self, txn: Txn, job: IngestJob, prepared: Prepared, ext: FieldDef | None) -> tuple[str, bool]:
        dml = self.org.dml
        op = job.operation
        if op == "insert":
            return dml.insert(txn, prepared), True
        if op == "update":
            if not prepared.id_value:
                raise RecordFailure(SfError("MISSING_ARGUMENT", "Id not specified in an update call", ()))
            record_id = prepared.id_value
            prepared.has_id = False
            return dml.update(txn, prepared, record_id), False
        if op == "upsert":
            assert ext is not None
            if ext.name == "Id":
                value: Any = prepared.id_value
                prepared.has_id = False
            else:
                entry = prepared.values.get(ext.name)
                value = entry[1] if entry else None
            return dml.upsert(txn, prepared, ext, value)
        if not prepared.id_value:
            raise RecordFailure(SfError("MISSING_ARGUMENT", "Id not specified in a delete call", ()))
        return dml.delete(txn, job.obj, prepared.id_value, hard=op == "hardDelete"), False

    # -- query -----------------------------------------------------------------------------------

    def _query_job(self, job_id: str) -> QueryJob:
        with self._lock:
            job = self.queries.get(job_id)
        if job is None:
            raise not_found()
        return job

    def create_query(self, ctx: CallContext) -> Response:
        body = ctx.body()
        if not isinstance(body, dict):
            raise _job_error(400, "INVALIDJOB", "InvalidJob : The request body must be a JSON object")
        operation = body.get("operation", "query")
        if operation not in ("query", "queryAll"):
            raise _job_error(400, "INVALIDJOB", f"InvalidJob : Invalid value for operation: {operation}")
        text = body.get("query")
        if not isinstance(text, str) or not text.strip():
            raise _job_error(400, "INVALIDJOB", "InvalidJob : A query is required")
        delimiter = body.get("columnDelimiter", "COMMA")
        line_ending = body.get("lineEnding", "LF")
        if delimiter not in _DELIMITERS or line_ending not in _LINE_ENDINGS:
            raise _job_error(400, "INVALIDJOB", "InvalidJob : Invalid columnDelimiter or lineEnding")
        try:
            query = parse(text)
            execute(query, self.org.schema, _NoRecords(), now=self.org.clock.now())
        except SoqlError as exc:
            raise ApiError.request(400, exc.code, exc.message) from None
        select = query.select
        if select.is_count or any(isinstance(item, Select) for item in select.items):
            raise _job_error(
                400,
                "INVALIDJOB",
                "InvalidJob : Bulk API 2.0 query jobs do not support COUNT() or nested queries",
            )
        obj = self.org.schema.get_object(select.sobject)
        if obj is None:
            raise _job_error(400, "INVALID_TYPE", f"sObject type '{select.sobject}' is not supported.")
        now = self.org.clock.now()
        job = QueryJob(
            id=self.org.ids.new_id("750"),
            operation=operation,
            obj=obj,
            query=text,
            select=select,
            user_id=ctx.session.user_id,
            created=now,
            modstamp=now,
            api_version=ctx.version,
            line_ending=line_ending,
            column_delimiter=delimiter,
        )
        with self._lock:
            self.queries[job.id] = job
        self._queue.put(job.id)
        return json_response(job.info())

    def _process_query(self, job: QueryJob) -> None:
        if job.state != "UploadComplete":
            return
        started = time.monotonic()
        job.state = "InProgress"
        try:
            result = execute(
                parse(job.query),
                self.org.schema,
                self.org.store,
                include_deleted=job.operation == "queryAll",
                now=self.org.clock.now(),
            )
        except SoqlError as exc:
            job.state = "Failed"
            job.error_message = f"{exc.code}: {exc.message}"
            return
        paths = [self._path(job, item) for item in job.select.items if isinstance(item, FieldPath)]
        job.header = [".".join(p) for p in paths]
        job.rows = [[to_csv(_dig(row, p)) for p in paths] for row in result.rows]
        job.processed = len(job.rows)
        job.processing_ms = int((time.monotonic() - started) * 1000)
        if job.state == "InProgress":
            job.state = "JobComplete"
        job.modstamp = self.org.clock.now()

    def _path(self, job: QueryJob, item: FieldPath) -> list[str]:
        parts = list(item.parts)
        if job.select.alias and len(parts) > 1 and parts[0].lower() == job.select.alias.lower():
            parts = parts[1:]
        obj: ObjectDef | None = job.obj
        out = []
        for index, part in enumerate(parts):
            if obj is None:
                out.append(part)
                continue
            if index == len(parts) - 1:
                fdef = obj.get_field(part)
                out.append(fdef.name if fdef else part)
            else:
                rel = obj.get_relationship(part)
                out.append(rel.relationship_name or part if rel else part)
                obj = self.org.schema.get_object(rel.reference_to[0]) if rel else None
        return out

    def get_query(self, ctx: CallContext, job_id: str) -> Response:
        return json_response(self._query_job(job_id).info())

    def list_queries(self, ctx: CallContext) -> Response:
        with self._lock:
            jobs = [j.info() for j in self.queries.values()]
        return json_response({"done": True, "records": jobs, "nextRecordsUrl": None})

    def patch_query(self, ctx: CallContext, job_id: str) -> Response:
        job = self._query_job(job_id)
        body = ctx.body()
        if not isinstance(body, dict) or body.get("state") != "Aborted":
            raise _job_error(
                400,
                "INVALIDJOBSTATE",
                f"Invalid state: {body.get('state') if isinstance(body, dict) else body}",
            )
        if job.state not in ("UploadComplete", "InProgress"):
            raise _job_error(409, "INVALIDJOBSTATE", f"Job's state is {job.state}, unable to abort the job")
        job.state = "Aborted"
        return json_response(job.info())

    def delete_query(self, ctx: CallContext, job_id: str) -> Response:
        job = self._query_job(job_id)
        with self._lock:
            self.queries.pop(job.id, None)
        return no_content()

    def query_results(self, ctx: CallContext, job_id: str) -> Response:
        job = self._query_job(job_id)
        if job.state != "JobComplete":
            raise _job_error(
                400, "INVALIDJOBSTATE", f"Job's state is {job.state}: results are not available yet"
            )
        args = ctx.request.args if ctx.request else {}
        try:
            start = int(args.get("locator") or 0)
            limit = int(args.get("maxRecords") or len(job.rows) or 1)
        except ValueError:
            raise _job_error(400, "INVALIDLOCATOR", "Invalid locator or maxRecords") from None
        if start < 0 or start > len(job.rows) or limit <= 0:
            raise _job_error(400, "INVALIDLOCATOR", "Invalid locator or maxRecords")
        page = job.rows[start : start + limit]
        end = start + len(page)
        buffer = io.StringIO()
        writer = csv.writer(
            buffer,
            delimiter=_DELIMITERS[job.column_delimiter],
            lineterminator=_LINE_ENDINGS[job.line_ending],
            quoting=csv.QUOTE_ALL,
        )
        writer.writerow(job.header)
        writer.writerows(page)
        ctx.records = len(page)
        response = Response(buffer.getvalue().encode("utf-8"), status=200, content_type=CSV_TYPE)
        response.headers["Sforce-Locator"] = str(end) if end < len(job.rows) else "null"
        response.headers["Sforce-NumberOfRecords"] = str(len(page))
        return response


class _BatchError(Exception):
    pass


class _NoRecords:
    """An empty data source: running a query on it checks the query against the schema only."""

    def scan(self, sobject: str, include_deleted: bool) -> Iterator[dict[str, Any]]:
        return iter(())

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        return None


def _value_error(fdef: FieldDef, cell: str) -> SfError:
    return SfError(
        "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{fdef.label}: value not of required type: {cell}", (fdef.name,)
    )


def _csv_line(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def _dig(row: dict[str, Any], path: list[str]) -> Any:
    current: Any = row
    for part in path:
        if not isinstance(current, dict):
            return None
        if part in current:
            current = current[part]
            continue
        lowered = part.lower()
        current = next((v for k, v in current.items() if k.lower() == lowered), None)
    return current
