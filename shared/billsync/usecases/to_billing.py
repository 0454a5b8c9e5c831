"""Apply Salesforce records to the billing system, and write back what the billing system assigns.

For each record of a batch (collapsed to its newest SystemModstamp):
* a version older than the one already handled is skipped as stale;
* a record the billing system owns is never pushed: an edit of its synced fields is logged as
  "not owned" (the next sync from billing overwrites it), while billsync's own writes are recognised
  by their fingerprint and skipped silently (no echo loop);
* a Salesforce-owned record whose synced values did not change since they were last pushed is skipped;
* a record whose parent has not reached the billing system yet waits (it is retried, never dropped);
* otherwise it is created (with an idempotency key derived from its Salesforce id, so a retried
  create never makes a second record) or updated, and the billing system's id, number and other
  computed facts are written back onto it — and onto its children, matched in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from billsync.connectors.base import BillingApiError, BillingConnector, ObjectSupport
from billsync.domain.fingerprint import fingerprint
from billsync.domain.mapping import FieldMappingError, MappingContext, apply_mapping
from billsync.domain.models import (
    Change,
    Direction,
    ErrorInfo,
    Outcome,
    RecordResult,
    Side,
    SourceRecord,
    XrefState,
)
from billsync.domain.rules import infer_origin, is_stale, owner_of
from billsync.ports import SfUpdate, SfWrite, WritePlan, XrefKey, XrefWrite
from billsync.usecases.common import external_id, mapping_error, result_for, salesforce_values
from billsync.usecases.context import SyncContext
from billsync.usecases.salesforce_reads import ID_BATCH, SalesforceReads, parse_sf_datetime, split_external_id


@dataclass(eq=False)
class _Item:
    record: dict[str, Any]
    changes: list[Change]
    xref: XrefState | None
    sf_id: str
    modstamp: datetime
    origin: Side = Side.SALESFORCE
    billing: SourceRecord | None = None
    billing_id: str | None = None
    fingerprints: dict[str, str] = field(default_factory=dict)
    result: RecordResult | None = None
    remember_version: bool = False  # a skipped version worth recording, so its re-reads stay silent


def apply_to_billing(
    ctx: SyncContext, source_key: str, object_name: str, changes: Sequence[Change]
) -> list[RecordResult]:
    """Apply Salesforce changes of one object to one source; one result per change, in order."""
    connector = ctx.connector(source_key)
    support = connector.objects[object_name]
    to_billing = ctx.mappings.require(connector.name, object_name, Direction.TO_BILLING)
    to_salesforce = ctx.mappings.get(connector.name, object_name, Direction.TO_SALESFORCE)
    reads = SalesforceReads(to_billing, to_salesforce)
    results: dict[str, RecordResult] = {}
    items = _collect(ctx, reads, source_key, object_name, changes, results)
    writebacks: list[SfWrite] = []
    for item in items:
        _apply_one(ctx, connector, support, reads, source_key, item, writebacks)
    outcomes = {}
    if writebacks:
        plan = WritePlan()
        plan.add_stage(writebacks)
        outcomes = ctx.salesforce.write(plan)
    _settle(ctx, source_key, object_name, reads, items, outcomes)
    for item in items:
        assert item.result is not None
        for change in item.changes:
            results[change.key] = item.result.model_copy(update={"change_key": change.key})
    return [results[c.key] for c in changes]


def _collect(
    ctx: SyncContext,
    reads: SalesforceReads,
    source_key: str,
    object_name: str,
    changes: Sequence[Change],
    results: dict[str, RecordResult],
) -> list[_Item]:
    references = [c.id for c in changes if c.record is None]
    fetched: dict[str, dict[str, Any]] = {}
    for start in range(0, len(references), ID_BATCH):
        for row in ctx.salesforce.query(
            reads.by_ids(references[start : start + ID_BATCH]), include_deleted=True
        ):
            fetched[row["Id"][:15]] = row
    newest: dict[str, tuple[dict[str, Any], list[Change]]] = {}
    for change in changes:
        record: dict[str, Any] | None = (
            change.record if change.record is not None else fetched.get(change.id[:15])
        )
        if record is None:  # gone even from the recycle bin
            record = {"Id": change.id, "IsDeleted": True, "SystemModstamp": ctx.clock().isoformat()}
        sf_id = str(record["Id"])
        kept = newest.get(sf_id[:15])
        if kept is None:
            newest[sf_id[:15]] = (record, [change])
        else:
            later = (
                record
                if parse_sf_datetime(record["SystemModstamp"]) >= parse_sf_datetime(kept[0]["SystemModstamp"])
                else kept[0]
            )
            newest[sf_id[:15]] = (later, [*kept[1], change])
    keys = {
        sid: XrefKey(source_key, object_name, salesforce_id=rec["Id"]) for sid, (rec, _) in newest.items()
    }
    xrefs = ctx.state.get_xrefs(list(keys.values()))
    return [
        _Item(
            record=rec,
            changes=chs,
            xref=xrefs.get(keys[sid]),
            sf_id=str(rec["Id"]),
            modstamp=parse_sf_datetime(rec["SystemModstamp"]),
        )
        for sid, (rec, chs) in newest.items()
    ]


OPERATOR_CAUSES = frozenset({"redrive", "sync_now"})
# "Sync now" writes even content the other side already holds (an operator repairing a record); a
# redrive retries a dead-lettered version but skips a write already in place (a redrive sent twice).
REWRITE_CAUSES = frozenset({"sync_now"})
NOT_OWNED = "edited in Salesforce, but the billing system owns this record: ignored; its next sync overwrites the edit"


def _apply_one(
    ctx: SyncContext,
    connector: BillingConnector,
    support: ObjectSupport,
    reads: SalesforceReads,
    source_key: str,
    item: _Item,
    writebacks: list[SfWrite],
) -> None:
    record, xref = item.record, item.xref
    forced = any(change.cause in OPERATOR_CAUSES for change in item.changes)
    rewrite = any(change.cause in REWRITE_CAUSES for change in item.changes)
    if xref is not None and is_stale(item.modstamp, xref.salesforce_version):
        item.result = _result(item, Outcome.SKIPPED_STALE, detail="a newer version was already handled")
        return
    if xref is not None and not forced and item.modstamp in (xref.salesforce_version, xref.failed_version):
        # A re-read (a pull's lookback) of a version already handled or dead-lettered.
        item.result = _result(
            item, Outcome.SKIPPED_UNCHANGED, detail="this version was already handled", logged=False
        )
        return
    linked_id = split_external_id(record.get(reads.external_id), source_key)
    item.billing_id = (xref.billing_id if xref else None) or linked_id
    item.origin = (xref.origin if xref and xref.origin else None) or infer_origin(
        Side.SALESFORCE,
        salesforce_says_billing=reads.origin_field is not None
        and record.get(reads.origin_field) == "Billing",
        linked=linked_id is not None,
    )
    owner = owner_of(support.ownership, item.origin)
    if record.get("IsDeleted"):
        _deleted(connector, support, item, owner, _billing_parent(reads, support, source_key, item))
        return
    if owner is Side.BILLING:
        written = fingerprint(reads.written_fields(record, owners="all"))
        if xref is None:
            # First sight of a record linked to billing: remember the link and what it holds now.
            item.fingerprints["sf_fields"] = written
            detail = "linked to its billing record"
            item.result = _result(item, Outcome.SKIPPED_UNCHANGED, detail=detail, logged=False)
        elif written == xref.fingerprints.get("sf_fields"):
            detail = "billsync's own write"
            item.result = _result(item, Outcome.SKIPPED_UNCHANGED, detail=detail, logged=False)
        else:
            item.result = _result(item, Outcome.SKIPPED_NOT_OWNED, detail=NOT_OWNED)
        item.remember_version = True
        return
    try:
        mapped = apply_mapping(
            reads.to_billing, record, MappingContext(source_key=source_key, record_id=item.sf_id)
        )
    except FieldMappingError as exc:
        item.result = _result(item, Outcome.FAILED, error=mapping_error(exc))
        return
    payload = _payload(mapped.fields, mapped.children, reads)
    item.fingerprints["sf_source"] = fingerprint(payload)
    if (
        not rewrite
        and xref is not None
        and item.billing_id
        and xref.fingerprints.get("sf_source") == item.fingerprints["sf_source"]
        and "sf_fields" in xref.fingerprints
    ):
        # billsync's write-back, or an edit of fields that do not sync.
        item.result = _result(item, Outcome.SKIPPED_UNCHANGED, detail="no synced field changed", logged=False)
        item.remember_version = True
        return
    if support.billing_parent_fields and all(_empty(payload, path) for path in support.billing_parent_fields):
        parents = " or ".join(support.billing_parent_fields)
        error = ErrorInfo(
            code="PARENT_NOT_SYNCED",
            message=f"its parent is not in the billing system yet ({parents} is empty)",
            fields=support.billing_parent_fields,
            retryable=True,
        )
        item.result = _result(item, Outcome.WAITING_FOR_PARENT, error=error)
        return
    try:
        if item.billing_id:
            parent = _first_value(payload, support.billing_parent_fields)
            item.billing = connector.update(support.name, item.billing_id, payload, parent_id=parent)
        else:
            key = f"billsync-{source_key}-{support.name}-{item.sf_id[:15]}"
            item.billing = connector.create(support.name, payload, idempotency_key=key)
    except BillingApiError as exc:
        fields = (exc.field,) if exc.field else ()
        error = ErrorInfo(code=exc.code, message=exc.message, fields=fields, retryable=exc.retryable)
        item.result = _result(item, Outcome.FAILED, error=error)
        return
    item.billing_id = item.billing.id
    writebacks.extend(_writeback(ctx, reads, source_key, item))


def _billing_parent(
    reads: SalesforceReads, support: ObjectSupport, source_key: str, item: _Item
) -> str | None:
    """The billing id of a record's parent, for APIs that nest records under it (contacts, cards)."""
    if not support.billing_parent_fields:
        return None
    try:
        mapped = apply_mapping(
            reads.to_billing, item.record, MappingContext(source_key=source_key, record_id=item.sf_id)
        )
    except FieldMappingError:
        return None
    return _first_value(_payload(mapped.fields, mapped.children, reads), support.billing_parent_fields)


