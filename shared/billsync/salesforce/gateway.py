"""The Salesforce gateway: simple-salesforce with batching, error translation and the API budget governor.

Writes go out as sObject Collections (up to 200 records each, allOrNone false, one result per record)
packed into `/composite` requests of up to five collections, so a batch of invoices and their lines
costs one API request per 200 invoices. The writes of one object and operation that reach the
Bulk threshold go out as one Bulk API 2.0 ingest job instead (a handful of requests for any number
of records), with per-record results mapped back exactly as for collections.

Every response's `Sforce-Limit-Info` is read. A write plan reserves its requests before its first
one: when the org's daily budget would fall to the configured reserve, the gateway refuses the
whole plan (`BudgetReserveReached`), so the sync stops cleanly, with nothing half-written, and
resumes on a later run.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import requests

from billsync.domain.models import ErrorInfo
from billsync.domain.rules import classify_salesforce_error
from billsync.ports import (
    BudgetReserveReached,
    OrgMismatch,
    SalesforceCallError,
    SfDelete,
    SfUpdate,
    SfUpsert,
    SfWrite,
    SfWriteResult,
    WritePlan,
)
from billsync.salesforce.auth import AccessToken, SalesforceCredentials, request_token

if TYPE_CHECKING:
    from simple_salesforce import Salesforce

    from billsync.salesforce.bulk import IngestJob

T = TypeVar("T")
COLLECTION_LIMIT = 200  # records per sObject Collections request
COLLECTIONS_PER_COMPOSITE = 5  # collection subrequests Salesforce allows in one /composite request
QUERY_BATCH_SIZE = 2000
# Requests a Bulk API 2.0 ingest job costs: create, upload, close, a few polls and up to three
# result files. A plan reserves this many per job before it starts.
BULK_JOB_REQUESTS = 10
BULK_FIRST_POLL_SECONDS = 0.25
BULK_MAX_POLL_SECONDS = 5.0


def encode(value: Any) -> Any:
    """JSON for Salesforce: exact decimals, dates as YYYY-MM-DD, datetimes in UTC with milliseconds."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        moment = value.astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} cannot be sent to Salesforce")


def _dumps(body: Any) -> str:
    return json.dumps(body, default=encode, separators=(",", ":"))


@dataclass(frozen=True)
class _Collection:
    """One sObject Collections subrequest and the correlation keys of its records, in order."""

    method: str
    url: str
    body: dict[str, Any] | None
    keys: list[str]


