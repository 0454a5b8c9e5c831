"""The REST API's core resources: discovery, describe, limits, record CRUD, upsert, replication, query."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from werkzeug.wrappers import Response

from local.salesforce.dml import MultipleMatches, Prepared, RecordFailure, prepare
from local.salesforce.errors import ApiError, SfError, not_found
from local.salesforce.formats import format_datetime, from_csv, parse_datetime, to_json
from local.salesforce.http import CallContext, json_response, no_content
from local.salesforce.ids import canonical_id, is_id_shaped
from local.salesforce.locks import ext_key
from local.salesforce.org import Org, Work
from local.salesforce.query import Cursors, query_more, run_query
from local.salesforce.schema import FieldDef, ObjectDef
from local.salesforce.store import Record, Txn

__all__ = ["Rest", "record_json", "upsertable"]

_RELEASES = {
    52: "Summer '21",
    53: "Winter '22",
    54: "Spring '22",
    55: "Summer '22",
    56: "Winter '23",
    57: "Spring '23",
    58: "Summer '23",
    59: "Winter '24",
    60: "Spring '24",
    61: "Summer '24",
    62: "Winter '25",
    63: "Spring '25",
    64: "Summer '25",
    65: "Winter '26",
}
_NO_SUCH_COLUMN = (
    "No such column '{name}' on entity '{entity}'. If you are attempting to use a custom field, be sure to append "
    "the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate "
    "names."
)


def record_json(
    obj: ObjectDef, record: Record, base_path: str, fields: list[FieldDef] | None = None
) -> dict[str, Any]:
    """A record the way the REST API returns it: ``attributes`` then every (or each requested) field."""
    out: dict[str, Any] = {
        "attributes": {"type": obj.name, "url": f"{base_path}/sobjects/{obj.name}/{record['Id']}"}
    }
    get = record.get
    for fdef in fields if fields is not None else obj.field_list:
        value = get(fdef.name)
        out[fdef.name] = (
            value if value is None or isinstance(value, (str, bool, int, dict)) else to_json(value)
        )
    return out


def upsertable(obj: ObjectDef, fdef: FieldDef) -> bool:
    """Upsert keys: Id, external-ID fields, and idLookup fields of standard objects."""
    return fdef.name == "Id" or fdef.external_id or (fdef.id_lookup and not obj.custom and not fdef.custom)


def status_for(errors: list[SfError]) -> int:
    return 404 if errors and errors[0].code in ("NOT_FOUND", "ENTITY_IS_DELETED") else 400


def failure(exc: RecordFailure) -> ApiError:
    errors = exc.errors
    if errors and errors[0].code == "NOT_FOUND":
        return ApiError(404, [SfError("NOT_FOUND", errors[0].message, record_level=False)])
    return ApiError(status_for(errors), errors)


def lock_error(message: str) -> ApiError:
    return ApiError(400, SfError("UNABLE_TO_LOCK_ROW", message, ()))


class Rest:
    def __init__(self, org: Org) -> None:
        self.org = org
        self.cursors = Cursors(org)

    # -- helpers ---------------------------------------------------------------------------------

    def sobject(self, name: str) -> ObjectDef:
        obj = self.org.schema.get_object(name)
        if obj is None:
            raise not_found()
        return obj

    def record_body(self, ctx: CallContext) -> dict[str, Any]:
        body = ctx.body()
        if not isinstance(body, dict):
            raise ApiError.request(
                400,
                "JSON_PARSER_ERROR",
                "Cannot deserialize instance of sObject from START_ARRAY value [ or request may be missing a "
                "required field at [line:1, column:1]",
            )
        return body

    def fields_param(self, obj: ObjectDef, text: str | None) -> list[FieldDef] | None:
        if text is None:
            return None
        out = []
        for name in (n.strip() for n in text.split(",")):
            if not name:
                continue
            fdef = obj.get_field(name)
            if fdef is None:
                raise ApiError.request(
                    400, "INVALID_FIELD", _NO_SUCH_COLUMN.format(name=name, entity=obj.name)
                )
            out.append(fdef)
        return out

    def path_id(self, obj: ObjectDef, segment: str, *, for_write: bool) -> str:
        record_id = canonical_id(segment) if is_id_shaped(segment) else None
        if record_id is not None and record_id[:3] == obj.key_prefix:
            return record_id
        if for_write:
            raise ApiError(
                400,
                SfError("MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {segment}", ("Id",)),
            )
        raise not_found(f"Provided external ID field does not exist or is not accessible: {segment}")

    def location(self, ctx: CallContext, obj: ObjectDef, record_id: str) -> dict[str, str]:
        return {"Location": f"{ctx.base_path}/sobjects/{obj.name}/{record_id}"}

    # -- discovery -------------------------------------------------------------------------------

    def versions(self, base_url: str) -> Response:
        body = [
            {"label": _RELEASES.get(int(float(v)), f"API {v}"), "url": f"/services/data/v{v}", "version": v}
            for v in self.org.settings.api_versions
        ]
        return json_response(body)

    def resources(self, ctx: CallContext, base_url: str) -> Response:
        b = ctx.base_path
        names = (
            "tooling",
            "metadata",
            "eclair",
            "folders",
            "prechatForms",
            "contact-tracing",
            "jsonxform",
            "chatter",
            "tabs",
            "appMenu",
            "quickActions",
            "queryAll",
            "commerce",
            "wave",
            "iot",
            "analytics",
            "search",
            "smartdatadiscovery",
            "identity",
            "composite",
            "parameterizedSearch",
            "fingerprint",
            "theme",
            "nouns",
            "event",
            "serviceTemplates",
            "recent",
            "connect",
            "licensing",
            "limits",
            "process",
            "async-queries",
            "query",
            "match",
            "emailConnect",
            "compactLayouts",
            "knowledgeManagement",
            "sobjects",
            "actions",
            "support",
            "jobs",
        )
        body = {name: f"{b}/{name}" for name in names}
        body["identity"] = f"{base_url}/id/{self.org.org_id}/{ctx.session.user_id}"
        return json_response(body)

    def limits(self, ctx: CallContext) -> Response:
        max_api = self.org.settings.daily_api_limit
        used = self.org.api_used
        body = {
            "ActiveScratchOrgs": {"Max": 3, "Remaining": 3},
            "AnalyticsExternalDataSizeMB": {"Max": 40960, "Remaining": 40960},
            "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
            "ConcurrentSyncReportRuns": {"Max": 20, "Remaining": 20},
            "DailyApiRequests": {"Max": max_api, "Remaining": max(max_api - used, 0)},
            "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DailyDurableGenericStreamingApiEvents": {"Max": 10000, "Remaining": 10000},
            "DailyDurableStreamingApiEvents": {"Max": 10000, "Remaining": 10000},
            "DailyGenericStreamingApiEvents": {"Max": 10000, "Remaining": 10000},
            "DailyStandardVolumePlatformEvents": {"Max": 10000, "Remaining": 10000},
            "DailyStreamingApiEvents": {"Max": 10000, "Remaining": 10000},
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
            "FileStorageMB": {"Max": 1024, "Remaining": 1024},
            "HourlyPublishedPlatformEvents": {"Max": 50000, "Remaining": 50000},
            "HourlyPublishedStandardVolumePlatformEvents": {"Max": 1000, "Remaining": 1000},
            "MonthlyPlatformEventsUsageEntitlement": {"Max": 0, "Remaining": 0},
            "PermissionSets": {"Max": 1500, "Remaining": 1499},
            "SingleEmail": {"Max": 15, "Remaining": 15},
        }
        return json_response(body)

    def describe_global(self, ctx: CallContext) -> Response:
        if self.not_modified(ctx):
            return no_content(304)
        return json_response(self.org.schema.describe_global(ctx.version))

    def not_modified(self, ctx: CallContext) -> bool:
        since = ctx.http.headers.get("If-Modified-Since")
        if not since:
            return False
        try:
            moment = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        return moment.tzinfo is not None and self.org.schema.loaded_at <= moment

    def sobject_info(self, ctx: CallContext, sobject: str) -> Response:
        obj = self.sobject(sobject)
        if self.not_modified(ctx):
            return no_content(304)
        return json_response({"objectDescribe": obj.global_entry(ctx.version), "recentItems": []})

    def describe(self, ctx: CallContext, sobject: str) -> Response:
        obj = self.sobject(sobject)
        if self.not_modified(ctx):
            return no_content(304)
        return json_response(obj.describe(ctx.version))

    # -- records ---------------------------------------------------------------------------------

    def create(self, ctx: CallContext, sobject: str) -> Response:
        obj = self.sobject(sobject)
        prepared = prepare(self.org.schema, obj, self.record_body(ctx), ctx.body_text)
        work = Work(set(self.org.dml.parent_ids(prepared)))

        def body(txn: Txn) -> str:
            self.check_lock(ctx, work, None)
            try:
                return self.org.dml.insert(txn, prepared)
            except RecordFailure as exc:
                raise failure(exc) from None

        record_id = self.org.write(ctx, [work], body)
        return json_response(
            {"id": record_id, "success": True, "errors": []}, 201, self.location(ctx, obj, record_id)
        )

    def check_lock(self, ctx: CallContext, work: Work, record_id: str | None) -> None:
        if work.blocked:
            raise lock_error(work.lock_message())
        if ctx.inject_lock_failure:
            message = "unable to obtain exclusive access to this record"
            if record_id:
                message += f" or 1 records: {record_id}"
            raise lock_error(message)

    def get(self, ctx: CallContext, sobject: str, segment: str) -> Response:
        obj = self.sobject(sobject)
        record_id = self.path_id(obj, segment, for_write=False)
        fields = self.fields_param(obj, ctx.http.args.get("fields"))
        record = self.org.store.tables[obj.name].rows.get(record_id)
        if record is None or record["IsDeleted"]:
            raise not_found()
        ctx.records = 1
        return json_response(record_json(obj, record, ctx.base_path, fields))

    def update(self, ctx: CallContext, sobject: str, segment: str) -> Response:
        obj = self.sobject(sobject)
        record_id = self.path_id(obj, segment, for_write=True)
        prepared = prepare(self.org.schema, obj, self.record_body(ctx), ctx.body_text)
        old = self.org.store.tables[obj.name].rows.get(record_id)
        work = Work({record_id, *self.org.dml.parent_ids(prepared), *self.org.dml.master_ids(obj, old)})

        def body(txn: Txn) -> None:
            self.check_lock(ctx, work, record_id)
            try:
                self.org.dml.update(txn, prepared, record_id)
            except RecordFailure as exc:
                raise failure(exc) from None

        self.org.write(ctx, [work], body)
        return no_content()

    def delete(self, ctx: CallContext, sobject: str, segment: str) -> Response:
        obj = self.sobject(sobject)
        record_id = self.path_id(obj, segment, for_write=True)
        old = self.org.store.tables[obj.name].rows.get(record_id)
        work = Work({record_id, *self.org.dml.master_ids(obj, old)})

        def body(txn: Txn) -> None:
            self.check_lock(ctx, work, record_id)
            try:
                self.org.dml.delete(txn, obj, record_id)
            except RecordFailure as exc:
                raise failure(exc) from None

        self.org.write(ctx, [work], body)
        return no_content()

    # -- external ids ----------------------------------------------------------------------------

    def ext_field(self, obj: ObjectDef, name: str) -> FieldDef:
        fdef = obj.get_field(name)
        if fdef is None:
            raise not_found(f"Provided external ID field does not exist or is not accessible: {name}")
        if not upsertable(obj, fdef):
            raise ApiError.request(
                400,
                "INVALID_FIELD",
                f"Invalid field for upsert, must be an External Id custom or standard indexed field: {fdef.name}",
            )
        return fdef

    def ext_value(self, fdef: FieldDef, text: str) -> Any:
        if fdef.name == "Id":
            return text
        try:
            return from_csv(fdef, text)
        except ValueError:
            raise ApiError.request(
                400, "MALFORMED_ID", f"{fdef.label}: value not of required type: {text}"
            ) from None

    def multiple(self, ctx: CallContext, obj: ObjectDef, ids: list[str]) -> Response:
        return json_response([f"{ctx.base_path}/sobjects/{obj.name}/{i}" for i in sorted(ids)], 300)

    def get_by_ext(self, ctx: CallContext, sobject: str, field: str, value: str) -> Response:
        obj = self.sobject(sobject)
        fdef = obj.get_field(field)
        if fdef is None or not (fdef.external_id or fdef.id_lookup):
            raise not_found(f"Provided external ID field does not exist or is not accessible: {field}")
        fields = self.fields_param(obj, ctx.http.args.get("fields"))
        table = self.org.store.tables[obj.name]
        if fdef.name == "Id":
            cid = canonical_id(value) if is_id_shaped(value) else None
            ids = {cid} if cid and cid in table.rows and not table.rows[cid]["IsDeleted"] else set()
        else:
            ids = table.find(fdef, self.ext_value(fdef, value))
        if len(ids) > 1:
            return self.multiple(ctx, obj, list(ids))
        if not ids:
            raise not_found()
        ctx.records = 1
        return json_response(record_json(obj, table.rows[next(iter(ids))], ctx.base_path, fields))

    def upsert(self, ctx: CallContext, sobject: str, field: str, value: str) -> Response:
        obj = self.sobject(sobject)
        fdef = self.ext_field(obj, field)
        ext_value = self.ext_value(fdef, value)
        body_json = self.record_body(ctx)
        prepared = prepare(self.org.schema, obj, body_json, ctx.body_text)
        own = prepared.values.get(fdef.name)
        if own is not None and own[1] is not None and str(own[1]).lower() != str(ext_value).lower():
            raise ApiError.request(
                400,
                "INVALID_FIELD",
                f"The external ID value in the body ({own[1]}) does not match the one in the URL ({ext_value}) "
                f"for field {fdef.name}",
            )
        work = self.upsert_work(obj, fdef, ext_value, prepared)

        def body(txn: Txn) -> tuple[str, bool] | list[str]:
            self.check_lock(ctx, work, None)
            try:
                return self.org.dml.upsert(txn, prepared, fdef, ext_value)
            except MultipleMatches as exc:
                return exc.ids
            except RecordFailure as exc:
                raise failure(exc) from None

        result = self.org.write(ctx, [work], body)
        if isinstance(result, list):
            return self.multiple(ctx, obj, result)
        record_id, created = result
        if created:
            return json_response(
                {"id": record_id, "success": True, "errors": [], "created": True},
                201,
                self.location(ctx, obj, record_id),
            )
        if float(ctx.version) < 46.0:
            return no_content()
        return json_response({"id": record_id, "success": True, "errors": [], "created": False}, 200)

    def upsert_work(self, obj: ObjectDef, fdef: FieldDef, ext_value: Any, prepared: Prepared) -> Work:
        keys = set(self.org.dml.parent_ids(prepared))
        table = self.org.store.tables[obj.name]
        if fdef.name == "Id":
            cid = canonical_id(str(ext_value)) if ext_value is not None else None
            matched = {cid} if cid else set()
        elif ext_value is not None:
            keys.add(ext_key(obj.name, fdef.name, ext_value))
            matched = set(table.lookup(fdef, ext_value))
        else:
            matched = set()
        for record_id in matched:
            keys.add(record_id)
            keys.update(self.org.dml.master_ids(obj, table.rows.get(record_id)))
        return Work(keys)

    def delete_by_ext(self, ctx: CallContext, sobject: str, field: str, value: str) -> Response:
        obj = self.sobject(sobject)
        fdef = self.ext_field(obj, field)
        table = self.org.store.tables[obj.name]
        ids = (
            table.find(fdef, self.ext_value(fdef, value))
            if fdef.name != "Id"
            else {canonical_id(value) or value}
        )
        if len(ids) > 1:
            return self.multiple(ctx, obj, list(ids))
        if not ids:
            raise not_found()
        return self.delete(ctx, sobject, next(iter(ids)))

    # -- replication -----------------------------------------------------------------------------

    def window(self, ctx: CallContext, days: int) -> tuple[datetime, datetime]:
        args = ctx.http.args
        try:
            start = parse_datetime(args["start"].replace(" ", "+"))
            end = parse_datetime(args["end"].replace(" ", "+"))
        except (KeyError, ValueError):
            raise ApiError.request(
                400,
                "MALFORMED_QUERY",
                "start and end must both be ISO-8601 dateTime values, such as 2024-03-01T00:00:00+00:00",
            ) from None
        start = start.replace(second=0, microsecond=0)
        end = end.replace(second=0, microsecond=0)
        now = self.org.clock.now()
        if end < start:
            raise ApiError.request(400, "INVALID_REPLICATION_DATE", "EndDate can not be before StartDate")
        if start < (now - timedelta(days=days)).replace(second=0, microsecond=0):
            raise ApiError.request(
                400,
                "INVALID_REPLICATION_DATE",
                f"startDate must chronologically precede endDate by no more than {days} days and be within the last {days} days",
            )
        latest = min(end, now.replace(second=0, microsecond=0))
        return start, latest

    def updated(self, ctx: CallContext, sobject: str) -> Response:
        obj = self.sobject(sobject)
        start, latest = self.window(ctx, 30)
        ids = [
            r["Id"]
            for r in self.org.store.scan(obj.name, include_deleted=False)
            if start <= r["SystemModstamp"] < latest
        ]
        if len(ids) > 600_000:
            raise ApiError.request(400, "EXCEEDED_ID_LIMIT", "too many ids: more than 600000 results")
        ctx.records = len(ids)
        return json_response({"ids": sorted(ids), "latestDateCovered": format_datetime(latest)})

    def deleted(self, ctx: CallContext, sobject: str) -> Response:
        obj = self.sobject(sobject)
        start, latest = self.window(ctx, 15)
        table = self.org.store.tables[obj.name]
        found = sorted(
            ((rid, when) for rid, when in list(table.deleted_at.items()) if start <= when < latest),
            key=lambda item: (item[1], item[0]),
        )
        earliest = (self.org.clock.now() - timedelta(days=15)).replace(second=0, microsecond=0)
        body = {
            "deletedRecords": [{"id": rid, "deletedDate": format_datetime(when)} for rid, when in found],
            "earliestDateAvailable": format_datetime(earliest),
            "latestDateCovered": format_datetime(latest),
        }
        ctx.records = len(found)
        return json_response(body)

    # -- query -----------------------------------------------------------------------------------

    def query(self, ctx: CallContext, include_deleted: bool) -> Response:
        text = ctx.http.args.get("q", "")
        return json_response(run_query(self.org, self.cursors, ctx, text, include_deleted))

    def query_more(self, ctx: CallContext, token: str) -> Response:
        return json_response(query_more(self.org, self.cursors, ctx, token))