def _deleted(
    connector: BillingConnector, support: ObjectSupport, item: _Item, owner: Side, parent: str | None
) -> None:
    item.remember_version = item.xref is not None  # a deletion is handled once, whatever the outcome
    if owner is Side.BILLING:
        item.result = _result(
            item,
            Outcome.SKIPPED_NOT_OWNED,
            detail="deleted in Salesforce, but the billing system owns this record: ignored",
        )
    elif not item.billing_id:
        item.result = _result(
            item, Outcome.SKIPPED_UNCHANGED, detail="deleted before it reached the billing system"
        )
    elif item.xref is not None and item.xref.deleted:
        item.result = _result(item, Outcome.SKIPPED_UNCHANGED, detail="already handled")
    elif support.on_salesforce_delete == "ignore":
        item.result = _result(
            item,
            Outcome.SKIPPED_NOT_OWNED,
            detail=f"Salesforce deletions of {support.name} records are not synced",
        )
    else:
        try:
            connector.delete(
                support.name, item.billing_id, mode=support.on_salesforce_delete, parent_id=parent
            )
        except BillingApiError as exc:
            item.result = _result(
                item,
                Outcome.FAILED,
                error=ErrorInfo(code=exc.code, message=exc.message, retryable=exc.retryable),
            )
            return
        done = "voided" if support.on_salesforce_delete == "void" else "deleted"
        item.result = _result(item, Outcome.APPLIED, detail=f"{done} in the billing system")