class SalesforceGateway:
    def __init__(
        self,
        credentials: SalesforceCredentials,
        *,
        api_version: str = "59.0",
        ca_file: str | None = None,
        timeout: float = 30.0,
        client_name: str = "billsync",
        reserve_percent: float = 10.0,
        pinned_org_id: str | None = None,
        bulk_threshold: int = 10_000,
        bulk_wait_seconds: float = 40.0,
    ) -> None:
        self._credentials = credentials
        self.api_version = api_version
        self._timeout = timeout
        self._reserve_percent = reserve_percent
        self._pinned_org_id = pinned_org_id
        self.bulk_threshold = bulk_threshold
        self._bulk_wait = bulk_wait_seconds
        self._session = requests.Session()
        if ca_file:
            self._session.trust_env = False  # or the machine-wide CA bundle variable overrides verify
            self._session.verify = ca_file
        # The client name shows in Change Data Capture's changeOrigin: how billsync recognises its own writes.
        self._session.headers["Sforce-Call-Options"] = f"client={client_name}"
        self._token: AccessToken | None = None
        self._sf: Salesforce | None = None
        self._describes: dict[str, set[str]] = {}
        self._usage: tuple[int, int] | None = None
        self.requests_made = 0

    # ------------------------------------------------------------------------------ session

    def _client(self) -> Salesforce:
        if self._sf is None:
            from simple_salesforce import Salesforce

            token = request_token(self._session, self._credentials, timeout=self._timeout)
            if self._pinned_org_id and token.org_id[:15] != self._pinned_org_id[:15]:
                raise OrgMismatch(
                    f"the Salesforce credentials log in to org {token.org_id}, but this deployment is pinned "
                    f"to {self._pinned_org_id}; nothing was written (a refreshed sandbox pointing at production "
                    "billing, or the wrong secret?)"
                )
            self._token = token
            self._sf = Salesforce(
                instance_url=token.instance_url,
                session_id=token.access_token,
                session=self._session,
                version=self.api_version,
                parse_float=Decimal,
                object_pairs_hook=dict,
            )
        return self._sf

    def org_id(self) -> str:
        self._client()
        assert self._token is not None
        return self._token.org_id

    def api_usage(self) -> tuple[int, int] | None:
        return self._usage

    def _call(self, operation: Callable[[Salesforce], T], *, reserved: bool = False) -> T:
        """Run one API request: budget check (unless its plan `reserved` it), one re-login on an
        expired session, error translation."""
        from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession

        if not reserved:
            self._check_budget()
        for attempt in (1, 2):
            sf = self._client()
            self.requests_made += 1
            try:
                return operation(sf)
            except SalesforceExpiredSession:
                self._sf = None  # the token expired or was revoked: log in again, once
                if attempt == 2:
                    raise SalesforceCallError(
                        ErrorInfo(
                            code="INVALID_SESSION_ID",
                            message="the session expired again right after a fresh login",
                            retryable=True,
                        )
                    ) from None
            except SalesforceError as exc:
                error = _translate(exc.status, exc.content)
                if error.code == "REQUEST_LIMIT_EXCEEDED" and "TotalRequests" in error.message:
                    used, limit = self._usage or (0, 0)
                    raise BudgetReserveReached(max(used, limit), limit, self._reserve(limit)) from None
                raise SalesforceCallError(error) from None
            except requests.RequestException as exc:
                raise SalesforceCallError(
                    ErrorInfo(
                        code="CONNECTION_ERROR",
                        message=f"Salesforce did not answer ({type(exc).__name__})",
                        retryable=True,
                    )
                ) from None
            finally:
                self._read_usage(sf)
        raise AssertionError("unreachable")

    def _read_usage(self, sf: Salesforce) -> None:
        usage = sf.api_usage.get("api-usage")
        if usage is not None:
            self._usage = (int(usage.used), int(usage.total))

    def _reserve(self, limit: int) -> int:
        return math.ceil(limit * self._reserve_percent / 100)

    def _check_budget(self, requests_needed: int = 1) -> None:
        if self._usage is None or self._within_budget(requests_needed):
            return
        # The last reading may be old (a warm process, a budget that has rolled over since): read
        # the org's usage again before refusing.
        self._call(lambda sf: sf.limits(), reserved=True)
        if not self._within_budget(requests_needed):
            used, limit = self._usage
            raise BudgetReserveReached(used, limit, self._reserve(limit))

    def _within_budget(self, requests_needed: int) -> bool:
        assert self._usage is not None
        used, limit = self._usage
        return used + requests_needed <= limit - self._reserve(limit)

    def budget_left(self) -> int | None:
        """Requests left before the reserve, as of the last response (None before the first call)."""
        if self._usage is None:
            return None
        used, limit = self._usage
        return max(0, limit - self._reserve(limit) - used)

    # ------------------------------------------------------------------------------ reads

    def query(self, soql: str, *, include_deleted: bool = False) -> Iterator[dict[str, Any]]:
        """Stream the records of a query page by page (never the whole result at once)."""
        headers = {"Sforce-Query-Options": f"batchSize={QUERY_BATCH_SIZE}"}
        page = self._call(lambda sf: sf.query(soql, include_deleted=include_deleted, headers=headers))
        while True:
            yield from page["records"]
            if page.get("done", True):
                return
            page = self._next_page(page["nextRecordsUrl"], headers)

    def _next_page(self, url: str, headers: dict[str, str]) -> dict[str, Any]:
        page: dict[str, Any] = self._call(
            lambda sf: sf.query_more(url, identifier_is_url=True, headers=headers)
        )
        return page

    def field_names(self, sobject: str) -> set[str]:
        if sobject not in self._describes:
            describe = _body(self._call(lambda sf: sf.restful(f"sobjects/{sobject}/describe")))
            self._describes[sobject] = {f["name"] for f in describe["fields"]}
        return self._describes[sobject]

    # ------------------------------------------------------------------------------ writes

    def write(self, plan: WritePlan) -> dict[str, SfWriteResult]:
        """Run a write plan; every write's key gets a result, whatever happens to the request carrying it.

        Subrequests of one /composite request run in order, so stages share requests: a stage's
        collections always follow the previous stage's, in the same request or a later one. A stage
        with a Bulk job first sends what earlier stages left pending, then waits for its job.
        """
        stages = [_groups(stage) for stage in plan.stages]
        self._reserve_requests(stages)
        results: dict[str, SfWriteResult] = {}
        pending: list[_Collection] = []
        for groups in stages:
            jobs = [g for g in groups if len(g.writes) >= self.bulk_threshold]
            if jobs:
                self._send_collections(pending, results)
                pending = []
            pending.extend(c for g in groups if g not in jobs for c in _collections(g, self.api_version))
            for job in jobs:
                results.update(self._bulk(job))
        self._send_collections(pending, results)
        return results

    def _reserve_requests(self, stages: list[list[_Group]]) -> None:
        """Refuse the whole plan now rather than stop half-way through it."""
        collections = sum(
            math.ceil(len(g.writes) / COLLECTION_LIMIT)
            for groups in stages
            for g in groups
            if len(g.writes) < self.bulk_threshold
        )
        jobs = sum(1 for groups in stages for g in groups if len(g.writes) >= self.bulk_threshold)
        needed = math.ceil(collections / COLLECTIONS_PER_COMPOSITE) + jobs * BULK_JOB_REQUESTS
        if needed and self._usage is None:
            self._call(lambda sf: sf.limits())  # a fresh process: learn the org's usage first
        self._check_budget(needed)

    def _send_collections(self, collections: list[_Collection], results: dict[str, SfWriteResult]) -> None:
        for start in range(0, len(collections), COLLECTIONS_PER_COMPOSITE):
            self._composite(collections[start : start + COLLECTIONS_PER_COMPOSITE], results)

    # ------------------------------------------------------------------------------ Bulk API 2.0

    def _bulk(self, group: _Group) -> dict[str, SfWriteResult]:
        """One ingest job: create, upload the CSV, close, wait, and map its result files back."""
        from billsync.salesforce import bulk

        job = bulk.IngestJob(group.kind, group.object, group.external_id or None, group.writes)
        try:
            created = _body(
                self._call(
                    lambda sf: sf.restful("jobs/ingest", method="POST", data=_dumps(job.create_body())),
                    reserved=True,
                )
            )
        except SalesforceCallError as exc:
            return bulk.failed_everywhere(job.writes, exc.error)
        path = f"jobs/ingest/{created['id']}"
        try:
            return self._run_job(job, path)
        except SalesforceCallError as exc:
            # Never leave an open job behind; what it did is redone, idempotently, on the retry.
            with contextlib.suppress(SalesforceCallError):
                self._call(lambda sf: self._job_state(sf, path, "Aborted"), reserved=True)
            return bulk.failed_everywhere(job.writes, exc.error)

    def _run_job(self, job: IngestJob, path: str) -> dict[str, SfWriteResult]:
        """Upload a created job's rows, close it, wait for it and read what happened to each row."""
        from billsync.salesforce import bulk

        upload = bulk.to_csv(job).encode()
        self._call(
            lambda sf: sf._call_salesforce(
                "PUT",
                f"{sf.base_url}{path}/batches",
                data=upload,
                headers={"Content-Type": "text/csv"},
            ),
            reserved=True,
        )
        self._call(lambda sf: self._job_state(sf, path, "UploadComplete"), reserved=True)
        info = self._await(path)
        missing = bulk.NO_RESULT
        if info["state"] == "Failed":
            missing = classify_salesforce_error(
                "BULK_JOB_FAILED", str(info.get("errorMessage") or "the Bulk API job failed")
            )
        processed = int(info.get("numberRecordsProcessed", 0))
        failed = int(info.get("numberRecordsFailed", 0))
        return bulk.map_results(
            job,
            self._result_file(path, "successfulResults") if processed > failed else None,
            self._result_file(path, "failedResults") if failed else None,
            self._result_file(path, "unprocessedrecords") if processed < len(job.writes) else None,
            missing=missing,
        )

    def _job_state(self, sf: Salesforce, path: str, state: str) -> dict[str, Any]:
        answer: dict[str, Any] = _body(sf.restful(path, method="PATCH", data=_dumps({"state": state})))
        return answer

    def _await(self, path: str) -> dict[str, Any]:
        """Poll the job until it ends; past the wait allowed, abort it (its unprocessed rows come back)."""
        deadline = time.monotonic() + self._bulk_wait
        pause = BULK_FIRST_POLL_SECONDS
        while True:
            info: dict[str, Any] = _body(self._call(lambda sf: sf.restful(path), reserved=True))
            if info["state"] in {"JobComplete", "Failed", "Aborted"}:
                return info
            if time.monotonic() + pause > deadline:
                with contextlib.suppress(SalesforceCallError):  # it ended meanwhile: its state says how
                    self._call(lambda sf: self._job_state(sf, path, "Aborted"), reserved=True)
                aborted: dict[str, Any] = _body(self._call(lambda sf: sf.restful(path), reserved=True))
                return aborted
            time.sleep(pause)
            pause = min(pause * 2, BULK_MAX_POLL_SECONDS)

    def _result_file(self, path: str, kind: str) -> str:
        response = self._call(
            lambda sf: sf._call_salesforce("GET", f"{sf.base_url}{path}/{kind}/"), reserved=True
        )
        response.encoding = "utf-8"
        return str(response.text)

    def _composite(self, collections: list[_Collection], results: dict[str, SfWriteResult]) -> None:
        request = {
            "allOrNone": False,
            "compositeRequest": [
                {
                    "method": c.method,
                    "url": c.url,
                    "referenceId": f"c{i}",
                    **({"body": c.body} if c.body else {}),
                }
                for i, c in enumerate(collections)
            ],
        }
        try:
            response = _body(
                self._call(
                    lambda sf: sf.restful("composite", method="POST", data=_dumps(request)), reserved=True
                )
            )
        except SalesforceCallError as exc:
            for collection in collections:
                for key in collection.keys:
                    results[key] = SfWriteResult(key=key, ok=False, error=exc.error)
            return
        answers = {item["referenceId"]: item for item in response["compositeResponse"]}
        for i, collection in enumerate(collections):
            answer = answers.get(f"c{i}", {"httpStatusCode": 500, "body": []})
            body = answer.get("body")
            if answer.get("httpStatusCode", 500) >= 400 or not isinstance(body, list):
                error = _translate(answer.get("httpStatusCode", 500), body)
                for key in collection.keys:
                    results[key] = SfWriteResult(key=key, ok=False, error=error)
                continue
            for key, item in zip(collection.keys, body, strict=False):
                results[key] = _record_result(key, item)
            for key in collection.keys[len(body) :]:
                results[key] = SfWriteResult(
                    key=key,
                    ok=False,
                    error=ErrorInfo(
                        code="NO_RESULT",
                        message="Salesforce returned no result for this record",
                        retryable=True,
                    ),
                )


