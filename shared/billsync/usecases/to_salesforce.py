"""Apply billing records to Salesforce.

For each record of a batch (collapsed to its newest version):
1. a version older than the one applied is skipped as stale (order does not matter); two different
   states stamped with one version (Invoiced's are whole seconds) are read again from the billing system;
2. the record's origin and the object's ownership decide which mapped fields may be written: all of
   them, or only what the billing system computes (ids, numbers, status, balances);
3. a mapped result identical to what billsync last wrote is skipped as unchanged (no API call), and a
   newer version of it still moves the applied version forward, so an older one arriving later is stale;
4. everything else becomes one write plan — records first, then their children and the removal of
   children the billing system dropped — sent as sObject Collections packed in /composite requests;
5. cross-references are written conditionally on the revision read; a record that lost a race to a
   concurrent worker is re-read from the billing system and written again, so the newest state wins;
6. a change that may follow a write whose worker died before its cross-reference (a message received
   again, the page a crashed pull was applying) is never skipped as stale or unchanged: Salesforce may
   hold what the dead worker wrote, so the newest state is read (when the change is older) and written.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from billsync.connectors.base import BillingApiError, BillingConnector, ObjectSupport
from billsync.domain.fingerprint import fingerprint
from billsync.domain.mapping import FieldMappingError, MappedRecord, Mapping, MappingContext, apply_mapping
from billsync.domain.models import (
    Change,
    Direction,
    ErrorInfo,
    Outcome,
    RecordResult,
    RecordState,
    Side,
    SourceRecord,
    XrefState,
)
from billsync.domain.rules import Owners, fields_from_billing, infer_origin, is_stale, is_waiting_for_parent
from billsync.ports import SfDelete, SfUpdate, SfUpsert, SfWrite, SfWriteResult, WritePlan, XrefKey, XrefWrite
from billsync.usecases.common import external_id, mapping_error, result_for, salesforce_values
from billsync.usecases.context import SyncContext


@dataclass(eq=False)
class _Item:
    record: SourceRecord
    changes: list[Change]
    xref: XrefState | None
    origin: Side = Side.BILLING
    owners: Owners = "all"
    sf_id: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    children: dict[str, list[tuple[str, dict[str, Any]]]] = field(
        default_factory=dict
    )  # collection -> (child id, fields)
    removed_children: dict[str, dict[str, str]] = field(
        default_factory=dict
    )  # collection -> child id -> sf id
    fingerprints: dict[str, str] = field(default_factory=dict)
    parent_key: str = ""
    result: RecordResult | None = None
    tied: bool = False  # which state is the newest only the billing system knows: re-read before deciding
    reread: bool = False  # read again from the billing system in this batch
    reassert: bool = False  # Salesforce may not hold what the cross-reference says: write the newest state
    settled: bool = False  # its cross-reference was written with the batch


def apply_to_salesforce(
    ctx: SyncContext,
    source_key: str,
    object_name: str,
    changes: Sequence[Change],
    *,
    reassert: Collection[str] = (),
    reread_rounds: int = 1,
) -> list[RecordResult]:
    """Apply billing changes of one object and source; one result per change, in order.

    `reassert` holds the keys of changes whose records Salesforce may not hold as the cross-reference
    says (an earlier write of them may have been overwritten by a worker that then died).
    """
    connector = ctx.connector(source_key)
    support = connector.objects[object_name]
    mapping = ctx.mappings.require(connector.name, object_name, Direction.TO_SALESFORCE)
    results: dict[str, RecordResult] = {}
    items = _collect(ctx, connector, source_key, object_name, changes, results)
    for item in items:
        item.reassert = any(change.key in reassert for change in item.changes)
    if items:
        _decide(ctx, mapping, support, source_key, items)
        _reread_ties(ctx, connector, mapping, support, source_key, object_name, items)
        plan = _plan(mapping, source_key, ctx.clock(), [i for i in items if i.result is None])
        outcomes = ctx.salesforce.write(plan) if len(plan) else {}
        lost = _settle(
            ctx, mapping, source_key, object_name, [i for i in items if i.result is None], outcomes
        )
        _remember_failures(ctx, source_key, object_name, [i for i in items if i not in lost])
        lost += _remember_newer_unchanged(ctx, [i for i in items if i not in lost])
        for item in items:
            if item in lost:
                continue
            assert item.result is not None
            for change in item.changes:
                results[change.key] = item.result.model_copy(update={"change_key": change.key})
        if lost:
            rerun = _rerun(ctx, connector, source_key, object_name, lost, reread_rounds)
            results.update(rerun)
    return [results[c.key] for c in changes]


# ------------------------------------------------------------------------------------- collect


def _collect(
    ctx: SyncContext,
    connector: BillingConnector,
    source_key: str,
    object_name: str,
    changes: Sequence[Change],
    results: dict[str, RecordResult],
) -> list[_Item]:
    """The newest version of each record in the batch, read from the billing system when a change
    carries only its reference, with its cross-reference."""
    records: dict[str, tuple[SourceRecord, list[Change]]] = {}
    tied: set[str] = set()  # two states of one record stamped in the same second: re-read it
    references = [c for c in changes if c.record is None]
    fetched: dict[str, SourceRecord | None] = {}
    if references:
        try:
            fetched = connector.fetch(
                object_name,
                [c.id for c in references],
                parents={c.id: c.parent for c in references if c.parent},
            )
        except BillingApiError as exc:
            error = ErrorInfo(code=exc.code, message=exc.message, retryable=exc.retryable)
            for change in references:
                results[change.key] = result_for(change, Outcome.FAILED, error=error)
            references = []
    now = ctx.clock()
    for change in changes:
        if change.key in results:
            continue
        try:
            if change.record is not None:
                record = _from_payload(connector, object_name, change)
            else:
                found = fetched.get(change.id)
                # Gone from the billing system: treat as deleted now.
                record = found or SourceRecord(
                    object=object_name, id=change.id, version=now, state=RecordState.DELETED
                )
        except (KeyError, TypeError, ValueError) as exc:
            results[change.key] = result_for(
                change, Outcome.FAILED, error=ErrorInfo(code="INVALID_RECORD", message=str(exc))
            )
            continue
        kept = records.get(record.id)
        if kept is None:
            records[record.id] = (record, [change])
        else:
            if record.version == kept[0].version and record.data != kept[0].data:
                tied.add(record.id)
            newest = record if record.version >= kept[0].version else kept[0]
            records[record.id] = (newest, [*kept[1], change])
    xrefs = ctx.state.get_xrefs([XrefKey(source_key, object_name, billing_id=rid) for rid in records])
    return [
        _Item(
            record=record,
            changes=chs,
            xref=xrefs.get(XrefKey(source_key, object_name, billing_id=rid)),
            tied=rid in tied,
        )
        for rid, (record, chs) in records.items()
    ]


def _from_payload(connector: BillingConnector, object_name: str, change: Change) -> SourceRecord:
    assert change.record is not None
    record = connector.to_record(object_name, change.record, deleted=change.deleted)
    if change.version is not None and change.version > record.version:
        record = record.model_copy(update={"version": change.version})
    return record


# ------------------------------------------------------------------------------------- decide


OPERATOR_CAUSES = frozenset({"redrive", "sync_now"})
# "Sync now" writes even content the other side already holds (an operator repairing a record); a
# redrive retries a dead-lettered version but skips a write already in place (a redrive sent twice).
REWRITE_CAUSES = frozenset({"sync_now"})


def _decide(
    ctx: SyncContext, mapping: Mapping, support: ObjectSupport, source_key: str, items: list[_Item]
) -> None:
    delete_policy = ctx.config.object_settings(support.name).delete_policy
    for item in items:
        record, xref = item.record, item.xref
        forced = any(change.cause in OPERATOR_CAUSES for change in item.changes)
        rewrite = item.reassert or any(change.cause in REWRITE_CAUSES for change in item.changes)
        if xref is not None and is_stale(record.version, xref.billing_version):
            if item.reassert and not item.reread:
                item.tied = True  # not this version, but the newest: re-read, then written
                continue
            item.result = _result(item, Outcome.SKIPPED_STALE, detail="a newer version was already applied")
            continue
        if item.tied and not item.reread:
            continue  # the batch holds two states of it from one second: only the billing system knows
        if xref is not None and xref.failed_version == record.version and not forced:
            # A re-read (a pull's lookback, a repeated event) of a version already dead-lettered.
            item.result = _result(
                item,
                Outcome.SKIPPED_UNCHANGED,
                detail="this version is in the dead-letter queue",
                logged=False,
            )
            continue
        item.origin = (xref.origin if xref and xref.origin else None) or infer_origin(
            Side.BILLING, billing_remembers_salesforce_id=bool(record.salesforce_id)
        )
        item.owners = (
            fields_from_billing(support.ownership, item.origin)
            if support.creates_in_salesforce
            else "billing"
        )
        item.sf_id = (xref.salesforce_id if xref else None) or record.salesforce_id
        if record.state is RecordState.DELETED:
            _decide_deletion(item, mapping, delete_policy)
            continue
        if item.owners == "billing" and not item.sf_id:
            detail = "no Salesforce record is linked to this billing record"
            item.result = _result(item, Outcome.SKIPPED_NOT_OWNED, detail=detail)
            continue
        try:
            context = MappingContext(source_key=source_key, record_id=record.id)
            mapped = apply_mapping(mapping, record.data, context, owners=item.owners)
        except FieldMappingError as exc:
            item.result = _result(item, Outcome.FAILED, error=mapping_error(exc))
            continue
        _take_mapped(item, mapped, source_key)
        if xref is None or xref.deleted or rewrite:
            continue
        if xref.fingerprints.get("sf_written") == item.fingerprints["sf_written"]:
            # Same content: a re-read of the applied version is silent; a newer one is worth a line.
            same_version = record.version == xref.billing_version
            item.result = _result(
                item,
                Outcome.SKIPPED_UNCHANGED,
                detail="Salesforce already holds this version",
                logged=not same_version,
            )
        elif record.version == xref.billing_version and not item.reread:
            # Two states stamped in the same second: only the billing system knows which is newer.
            item.tied = True


def _reread_ties(
    ctx: SyncContext,
    connector: BillingConnector,
    mapping: Mapping,
    support: ObjectSupport,
    source_key: str,
    object_name: str,
    items: list[_Item],
) -> None:
    tied = [i for i in items if i.tied and not i.reread and i.result is None]
    if not tied:
        return
    try:
        latest = connector.fetch(
            object_name,
            [i.record.id for i in tied],
            parents={i.record.id: p for i in tied for p in list(i.record.parents.values())[:1]},
        )
    except BillingApiError as exc:
        for item in tied:
            item.result = _result(
                item,
                Outcome.FAILED,
                error=ErrorInfo(code=exc.code, message=exc.message, retryable=exc.retryable),
            )
        return
    for item in tied:
        fresh = latest.get(item.record.id)
        item.record = fresh or item.record.model_copy(
            update={"state": RecordState.DELETED, "version": ctx.clock()}
        )
        item.fields, item.children, item.removed_children, item.fingerprints = {}, {}, {}, {}
        item.reread = True
    _decide(ctx, mapping, support, source_key, tied)


def _take_mapped(item: _Item, mapped: MappedRecord, source_key: str) -> None:
    item.fields = dict(mapped.fields)
    previous = item.xref.children if item.xref else {}
    for collection, children in mapped.children.items():
        rows = [(child.id or str(n), dict(child.fields)) for n, child in enumerate(children, 1)]
        item.children[collection] = rows
        current = {child_id for child_id, _ in rows}
        gone = {cid: sfid for cid, sfid in previous.get(collection, {}).items() if cid not in current}
        if gone:
            item.removed_children[collection] = gone
    item.fingerprints["sf_fields"] = fingerprint(item.fields)
    item.fingerprints["sf_written"] = fingerprint(
        {
            "fields": item.fields,
            "children": {c: [dict(f, _id=cid) for cid, f in rows] for c, rows in item.children.items()},
        }
    )
    item.parent_key = external_id(source_key, item.record.id)


def _decide_deletion(item: _Item, mapping: Mapping, policy: str) -> None:
    if item.xref is not None and item.xref.deleted:
        item.result = _result(item, Outcome.SKIPPED_UNCHANGED, detail="already marked deleted")
    elif not item.sf_id:
        item.result = _result(
            item, Outcome.SKIPPED_UNCHANGED, detail="deleted before it ever reached Salesforce"
        )
    elif policy == "mark" and not mapping.salesforce.deleted_field:
        item.result = _result(
            item, Outcome.SKIPPED_NOT_OWNED, detail="the mapping names no deleted field to mark"
        )


# ------------------------------------------------------------------------------------- plan


def _plan(mapping: Mapping, source_key: str, now: datetime, items: list[_Item]) -> WritePlan:
    sf = mapping.salesforce
    records: list[SfWrite] = []
    children: list[SfWrite] = []
    for item in sorted(items, key=_group_key):  # neighbours share parents: fewer row locks
        key = item.record.id
        if item.record.state is RecordState.DELETED:
            assert item.sf_id is not None
            if sf.deleted_field:
                fields = {sf.deleted_field: True, **({sf.synced_at_field: now} if sf.synced_at_field else {})}
                records.append(SfUpdate(key, sf.object, item.sf_id, fields))
            else:
                records.append(SfDelete(key, sf.object, item.sf_id))
            continue
        fields = salesforce_values(item.fields, mapping.fields)
        fields[sf.external_id] = item.parent_key
        if sf.synced_at_field:
            fields[sf.synced_at_field] = now
        if item.owners == "all":
            if sf.version_field:
                fields[sf.version_field] = item.record.version
            if sf.origin_field and item.origin is Side.BILLING:
                fields[sf.origin_field] = "Billing"
            if sf.deleted_field:
                fields[sf.deleted_field] = False
            records.append(SfUpsert(key, sf.object, sf.external_id, fields))
        else:
            assert item.sf_id is not None
            records.append(SfUpdate(key, sf.object, item.sf_id, fields))
        if item.owners == "all":
            for collection, rows in item.children.items():
                child = mapping.children[collection].salesforce
                assert child.parent_field, "a to_salesforce child names its parent_field"
                for child_id, child_fields in rows:
                    values = {
                        **salesforce_values(child_fields, mapping.children[collection].fields),
                        child.external_id: external_id(source_key, child_id),
                        child.parent_field: {sf.external_id: item.parent_key},
                    }
                    children.append(
                        SfUpsert(f"{key}/{collection}/{child_id}", child.object, child.external_id, values)
                    )
            for collection, gone in item.removed_children.items():
                child_object = mapping.children[collection].salesforce.object
                for child_id, sf_child in gone.items():
                    children.append(SfDelete(f"{key}/{collection}/{child_id}", child_object, sf_child))
    plan = WritePlan()
    plan.add_stage(records)
    plan.add_stage(children)
    return plan


def _group_key(item: _Item) -> tuple[str, str]:
    parents = item.record.parents
    return (
        next(iter(sorted(parents.values())), item.record.id) if parents else item.record.id,
        item.record.id,
    )


# ------------------------------------------------------------------------------------- settle


def _settle(
    ctx: SyncContext,
    mapping: Mapping,
    source_key: str,
    object_name: str,
    items: list[_Item],
    outcomes: dict[str, SfWriteResult],
) -> list[_Item]:
    """Turn write outcomes into results and cross-references; return the items that lost a race."""
    writes: list[XrefWrite] = []
    by_write: dict[int, _Item] = {}
    for item in items:
        key = item.record.id
        outcome = outcomes.get(key)
        if outcome is None:
            item.result = _result(
                item,
                Outcome.FAILED,
                error=ErrorInfo(code="NO_RESULT", message="the write was not attempted", retryable=True),
            )
            continue
        if not outcome.ok:
            assert outcome.error is not None
            item.result = _failure(item, outcome.error)
            continue
        sf_id = outcome.id or item.sf_id
        children, child_error = _children_outcome(item, key, outcomes)
        xref = item.xref
        fingerprints = dict(xref.fingerprints) if xref else {}
        if child_error is None:
            fingerprints.update(item.fingerprints)
        else:
            fingerprints.pop("sf_written", None)  # the next change writes everything again
        state = XrefState(
            source=source_key,
            object=object_name,
            billing_id=item.record.id,
            salesforce_id=sf_id,
            origin=item.origin,
            billing_version=max(item.record.version, xref.billing_version)
            if xref and xref.billing_version
            else item.record.version,
            salesforce_version=xref.salesforce_version if xref else None,
            fingerprints=fingerprints,
            children=children,
            deleted=item.record.state is RecordState.DELETED,
            failed_version=item.record.version
            if child_error is not None and not child_error.retryable
            else None,
            rev=xref.rev if xref else 0,
        )
        write = XrefWrite(state, expected_rev=xref.rev if xref else 0)
        writes.append(write)
        by_write[id(write)] = item
        item.settled = True
        if child_error is not None:
            item.result = _failure(item, child_error, salesforce_id=sf_id)
        else:
            detail = (
                "marked deleted"
                if item.record.state is RecordState.DELETED
                else ("created" if outcome.created else None)
            )
            item.result = _result(item, Outcome.APPLIED, salesforce_id=sf_id, detail=detail)
    lost = ctx.state.put_xrefs(writes)
    return [by_write[id(w)] for w in lost]


def _remember_newer_unchanged(ctx: SyncContext, items: list[_Item]) -> list[_Item]:
    """Move the applied version forward when a newer version carries what Salesforce already holds, so
    that an older, different version arriving late is seen as stale (order does not matter). Returns
    the items that lost a race to a concurrent worker (re-read like any other)."""
    writes: list[XrefWrite] = []
    by_write: dict[int, _Item] = {}
    for item in items:
        xref, result = item.xref, item.result
        if xref is None or result is None or result.outcome is not Outcome.SKIPPED_UNCHANGED:
            continue
        if xref.billing_version is None or item.record.version <= xref.billing_version:
            continue
        write = XrefWrite(
            xref.model_copy(update={"billing_version": item.record.version}), expected_rev=xref.rev
        )
        writes.append(write)
        by_write[id(write)] = item
    if not writes:
        return []
    return [by_write[id(w)] for w in ctx.state.put_xrefs(writes)]


def _remember_failures(ctx: SyncContext, source_key: str, object_name: str, items: list[_Item]) -> None:
    """Record the version of each permanent failure, so that re-reads of it are not dead-lettered again."""
    writes = []
    for item in items:
        result = item.result
        if item.settled or result is None or result.outcome is not Outcome.FAILED or result.retry:
            continue
        xref = item.xref
        base = xref or XrefState(
            source=source_key, object=object_name, billing_id=item.record.id, origin=item.origin
        )
        if result.salesforce_id and not base.salesforce_id:
            base = base.model_copy(update={"salesforce_id": result.salesforce_id})
        state = base.model_copy(update={"failed_version": item.record.version, "rev": base.rev})
        writes.append(XrefWrite(state, expected_rev=xref.rev if xref else 0))
    ctx.state.put_xrefs(writes)  # a lost race means someone else just wrote this record: nothing to keep


def _children_outcome(
    item: _Item, key: str, outcomes: dict[str, SfWriteResult]
) -> tuple[dict[str, dict[str, str]], ErrorInfo | None]:
    children = {c: dict(v) for c, v in (item.xref.children if item.xref else {}).items()}
    first_error: ErrorInfo | None = None
    for collection, rows in item.children.items():
        kept = children.setdefault(collection, {})
        for child_id, _ in rows:
            outcome = outcomes.get(f"{key}/{collection}/{child_id}")
            if outcome is not None and outcome.ok and outcome.id:
                kept[child_id] = outcome.id
            elif outcome is not None and outcome.error is not None and first_error is None:
                first_error = outcome.error.model_copy(
                    update={
                        "fields": tuple(f"{collection}[{child_id}].{f}" for f in outcome.error.fields)
                        or (f"{collection}[{child_id}]",)
                    }
                )
    for collection, gone in item.removed_children.items():
        kept = children.setdefault(collection, {})
        for child_id in gone:
            outcome = outcomes.get(f"{key}/{collection}/{child_id}")
            if outcome is not None and (
                outcome.ok
                or (
                    outcome.error
                    and outcome.error.code in {"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY"}
                )
            ):
                kept.pop(child_id, None)
            elif outcome is not None and outcome.error is not None and first_error is None:
                first_error = outcome.error
    return {c: v for c, v in children.items() if v}, first_error


def _failure(item: _Item, error: ErrorInfo, salesforce_id: str | None = None) -> RecordResult:
    outcome = Outcome.WAITING_FOR_PARENT if is_waiting_for_parent(error) else Outcome.FAILED
    return _result(item, outcome, error=error, salesforce_id=salesforce_id)


def _result(item: _Item, outcome: Outcome, **kwargs: Any) -> RecordResult:
    return result_for(item.changes[0], outcome, billing_id=item.record.id, **kwargs)


def _rerun(
    ctx: SyncContext,
    connector: BillingConnector,
    source_key: str,
    object_name: str,
    lost: list[_Item],
    rounds: int,
) -> dict[str, RecordResult]:
    """Records whose cross-reference moved while this batch wrote: write their latest state again.

    This batch's write may have landed after the other worker's, over a newer state: the latest state is
    written even where the cross-reference says Salesforce holds it.
    """
    results: dict[str, RecordResult] = {}
    if rounds <= 0:
        error = ErrorInfo(
            code="CONCURRENT_UPDATE", message="another worker kept updating this record", retryable=True
        )
        for item in lost:
            for change in item.changes:
                results[change.key] = result_for(
                    change, Outcome.FAILED, error=error, billing_id=item.record.id
                )
        return results
    again = [
        Change(
            source=source_key,
            object=object_name,
            direction=Direction.TO_SALESFORCE,
            id=item.record.id,
            parent=next(iter(item.record.parents.values()), None),
            cause="retry",
        )
        for item in lost
    ]
    fresh = apply_to_salesforce(
        ctx, source_key, object_name, again, reassert={c.key for c in again}, reread_rounds=rounds - 1
    )
    for item, outcome in zip(lost, fresh, strict=True):
        for change in item.changes:
            results[change.key] = outcome.model_copy(update={"change_key": change.key})
    return results