def _writeback(ctx: SyncContext, reads: SalesforceReads, source_key: str, item: _Item) -> list[SfWrite]:
    """The billing system's id and computed facts, written onto the Salesforce record and its children."""
    assert item.billing is not None
    fields: dict[str, Any] = {reads.external_id: external_id(source_key, item.billing.id)}
    if reads.synced_at_field:
        fields[reads.synced_at_field] = ctx.clock()
    facts: dict[str, Any] = {}
    if reads.to_salesforce is not None:
        try:
            facts = dict(
                apply_mapping(
                    reads.to_salesforce,
                    item.billing.data,
                    MappingContext(source_key=source_key, record_id=item.billing.id),
                    owners="billing",
                ).fields
            )
        except FieldMappingError as exc:
            item.result = _result(item, Outcome.FAILED, error=mapping_error(exc), billing_id=item.billing.id)
            return []
    item.fingerprints["sf_fields"] = fingerprint(facts)
    if reads.to_salesforce is not None:
        facts = salesforce_values(facts, reads.to_salesforce.fields)
    writes: list[SfWrite] = [SfUpdate(item.sf_id, reads.sobject, item.sf_id, {**fields, **facts})]
    for collection, child in reads.children.items():
        sf_children = (item.record.get(child.relationship) or {}).get("records") or []
        billing_children = item.billing.data.get(child.billing_path) or []
        for sf_child, billing_child in zip(sf_children, billing_children, strict=False):
            child_id = billing_child.get("id") if isinstance(billing_child, dict) else None
            if child_id is None:
                continue
            value = external_id(source_key, str(child_id))
            if sf_child.get(child.external_id) != value:
                key = f"{item.sf_id}/{collection}/{sf_child['Id']}"
                writes.append(SfUpdate(key, child.sobject, sf_child["Id"], {child.external_id: value}))
                sf_child[child.external_id] = value
    # What the next pull will read once these writes land: its payload is what billing now holds.
    item.record[reads.external_id] = fields[reads.external_id]
    mapped = apply_mapping(
        reads.to_billing, item.record, MappingContext(source_key=source_key, record_id=item.sf_id)
    )
    item.fingerprints["sf_source"] = fingerprint(_payload(mapped.fields, mapped.children, reads))
    return writes