def _body(value: Any) -> Any:
    if value is None:
        raise SalesforceCallError(
            ErrorInfo(code="EMPTY_RESPONSE", message="Salesforce answered with no body", retryable=True)
        )
    return value


@dataclass(eq=False)
class _Group:
    """A stage's writes of one kind and object (and external id, for upserts), in their order."""

    kind: str  # upsert | update | delete
    object: str
    external_id: str
    writes: list[SfWrite]


def _groups(stage: list[SfWrite]) -> list[_Group]:
    groups: dict[tuple[str, str, str], _Group] = {}
    for write in stage:
        if isinstance(write, SfUpsert):
            key = ("upsert", write.object, write.external_id_field)
        elif isinstance(write, SfUpdate):
            key = ("update", write.object, "")
        else:
            key = ("delete", write.object, "")
        groups.setdefault(key, _Group(*key, writes=[])).writes.append(write)
    return list(groups.values())


def _collections(group: _Group, version: str) -> list[_Collection]:
    """A group's writes as collection subrequests of at most 200 records, keeping their order."""
    base = f"/services/data/v{version}/composite/sobjects"
    collections: list[_Collection] = []
    for start in range(0, len(group.writes), COLLECTION_LIMIT):
        chunk = group.writes[start : start + COLLECTION_LIMIT]
        keys = [w.key for w in chunk]
        if group.kind == "upsert":
            records = [
                {"attributes": {"type": w.object}, **w.fields} for w in chunk if isinstance(w, SfUpsert)
            ]
            collections.append(
                _Collection(
                    "PATCH",
                    f"{base}/{group.object}/{group.external_id}",
                    {"allOrNone": False, "records": records},
                    keys,
                )
            )
        elif group.kind == "update":
            records = [
                {"attributes": {"type": w.object}, "Id": w.id, **w.fields}
                for w in chunk
                if isinstance(w, SfUpdate)
            ]
            collections.append(_Collection("PATCH", base, {"allOrNone": False, "records": records}, keys))
        else:
            ids = ",".join(w.id for w in chunk if isinstance(w, SfDelete))
            collections.append(_Collection("DELETE", f"{base}?ids={ids}&allOrNone=false", None, keys))
    return collections


