"""Composite resources: sObject Collections, ``/composite``, ``/composite/batch``, ``/composite/tree``.

Collections write up to 200 records in one transaction, with per-record results in request order
(``statusCode`` error shapes) and ``allOrNone`` rollback. ``/composite`` runs up to 25 subrequests
in one transaction with ``@{ref.path}`` references between them; it counts as one API request.
``/composite/batch`` runs up to 25 independent subrequests, each counted. ``/composite/tree``
inserts record trees transactionally.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Response

from local.salesforce.dml import MultipleMatches, Prepared, RecordFailure, prepare
from local.salesforce.errors import ApiError, SfError
from local.salesforce.http import CallContext, json_response
from local.salesforce.ids import canonical_id, is_id_shaped
from local.salesforce.locks import ext_key
from local.salesforce.org import Org, Work
from local.salesforce.rest import Rest, record_json, upsertable
from local.salesforce.schema import FieldDef, ObjectDef
from local.salesforce.store import Txn

__all__ = ["Composite"]

MAX_RECORDS = 200
MAX_SUBREQUESTS = 25
MAX_QUERY_OR_COLLECTION = 5
_ROLLED_BACK = SfError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone header",
    (),
)
_LIMIT = ApiError.request(
    400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call"
)
_REFERENCE = re.compile(r"@\{([^}]*)\}")
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
_HALTED = "The transaction was rolled back since another operation in the same transaction failed."

Dispatch = Callable[[CallContext, str, str, Any], Response]


@dataclass
class _Item:
    """One record of a collection call."""

    index: int
    obj: ObjectDef | None = None
    prepared: Prepared | None = None
    record_id: str | None = None
    error: SfError | None = None
    work: Work | None = None
    result: dict[str, Any] | None = None
    created: bool | None = None
    injected: bool = False


def _result(item: _Item, op: str) -> dict[str, Any]:
    if item.error is not None:
        out: dict[str, Any] = {}
        if op in ("update", "delete") and item.record_id:
            out["id"] = item.record_id
        out.update(success=False, errors=[item.error.collection()])
        return out
    body: dict[str, Any] = {"id": item.record_id, "success": True, "errors": []}
    if op == "upsert":
        body["created"] = bool(item.created)
    return body


class Composite:
    def __init__(self, org: Org, rest: Rest, dispatch: Dispatch) -> None:
        self.org = org
        self.rest = rest
        self.dispatch = dispatch

    # -- sObject Collections ---------------------------------------------------------------------

    def _collection_body(self, ctx: CallContext) -> tuple[list[Any], bool]:
        body = ctx.body()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise ApiError.request(
                400, "JSON_PARSER_ERROR", "The request body must be an object with a records array"
            )
        records = body["records"]
        if len(records) > MAX_RECORDS:
            raise _LIMIT
        all_or_none = body.get("allOrNone", False)
        if not isinstance(all_or_none, bool):
            raise ApiError.request(400, "JSON_PARSER_ERROR", "allOrNone must be true or false")
        return records, all_or_none

    def _typed(self, record: Any, expected: ObjectDef | None = None) -> ObjectDef:
        if not isinstance(record, dict):
            raise ApiError.request(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
        attributes = record.get("attributes")
        name = attributes.get("type") if isinstance(attributes, dict) else None
        if not isinstance(name, str) or not name:
            raise ApiError.request(400, "INVALID_TYPE", "Must send a concrete entity type.")
        obj = self.org.schema.get_object(name)
        if obj is None:
            raise ApiError.request(
                400,
                "INVALID_TYPE",
                f"sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to "
                "append the '__c' after the entity name. Please reference your WSDL or the describe call for the "
                "appropriate names.",
            )
        if expected is not None and obj is not expected:
            raise ApiError.request(
                400,
                "INVALID_TYPE",
                f"This request can only upsert records of type {expected.name}, not {obj.name}",
            )
        return obj

    def _lock_faults(self, items: list[_Item]) -> None:
        settings = self.org.faults.settings
        kind = "UNABLE_TO_LOCK_ROW"
        if not (settings.rates.get(kind) or settings.every.get(kind) or settings.bursts.get(kind)):
            return
        for item in items:
            if item.error is None and self.org.faults.draw((kind,)) == kind:
                item.injected = True

    def _run(
        self,
        ctx: CallContext,
        items: list[_Item],
        all_or_none: bool,
        op: str,
        apply: Callable[[Txn, _Item], None],
    ) -> Response:
        self._lock_faults(items)
        works = [item.work or Work() for item in items]

        def body(txn: Txn) -> None:
            # inside /composite the transaction is shared: roll back this call's changes only
            start = txn.savepoint()
            failed = False
            for item, work in zip(items, works, strict=True):
                if item.error is None and (work.blocked or item.injected):
                    message = (
                        work.lock_message()
                        if work.blocked
                        else "unable to obtain exclusive access to this record"
                    )
                    if item.injected and item.record_id:
                        message += f" or 1 records: {item.record_id}"
                    item.error = SfError("UNABLE_TO_LOCK_ROW", message, ())
                if item.error is None:
                    point = txn.savepoint()
                    try:
                        apply(txn, item)
                    except RecordFailure as exc:
                        txn.rollback_to(point)
                        item.error = exc.errors[0]
                    except MultipleMatches as exc:
                        txn.rollback_to(point)
                        item.error = self._duplicate_external(item, exc.ids)
                failed = failed or item.error is not None
            if failed and all_or_none:
                txn.rollback_to(start)
                for item in items:
                    if item.error is None:
                        item.error = _ROLLED_BACK
                        item.record_id = None if op in ("create", "upsert") else item.record_id

        self.org.write(ctx, works, body, records=len(items))
        results = []
        for item in items:
            result = _result(item, op)
            if item.error is _ROLLED_BACK:
                result = {"id": None if op in ("create", "upsert") else item.record_id, **result}
            results.append(result)
        ctx.records = len(items)
        return json_response(results)

    def _duplicate_external(self, item: _Item, ids: list[str]) -> SfError:
        field = item.result.get("field") if item.result else ""
        return SfError(
            "DUPLICATE_EXTERNAL_ID",
            f"{field}: more than one record found for external id field: [{', '.join(ids)}]",
            (),
        )

    def create(self, ctx: CallContext) -> Response:
        records, all_or_none = self._collection_body(ctx)
        items = []
        for index, record in enumerate(records):
            obj = self._typed(record)
            prepared = prepare(self.org.schema, obj, record, None)
            items.append(_Item(index, obj, prepared, work=Work(set(self.org.dml.parent_ids(prepared)))))

        def apply(txn: Txn, item: _Item) -> None:
            assert item.prepared is not None
            item.record_id = self.org.dml.insert(txn, item.prepared)

        return self._run(ctx, items, all_or_none, "create", apply)

    def update(self, ctx: CallContext) -> Response:
        records, all_or_none = self._collection_body(ctx)
        items = []
        seen: set[str] = set()
        for index, record in enumerate(records):
            obj = self._typed(record)
            prepared = prepare(self.org.schema, obj, record, None)
            item = _Item(index, obj, prepared)
            raw = prepared.id_value or (record.get("id") if isinstance(record.get("id"), str) else None)
            if not raw:
                item.error = SfError("MISSING_ARGUMENT", "Id not specified in an update call", ())
            else:
                cid = canonical_id(raw) if is_id_shaped(raw) else None
                item.record_id = cid or raw
                if cid is None or cid[:3] != obj.key_prefix:
                    item.error = SfError(
                        "MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {raw}", ("Id",)
                    )
                elif cid in seen:
                    item.error = SfError("DUPLICATE_VALUE", f"Duplicate id in list: {cid}", ())
                else:
                    seen.add(cid)
                    old = self.org.store.tables[obj.name].rows.get(cid)
                    item.work = Work(
                        {cid, *self.org.dml.parent_ids(prepared), *self.org.dml.master_ids(obj, old)}
                    )
            prepared.has_id = False
            items.append(item)

        def apply(txn: Txn, item: _Item) -> None:
            assert item.prepared is not None
            assert item.record_id is not None
            try:
                self.org.dml.update(txn, item.prepared, item.record_id)
            except RecordFailure as exc:
                raise RecordFailure(*[_collection_error(e) for e in exc.errors]) from None

        return self._run(ctx, items, all_or_none, "update", apply)

    def upsert(self, ctx: CallContext, sobject: str, field: str) -> Response:
        obj = self.rest.sobject(sobject)
        fdef = self.rest.ext_field(obj, field)
        records, all_or_none = self._collection_body(ctx)
        items = []
        counts: dict[Any, int] = {}
        for index, record in enumerate(records):
            self._typed(record, obj)
            prepared = prepare(self.org.schema, obj, record, None)
            item = _Item(index, obj, prepared, result={"field": fdef.name})
            if fdef.name == "Id":
                value: Any = prepared.id_value
                prepared.has_id = False
            else:
                entry = prepared.values.get(fdef.name)
                value = entry[1] if entry else None
                if value is None:
                    item.error = SfError("MISSING_ARGUMENT", f"{fdef.name} not specified", ())
            item.record_id = None
            item.created = None
            if item.error is None and value is not None:
                key = value.lower() if isinstance(value, str) and not fdef.case_sensitive else value
                counts[key] = counts.get(key, 0) + 1
            items.append(item)
            item.work = self.rest.upsert_work(obj, fdef, value, prepared)
            item.result = {"field": fdef.name, "value": value}
        for item in items:
            value = item.result["value"] if item.result else None
            key = value.lower() if isinstance(value, str) and not fdef.case_sensitive else value
            if item.error is None and value is not None and counts.get(key, 0) > 1:
                item.error = SfError("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}", ())

        def apply(txn: Txn, item: _Item) -> None:
            assert item.prepared is not None
            assert item.result is not None
            value = item.result["value"]
            try:
                item.record_id, item.created = self.org.dml.upsert(txn, item.prepared, fdef, value)
            except RecordFailure as exc:
                raise RecordFailure(*[_collection_error(e) for e in exc.errors]) from None

        return self._run(ctx, items, all_or_none, "upsert", apply)

    def delete(self, ctx: CallContext) -> Response:
        args = ctx.http.args
        raw_ids = [i.strip() for i in args.get("ids", "").split(",") if i.strip()]
        if not raw_ids:
            raise ApiError.request(400, "MISSING_ARGUMENT", "ids parameter is required")
        if len(raw_ids) > MAX_RECORDS:
            raise _LIMIT
        all_or_none = args.get("allOrNone", "false").lower() == "true"
        items = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_ids):
            item = _Item(index, record_id=raw)
            cid = canonical_id(raw) if is_id_shaped(raw) else None
            obj = self.org.schema.object_for_id(cid) if cid else None
            if cid is None or obj is None:
                item.error = SfError("MALFORMED_ID", f"invalid record id: {raw}", ())
            elif cid in seen:
                item.error = SfError("DUPLICATE_VALUE", f"Duplicate id in list: {cid}", ())
            else:
                seen.add(cid)
                item.obj, item.record_id = obj, cid
                old = self.org.store.tables[obj.name].rows.get(cid)
                item.work = Work({cid, *self.org.dml.master_ids(obj, old)})
            items.append(item)

        def apply(txn: Txn, item: _Item) -> None:
            assert item.obj is not None
            assert item.record_id is not None
            try:
                self.org.dml.delete(txn, item.obj, item.record_id)
            except RecordFailure as exc:
                raise RecordFailure(*[_collection_error(e) for e in exc.errors]) from None

        return self._run(ctx, items, all_or_none, "delete", apply)

    def retrieve(self, ctx: CallContext, sobject: str) -> Response:
        obj = self.rest.sobject(sobject)
        if ctx.http.method == "POST":
            body = ctx.body()
            if not isinstance(body, dict):
                raise ApiError.request(400, "JSON_PARSER_ERROR", "The request body must be an object")
            ids, fields = body.get("ids"), body.get("fields")
            if not isinstance(ids, list) or not isinstance(fields, list):
                raise ApiError.request(400, "MISSING_ARGUMENT", "ids and fields are required")
            limit = 2000
        else:
            ids = [i for i in ctx.http.args.get("ids", "").split(",") if i]
            fields_text = ctx.http.args.get("fields")
            if not ids or not fields_text:
                raise ApiError.request(400, "MISSING_ARGUMENT", "ids and fields are required")
            fields = fields_text.split(",")
            limit = 800
        if len(ids) > limit:
            raise _LIMIT
        defs = self.rest.fields_param(obj, ",".join(str(f) for f in fields)) or []
        table = self.org.store.tables[obj.name]
        out: list[Any] = []
        for raw in ids:
            cid = canonical_id(raw) if isinstance(raw, str) and is_id_shaped(raw) else None
            record = table.rows.get(cid) if cid else None
            out.append(
                None
                if record is None or record["IsDeleted"]
                else record_json(obj, record, ctx.base_path, defs)
            )
        ctx.records = len(out)
        return json_response(out)

    # -- /composite ------------------------------------------------------------------------------

    def composite(self, ctx: CallContext) -> Response:
        body = ctx.body()
        if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
            raise ApiError.request(400, "JSON_PARSER_ERROR", "compositeRequest is required")
        subrequests = body["compositeRequest"]
        all_or_none = bool(body.get("allOrNone", False))
        if len(subrequests) > MAX_SUBREQUESTS:
            return _limit_exceeded("The request can\u2019t contain more than 25 operations.")
        heavy = 0
        references: set[str] = set()
        for sub in subrequests:
            if (
                not isinstance(sub, dict)
                or not isinstance(sub.get("url"), str)
                or not isinstance(sub.get("method"), str)
            ):
                raise ApiError.request(
                    400, "JSON_PARSER_ERROR", "Each subrequest needs method, url and referenceId"
                )
            ref = sub.get("referenceId")
            if not isinstance(ref, str) or not _REFERENCE_ID.match(ref):
                raise ApiError.request(
                    400,
                    "JSON_PARSER_ERROR",
                    f"Provided referenceId ('{ref}') must start with a letter or a number, and it can contain only "
                    "letters, numbers and underscores ('_').",
                )
            if ref in references:
                raise ApiError.request(
                    400, "JSON_PARSER_ERROR", f"Duplicate referenceId provided in the request: {ref}"
                )
            references.add(ref)
            path = sub["url"].split("?", 1)[0]
            if re.search(r"/(query|queryAll)/?$", path) or "/composite/sobjects" in path:
                heavy += 1
        if heavy > MAX_QUERY_OR_COLLECTION:
            return _limit_exceeded(
                "The request can\u2019t contain more than 5 query or sObject Collections operations."
            )
        works = [self._sub_work(sub) for sub in subrequests]
        records = sum(_count_records(sub.get("body")) for sub in subrequests)
        responses: list[dict[str, Any]] = []

        def run(txn: Txn) -> None:
            results: dict[str, Any] = {}
            inject = ctx.inject_lock_failure
            failed_index: int | None = None
            for index, (sub, work) in enumerate(zip(subrequests, works, strict=True)):
                ref = sub["referenceId"]
                status: int
                payload: Any
                headers: dict[str, str]
                try:
                    url = _substitute_text(sub["url"], results)
                    sub_body = _substitute(sub.get("body"), results)
                except _MissingReference as missing:
                    status, payload, headers = (
                        400,
                        [{"errorCode": "PROCESSING_HALTED", "message": missing.message()}],
                        {},
                    )
                else:
                    if work.blocked:
                        status, payload, headers = (
                            400,
                            [
                                {
                                    "message": work.lock_message(),
                                    "errorCode": "UNABLE_TO_LOCK_ROW",
                                    "fields": [],
                                }
                            ],
                            {},
                        )
                    else:
                        sub_ctx = self._sub_context(ctx, txn, sub, inject and sub["method"].upper() != "GET")
                        if sub["method"].upper() != "GET":
                            inject = False
                        response = self.dispatch(sub_ctx, sub["method"].upper(), url, sub_body)
                        status = response.status_code
                        payload = json.loads(response.get_data()) if response.get_data() else None
                        headers = (
                            {"Location": response.headers["Location"]}
                            if "Location" in response.headers
                            else {}
                        )
                results[ref] = payload if status < 400 else None
                responses.append(
                    {"body": payload, "httpHeaders": headers, "httpStatusCode": status, "referenceId": ref}
                )
                if status >= 400 and all_or_none:
                    failed_index = index
                    break
            if failed_index is not None:
                txn.rollback()
                halted = {"errorCode": "PROCESSING_HALTED", "message": _HALTED}
                for index, sub in enumerate(subrequests):
                    if index == failed_index:
                        continue
                    entry = {
                        "body": [halted],
                        "httpHeaders": {},
                        "httpStatusCode": 400,
                        "referenceId": sub["referenceId"],
                    }
                    if index < len(responses):
                        responses[index] = entry
                    else:
                        responses.append(entry)

        self.org.write(ctx, works, run, records=records)
        return json_response({"compositeResponse": responses})

    def _sub_context(self, ctx: CallContext, txn: Txn, sub: dict[str, Any], inject: bool) -> CallContext:
        extra = sub.get("httpHeaders")
        headers: dict[str, str] = dict(extra) if isinstance(extra, dict) else {}
        sub_ctx = CallContext(ctx.request, ctx.version, ctx.session)
        sub_ctx.txn = txn
        sub_ctx.latency_due = False
        sub_ctx.inject_lock_failure = inject
        parent_headers = dict(ctx.http.headers.items()) if ctx.request is not None else {}
        sub_ctx.extra["headers"] = {**parent_headers, **headers}
        return sub_ctx

    def _sub_work(self, sub: dict[str, Any]) -> Work:
        """Row-lock keys a subrequest needs, from what it names literally (Ids, external IDs)."""
        keys: set[str] = set()
        url = sub.get("url", "")
        path = url.split("?", 1)[0].rstrip("/")
        parts = path.split("/")
        for part in parts:
            cid = canonical_id(part) if is_id_shaped(part) else None
            if cid and self.org.schema.object_for_id(cid):
                keys.add(cid)
        if "sobjects" in parts:
            at = parts.index("sobjects")
            rest = parts[at + 1 :]
            obj = self.org.schema.get_object(rest[0]) if rest else None
            if obj is not None and len(rest) == 3 and "@{" not in rest[2]:
                fdef = obj.get_field(rest[1])
                if fdef is not None and upsertable(obj, fdef) and fdef.name != "Id":
                    keys.add(ext_key(obj.name, fdef.name, rest[2]))
                    keys.update(self.org.store.tables[obj.name].find(fdef, rest[2]))
            body = sub.get("body")
            if "composite" in parts and isinstance(body, dict) and isinstance(body.get("records"), list):
                keys |= self._collection_keys(rest, body["records"])
            elif obj is not None and isinstance(body, dict):
                with contextlib.suppress(ApiError):
                    keys.update(self.org.dml.parent_ids(prepare(self.org.schema, obj, body, None)))
        return Work({k for k in keys if "@{" not in k})

    def _collection_keys(self, rest: list[str], records: list[Any]) -> set[str]:
        """Row-lock keys of an sObject Collection subrequest: each record's own row (by Id or external
        ID), its master rows and the parents it points to, as the collection would take them alone."""
        schema = self.org.schema
        named = schema.get_object(rest[0]) if rest else None
        ext = named.get_field(rest[1]) if named is not None and len(rest) == 2 else None
        keys: set[str] = set()
        for record in records:
            if not isinstance(record, dict):
                continue
            attributes = record.get("attributes")
            type_name = attributes.get("type") if isinstance(attributes, dict) else None
            obj = schema.get_object(str(type_name)) if type_name else named
            if obj is None:
                continue
            fields = {k: v for k, v in record.items() if k != "attributes"}
            with contextlib.suppress(ApiError):
                prepared = prepare(schema, obj, fields, None)
                if ext is not None:
                    entry = prepared.values.get(ext.name)
                    value = prepared.id_value if ext.name == "Id" else (entry[1] if entry else None)
                    keys |= self.rest.upsert_work(obj, ext, value, prepared).keys
                    continue
                keys.update(self.org.dml.parent_ids(prepared))
                record_id = canonical_id(prepared.id_value) if prepared.id_value else None
                if record_id:
                    keys.add(record_id)
                    row = self.org.store.tables[obj.name].rows.get(record_id)
                    keys.update(self.org.dml.master_ids(obj, row))
        return keys

    # -- /composite/batch ------------------------------------------------------------------------

    def batch(self, ctx: CallContext) -> Response:
        body = ctx.body()
        if not isinstance(body, dict) or not isinstance(body.get("batchRequests"), list):
            raise ApiError.request(400, "JSON_PARSER_ERROR", "batchRequests is required")
        requests = body["batchRequests"]
        if len(requests) > MAX_SUBREQUESTS:
            raise ApiError.request(
                400, "LIMIT_EXCEEDED", "The request can\u2019t contain more than 25 operations."
            )
        halt = bool(body.get("haltOnError", False))
        if requests:
            ctx.extra_api_calls = len(requests) - 1
        self.org.latency(
            ctx, sum(_count_records(r.get("richInput")) for r in requests if isinstance(r, dict))
        )
        results: list[dict[str, Any]] = []
        halted = False
        has_errors = False
        for sub in requests:
            if halted:
                results.append(
                    {
                        "statusCode": 412,
                        "result": [
                            {
                                "errorCode": "BATCH_PROCESSING_HALTED",
                                "message": "Batch processing halted per request",
                            }
                        ],
                    }
                )
                continue
            if not isinstance(sub, dict) or not isinstance(sub.get("url"), str):
                raise ApiError.request(400, "JSON_PARSER_ERROR", "Each batch request needs method and url")
            url = sub["url"]
            if not url.startswith("/"):
                url = "/services/data/" + url
            sub_ctx = CallContext(ctx.request, ctx.version, ctx.session)
            sub_ctx.latency_due = False
            response = self.dispatch(
                sub_ctx, str(sub.get("method", "GET")).upper(), url, sub.get("richInput")
            )
            data = response.get_data()
            results.append({"statusCode": response.status_code, "result": json.loads(data) if data else None})
            if response.status_code >= 400:
                has_errors = True
                halted = halt
        return json_response({"hasErrors": has_errors, "results": results})

    # -- /composite/tree -------------------------------------------------------------------------

    def tree(self, ctx: CallContext, sobject: str) -> Response:
        obj = self.rest.sobject(sobject)
        body = ctx.body()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise ApiError.request(400, "JSON_PARSER_ERROR", "records is required")
        flat: list[tuple[ObjectDef, dict[str, Any], str, _TreeParent | None]] = []
        types: set[str] = set()
        references: set[str] = set()

        def walk(records: list[Any], expected: ObjectDef, parent: _TreeParent | None, depth: int) -> None:
            if depth > 5:
                raise ApiError.request(
                    400, "INVALID_INPUT", "Too many levels: a tree can have at most 5 levels"
                )
            for record in records:
                robj = self._typed(record, expected)
                attributes = record["attributes"]
                ref = attributes.get("referenceId")
                if not isinstance(ref, str) or not ref:
                    raise ApiError.request(
                        400, "INVALID_INPUT", "Include a reference ID for each record in the request."
                    )
                if ref in references:
                    raise ApiError.request(
                        400, "INVALID_INPUT", f"Duplicate ReferenceId provided in the request: {ref}"
                    )
                references.add(ref)
                types.add(robj.name)
                fields: dict[str, Any] = {}
                nested: list[tuple[ObjectDef, FieldDef, list[Any]]] = []
                for key, value in record.items():
                    child = robj.children_by_name.get(key.lower())
                    if (
                        child is not None
                        and isinstance(value, dict)
                        and isinstance(value.get("records"), list)
                    ):
                        cobj = self.org.schema.objects[child.child.lower()]
                        nested.append((cobj, cobj.fields[child.field.lower()], value["records"]))
                    else:
                        fields[key] = value
                flat.append((robj, fields, ref, parent))
                for cobj, cfield, children in nested:
                    walk(children, cobj, _TreeParent(ref, cfield), depth + 1)

        walk(body["records"], obj, None, 1)
        if len(flat) > MAX_RECORDS:
            raise ApiError.request(
                400, "INVALID_INPUT", "Too many records: a tree request can hold at most 200 records"
            )
        if len(types) > 5:
            raise ApiError.request(
                400, "INVALID_INPUT", "Too many object types: a tree request can hold at most 5"
            )
        prepared = [
            (robj, prepare(self.org.schema, robj, fields, None), ref, parent)
            for robj, fields, ref, parent in flat
        ]
        works = [Work(set(self.org.dml.parent_ids(p))) for _, p, _, _ in prepared]
        outcome: dict[str, Any] = {}

        def run(txn: Txn) -> None:
            ids: dict[str, str] = {}
            errors: list[dict[str, Any]] = []
            for (_, prep, ref, parent), work in zip(prepared, works, strict=True):
                if work.blocked:
                    errors.append(
                        {
                            "referenceId": ref,
                            "errors": [SfError("UNABLE_TO_LOCK_ROW", work.lock_message(), ()).collection()],
                        }
                    )
                    continue
                if parent is not None:
                    if parent.reference not in ids:
                        continue
                    prep.values[parent.field.name] = (parent.field, ids[parent.reference])
                try:
                    ids[ref] = self.org.dml.insert(txn, prep)
                except RecordFailure as exc:
                    errors.append({"referenceId": ref, "errors": [e.collection() for e in exc.errors]})
            if errors:
                txn.rollback()
                outcome["errors"] = errors
            else:
                outcome["ids"] = ids

        self.org.write(ctx, works, run, records=len(prepared))
        ctx.records = len(prepared)
        if "errors" in outcome:
            return json_response({"hasErrors": True, "results": outcome["errors"]}, 400)
        return json_response(
            {
                "hasErrors": False,
                "results": [{"referenceId": ref, "id": outcome["ids"][ref]} for _, _, ref, _ in prepared],
            },
            201,
        )


@dataclass(frozen=True)
class _TreeParent:
    reference: str
    field: FieldDef


def _collection_error(error: SfError) -> SfError:
    if error.code == "NOT_FOUND":
        return SfError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ())
    return error


def _limit_exceeded(message: str) -> Response:
    body = {
        "compositeResponse": [
            {
                "body": [{"errorCode": "LIMIT_EXCEEDED", "message": message}],
                "httpHeaders": {},
                "httpStatusCode": 400,
                "referenceId": None,
            }
        ]
    }
    return json_response(body)


def _count_records(body: Any) -> int:
    if isinstance(body, dict) and isinstance(body.get("records"), list):
        return len(body["records"])
    return 1 if body is not None else 0


class _MissingReference(Exception):
    def __init__(self, expression: str) -> None:
        super().__init__(expression)
        self.expression = expression

    def message(self) -> str:
        ref = re.split(r"[.\[]", self.expression, maxsplit=1)[0]
        return f"Invalid reference specified. No value for {self.expression} found in {ref}."


def _lookup(expression: str, results: dict[str, Any]) -> Any:
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", expression)
    if not parts or parts[0] not in results or results[parts[0]] is None:
        raise _MissingReference(expression)
    current: Any = results[parts[0]]
    for part in parts[1:]:
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(current, list) or index >= len(current):
                raise _MissingReference(expression)
            current = current[index]
        else:
            if not isinstance(current, dict) or part not in current:
                raise _MissingReference(expression)
            current = current[part]
    return current


def _substitute_text(text: str, results: dict[str, Any]) -> str:
    def replace(match: re.Match[str]) -> str:
        value = _lookup(match.group(1), results)
        return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)

    return _REFERENCE.sub(replace, text)


def _substitute(value: Any, results: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole:
            return _lookup(whole.group(1), results)
        return _substitute_text(value, results) if "@{" in value else value
    if isinstance(value, dict):
        return {k: _substitute(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, results) for v in value]
    return value