def _settle(
    ctx: SyncContext,
    source_key: str,
    object_name: str,
    reads: SalesforceReads,
    items: list[_Item],
    outcomes: dict[str, Any],
) -> None:
    """Results and cross-references: what was applied, what billing assigned, which versions were seen."""
    writes: list[XrefWrite] = []
    must_hold: set[int] = set()  # writes whose loss turns an applied record into a retry
    for item in items:
        if item.result is None:
            item.result = _writeback_result(item, outcomes)
        state = _next_state(source_key, object_name, item)
        if state is None:
            continue
        write = XrefWrite(state, expected_rev=item.xref.rev if item.xref else 0)
        writes.append(write)
        if item.billing is not None:
            must_hold.add(id(write.state))
    lost = {id(w.state) for w in ctx.state.put_xrefs(writes)} & must_hold
    for write in writes:
        if id(write.state) in lost:
            item = next(i for i in items if i.sf_id == write.state.salesforce_id)
            error = ErrorInfo(
                code="CONCURRENT_UPDATE",
                message="another worker updated this record at the same time",
                retryable=True,
            )
            item.result = _result(item, Outcome.FAILED, billing_id=item.billing_id, error=error)


def _writeback_result(item: _Item, outcomes: dict[str, Any]) -> RecordResult:
    for key, outcome in outcomes.items():
        if (key == item.sf_id or key.startswith(f"{item.sf_id}/")) and not outcome.ok:
            return _result(item, Outcome.FAILED, error=outcome.error, billing_id=item.billing_id)
    created = item.xref is None or not item.xref.billing_id
    detail = "created in the billing system" if created else "updated in the billing system"
    return _result(item, Outcome.APPLIED, billing_id=item.billing_id, detail=detail)


def _next_state(source_key: str, object_name: str, item: _Item) -> XrefState | None:
    """The cross-reference after this record, or None when there is nothing worth recording."""
    result, xref = item.result, item.xref
    assert result is not None
    applied = result.outcome is Outcome.APPLIED
    failed_for_good = result.outcome is Outcome.FAILED and not result.retry
    if not (applied or failed_for_good or item.billing is not None or item.remember_version):
        return None
    base = xref or XrefState(
        source=source_key, object=object_name, salesforce_id=item.sf_id, origin=item.origin
    )
    changes: dict[str, Any] = {"origin": base.origin or item.origin}
    if item.billing_id:
        changes["billing_id"] = item.billing_id
    if item.billing is not None:
        changes["billing_version"] = item.billing.version
    if applied:
        changes |= {
            "salesforce_version": item.modstamp,
            "fingerprints": {**base.fingerprints, **item.fingerprints},
            "deleted": bool(item.record.get("IsDeleted")),
            "failed_version": None,
        }
    elif failed_for_good:
        changes["failed_version"] = item.modstamp
    elif item.remember_version:
        changes["salesforce_version"] = item.modstamp
        if xref is None:
            changes["fingerprints"] = dict(item.fingerprints)
    return base.model_copy(update=changes)


def _payload(
    fields: dict[str, Any], children: dict[str, list[Any]], reads: SalesforceReads
) -> dict[str, Any]:
    """The billing payload. Empty values are left out: the billing system keeps (or defaults) them, and
    it refuses null for fields it requires. Clearing a field in Salesforce does not clear it in billing."""
    payload = _without_none(fields)
    for collection, rows in children.items():
        payload[reads.children[collection].billing_path] = [_without_none(dict(row.fields)) for row in rows]
    return payload


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (_without_none(v) if isinstance(v, dict) else v) for k, v in values.items() if v is not None}


def _empty(payload: dict[str, Any], path: str) -> bool:
    value: Any = payload
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value in (None, "")


def _first_value(payload: dict[str, Any], paths: tuple[str, ...]) -> str | None:
    for path in paths:
        if not _empty(payload, path):
            return str(payload[path])
    return None


def _result(item: _Item, outcome: Outcome, **kwargs: Any) -> RecordResult:
    kwargs.setdefault("salesforce_id", item.sf_id)
    return result_for(item.changes[0], outcome, **kwargs)