def _record_result(key: str, item: dict[str, Any]) -> SfWriteResult:
    if item.get("success"):
        return SfWriteResult(key=key, ok=True, id=item.get("id"), created=bool(item.get("created", False)))
    errors = item.get("errors") or [{}]
    first = errors[0]
    code = first.get("statusCode") or first.get("errorCode") or "UNKNOWN_EXCEPTION"
    message = "; ".join(str(e.get("message", "")) for e in errors) or code
    return SfWriteResult(
        key=key,
        ok=False,
        id=item.get("id"),
        error=classify_salesforce_error(code, message, tuple(first.get("fields") or ())),
    )


def _translate(status: int | None, content: Any) -> ErrorInfo:
    """A request-level Salesforce error body (a JSON array of {errorCode, message, fields}) in billsync's terms."""
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        code = first.get("errorCode") or first.get("statusCode") or f"HTTP_{status}"
        message = "; ".join(str(e.get("message", "")) for e in content if isinstance(e, dict))
        return classify_salesforce_error(code, message, tuple(first.get("fields") or ()))
    fallback = {
        500: "UNKNOWN_EXCEPTION",
        502: "SERVER_UNAVAILABLE",
        503: "SERVER_UNAVAILABLE",
        504: "SERVER_UNAVAILABLE",
    }
    code = fallback.get(status or 0, f"HTTP_{status}")
    return classify_salesforce_error(code, f"Salesforce answered HTTP {status}")
