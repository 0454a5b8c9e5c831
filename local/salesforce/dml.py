"""Writes, validated and applied the way Salesforce applies them.

A write has two phases. `prepare` turns a JSON body into typed values outside any lock: unknown
fields and values of the wrong JSON type are request-level errors (Salesforce fails to deserialize
the body), while broken field rules (too long, restricted picklist, out of range) are remembered
as record-level errors. `Dml.insert` / `update` / `upsert` / `delete` then run inside a `Txn`:
they resolve references (including external-ID relationship references such as
``{"Account__r": {"Billing_Id__c": "main:3100"}}``), enforce required, read-only, unique and
cross-reference rules, maintain the system fields, derive computed fields (formulas, compound
names and addresses, auto-numbers, standard-object rules) and store the new record version. A
failure raises `RecordFailure` before anything is written, so a failed record leaves no trace.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from local.salesforce.errors import ApiError, SfError
from local.salesforce.formats import ValueTypeError, coercer, from_json, json_column
from local.salesforce.ids import IdFactory, canonical_id
from local.salesforce.schema import FieldDef, ObjectDef, Schema
from local.salesforce.store import Record, Store, Table, Txn

__all__ = ["Dml", "MultipleMatches", "Prepared", "RecordFailure", "prepare"]

_READ_ONLY_MESSAGE = (
    "Unable to create/update fields: {fields}. Please check the security settings of this field and verify "
    "that it is read/write for your profile or permission set."
)
_MS = timedelta(milliseconds=1)


class RecordFailure(Exception):
    """A record Salesforce refuses; nothing was written for it."""

    def __init__(self, *errors: SfError) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(f"{e.code}: {e.message}" for e in self.errors))


class MultipleMatches(Exception):
    """An upsert's external-ID value matches several records."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = sorted(ids)
        super().__init__(", ".join(self.ids))


@dataclass(slots=True)
class ExtRef:
    """``{"Account__r": {"Billing_Id__c": value}}``: a reference by the parent's external ID."""

    fdef: FieldDef  # the reference field it sets (Account__c)
    key: str  # the relationship name as sent (Account__r)
    target: ObjectDef
    ext_field: FieldDef
    value: Any


@dataclass(slots=True)
class Prepared:
    obj: ObjectDef
    values: dict[str, tuple[FieldDef, Any]] = field(default_factory=dict)
    refs: list[ExtRef] = field(default_factory=list)
    errors: list[SfError] = field(default_factory=list)
    id_value: str | None = None
    has_id: bool = False

    def parent_ids(self) -> list[str]:
        """Ids of parents referenced directly (well-formed Ids only), for row locking."""
        out = []
        for fdef, value in self.values.values():
            if fdef.is_reference and isinstance(value, str):
                cid = canonical_id(value)
                if cid is not None:
                    out.append(cid)
        return out


def _json_error(raw: str | None, key: str, exc: ValueTypeError) -> ApiError:
    line, column = json_column(raw, key, exc.value) if raw else (1, 1)
    return ApiError.request(400, "JSON_PARSER_ERROR", exc.message(line, column))


def no_such_column(obj: ObjectDef, name: str) -> ApiError:
    return ApiError.request(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}")


def prepare(schema: Schema, obj: ObjectDef, body: Mapping[str, Any], raw: str | None = None) -> Prepared:
    """Typed values of a JSON record body; raises `ApiError` for request-level errors."""
    prepared = Prepared(obj)
    values = prepared.values
    field_for = obj.field_for_key
    for key, value in body.items():
        fdef = field_for(key)
        if fdef is not None:
            if fdef.name == "Id":
                prepared.has_id = True
                if value is not None and not isinstance(value, str):
                    raise _json_error(raw, key, ValueTypeError(fdef, value))
                prepared.id_value = value or None
                continue
            coerce = fdef.coerce
            if coerce is None:
                coerce = fdef.coerce = coercer(fdef)
            try:
                typed, error = coerce(value)
            except ValueTypeError as exc:
                raise _json_error(raw, key, exc) from None
            if error is not None:
                prepared.errors.append(error)
            values[fdef.name] = (fdef, typed)
            continue
        if key == "attributes":
            continue
        rel = obj.get_relationship(key)
        if rel is None:
            raise no_such_column(obj, key)
        prepared.refs.append(_ext_ref(schema, obj, rel, key, value, raw))
    for ref in prepared.refs:
        if ref.fdef.name in values:
            raise ApiError.request(
                400,
                "INVALID_FIELD",
                f"Cannot specify both an external ID reference {ref.key} and a salesforce id, {ref.fdef.name}",
            )
    return prepared


def _ext_ref(schema: Schema, obj: ObjectDef, rel: FieldDef, key: str, value: Any, raw: str | None) -> ExtRef:
    if not isinstance(value, Mapping):
        raise _json_error(raw, key, ValueTypeError(rel, value))
    attributes = value.get("attributes")
    target_name = rel.reference_to[0]
    if isinstance(attributes, Mapping) and isinstance(attributes.get("type"), str):
        target_name = attributes["type"]
    elif len(rel.reference_to) > 1:
        raise ApiError.request(
            400, "INVALID_FIELD", f"An sObject type must be specified for the polymorphic relationship {key}"
        )
    target = schema.get_object(target_name)
    if target is None or target.name not in rel.reference_to:
        raise ApiError.request(
            400, "INVALID_FIELD", f"Invalid sObject type {target_name} for relationship {key}"
        )
    keys = [k for k in value if k != "attributes"]
    if len(keys) != 1:
        if len(keys) > 1:
            message = (
                f"More than 1 field provided in an external foreign key reference in entity: {target.name}"
            )
        else:
            message = (
                f"No external id field provided in an external foreign key reference in entity: {target.name}"
            )
        raise ApiError.request(400, "INVALID_FIELD", message)
    ext_field = target.get_field(keys[0])
    if ext_field is None:
        raise no_such_column(target, keys[0])
    if not (ext_field.external_id or ext_field.id_lookup):
        raise ApiError.request(
            400,
            "INVALID_FIELD",
            f"Field {ext_field.name} is not an external ID or an indexed field for {target.name}",
        )
    try:
        typed = from_json(ext_field, value[keys[0]])
    except ValueTypeError as exc:
        raise _json_error(raw, keys[0], exc) from None
    return ExtRef(rel, key, target, ext_field, typed)


class Dml:
    """Applies prepared records inside transactions."""

    def __init__(self, schema: Schema, store: Store, ids: IdFactory) -> None:
        self.schema = schema
        self.store = store
        self.ids = ids

    # -- lookups ---------------------------------------------------------------------------------

    def target(self, obj: ObjectDef, raw_id: str) -> Record:
        """The live record ``raw_id`` of ``obj``; RecordFailure otherwise."""
        record_id = canonical_id(raw_id) if isinstance(raw_id, str) else None
        if record_id is None or record_id[:3] != obj.key_prefix:
            raise RecordFailure(
                SfError("MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {raw_id}", ("Id",))
            )
        record = self.store.tables[obj.name].rows.get(record_id)
        if record is None:
            raise RecordFailure(SfError("NOT_FOUND", "The requested resource does not exist", ()))
        if record["IsDeleted"]:
            raise RecordFailure(SfError("ENTITY_IS_DELETED", "entity is deleted", ()))
        return record

    def check_reference(self, fdef: FieldDef, value: str) -> tuple[str | None, SfError | None]:
        cid = canonical_id(value)
        if cid is None:
            return None, SfError(
                "MALFORMED_ID", f"{fdef.label}: id value of incorrect type: {value}", (fdef.name,)
            )
        target = self.schema.object_for_id(cid)
        if target is None or target.name not in fdef.reference_to:
            return None, SfError(
                "FIELD_INTEGRITY_EXCEPTION",
                f"{fdef.label}: id value of incorrect type: {value}",
                (fdef.name,),
            )
        row = self.store.tables[target.name].rows.get(cid)
        if row is None or row["IsDeleted"]:
            return None, SfError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ())
        return cid, None

    def resolve_ref(self, ref: ExtRef) -> tuple[str | None, SfError | None]:
        if ref.value is None:
            return None, None
        if ref.ext_field.name == "Id":
            return self.check_reference(ref.fdef, str(ref.value))
        ids = self.store.tables[ref.target.name].lookup(ref.ext_field, ref.value)
        if not ids:
            return None, SfError(
                "INVALID_FIELD",
                f"Foreign key external ID: {ref.value} not found for field {ref.ext_field.name} "
                f"in entity {ref.target.name}",
                (),
            )
        if len(ids) > 1:
            return None, SfError(
                "DUPLICATE_EXTERNAL_ID",
                f"{ref.target.label}: more than one record found for external id field: [{', '.join(sorted(ids))}]",
                (),
            )
        return next(iter(ids)), None

    def parent_ids(self, prepared: Prepared) -> list[str]:
        """Parents a prepared record points to (for row locks), resolving external-ID references."""
        out = prepared.parent_ids()
        for ref in prepared.refs:
            if ref.value is None:
                continue
            if ref.ext_field.name == "Id":
                cid = canonical_id(str(ref.value))
                if cid:
                    out.append(cid)
                continue
            out.extend(self.store.tables[ref.target.name].find(ref.ext_field, ref.value))
        return out

    def master_ids(self, obj: ObjectDef, record: Record | None) -> list[str]:
        if record is None:
            return []
        return [record[f.name] for f in obj.reference_fields if f.master_detail and record.get(f.name)]

    # -- writes ----------------------------------------------------------------------------------

    def _resolve(self, prepared: Prepared, values: dict[str, Any]) -> None:
        for fdef, value in prepared.values.values():
            if fdef.is_reference and value is not None:
                cid, error = self.check_reference(fdef, value)
                if error is not None:
                    raise RecordFailure(error)
                values[fdef.name] = cid
        for ref in prepared.refs:
            cid, error = self.resolve_ref(ref)
            if error is not None:
                raise RecordFailure(error)
            values[ref.fdef.name] = cid

    def insert(self, txn: Txn, prepared: Prepared) -> str:
        obj = prepared.obj
        if not obj.createable:
            raise RecordFailure(
                SfError("INVALID_TYPE_FOR_OPERATION", f"entity type cannot be inserted: {obj.name}", ())
            )
        if prepared.has_id:
            raise RecordFailure(
                SfError("INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ("Id",))
            )
        read_only = [name for name, (fdef, _) in prepared.values.items() if not fdef.createable]
        if read_only:
            raise RecordFailure(_read_only_error(read_only))
        if prepared.errors:
            raise RecordFailure(prepared.errors[0])
        values: dict[str, Any] = {name: value for name, (_, value) in prepared.values.items()}
        self._resolve(prepared, values)
        return self.create_record(txn, obj, values)

    def seed(self, txn: Txn, prepared: Prepared) -> str:
        """Insert without validation: read-only and system fields may be set, rules are not enforced.

        Values still have to be of the right types, and references have to resolve.
        """
        obj = prepared.obj
        values: dict[str, Any] = {name: value for name, (_, value) in prepared.values.items()}
        for fdef, value in prepared.values.values():
            if fdef.is_reference and isinstance(value, str):
                values[fdef.name] = canonical_id(value) or value
        for ref in prepared.refs:
            cid, error = self.resolve_ref(ref)
            if error is not None:
                raise RecordFailure(error)
            values[ref.fdef.name] = cid
        record_id = None
        if prepared.id_value is not None:
            record_id = canonical_id(prepared.id_value)
            if record_id is None or record_id[:3] != obj.key_prefix or self.store.get_record(record_id):
                raise RecordFailure(
                    SfError("INVALID_ID_FIELD", f"invalid or used Id: {prepared.id_value}", ("Id",))
                )
        return self.create_record(txn, obj, values, checks=False, record_id=record_id)

    def create_record(
        self,
        txn: Txn,
        obj: ObjectDef,
        values: dict[str, Any],
        *,
        checks: bool = True,
        record_id: str | None = None,
    ) -> str:
        """Store a new record from resolved, typed values (defaults, derived fields, checks)."""
        table = self.store.tables[obj.name]
        for fdef in obj.defaulted_fields:
            if fdef.name not in values:
                values[fdef.name] = fdef.default_value
        if "ownerid" in obj.fields and values.get("OwnerId") is None:
            values["OwnerId"] = txn.user_id
        now = txn.now
        record_id = record_id or self.ids.new_id(obj.key_prefix)
        record: Record = {
            "Id": record_id,
            "IsDeleted": False,
            "CreatedDate": now,
            "CreatedById": txn.user_id,
            "LastModifiedDate": now,
            "LastModifiedById": txn.user_id,
            "SystemModstamp": now,
        }
        for name, value in values.items():
            if value is not None:
                record[name] = value
        if obj.auto_number_field is not None and record.get(obj.auto_number_field.name) is None:
            table.auto_number += 1
            number = table.auto_number
            txn.on_undo(lambda: setattr(table, "auto_number", table.auto_number - 1))
            record[obj.auto_number_field.name] = _auto_number(
                obj.auto_number_field.display_format or "{0}", number, now
            )
        error = self._derive(txn, obj, record, None, set(values))
        if error is not None and checks:
            raise RecordFailure(error)
        if checks:
            missing = [f.name for f in obj.required_fields if record.get(f.name) is None]
            if missing:
                raise RecordFailure(_required_error(missing))
            self._check_unique(obj, record, None)
        txn.put(obj, record, None, "CREATE")
        return record_id

    def update(self, txn: Txn, prepared: Prepared, raw_id: str, *, old: Record | None = None) -> str:
        obj = prepared.obj
        if old is None:
            old = self.target(obj, raw_id)
        record_id = old["Id"]
        if not obj.updateable:
            raise RecordFailure(
                SfError("INVALID_TYPE_FOR_OPERATION", f"entity type cannot be updated: {obj.name}", ())
            )
        if prepared.has_id and prepared.id_value is not None and canonical_id(prepared.id_value) != record_id:
            raise RecordFailure(
                SfError("INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an update call", ("Id",))
            )
        values: dict[str, Any] = {name: value for name, (_, value) in prepared.values.items()}
        if prepared.errors:
            raise RecordFailure(prepared.errors[0])
        self._resolve(prepared, values)
        updateable = obj.updateable_names
        read_only = [
            name for name, value in values.items() if name not in updateable and old.get(name) != value
        ]
        if read_only:
            raise RecordFailure(_read_only_error(read_only))
        new = dict(old)
        for name, value in values.items():
            if value is None:
                new.pop(name, None)
            else:
                new[name] = value
        now = txn.now
        stamp = old["SystemModstamp"]
        new["LastModifiedDate"] = now
        new["LastModifiedById"] = txn.user_id
        new["SystemModstamp"] = now if now > stamp else stamp + _MS
        error = self._derive(txn, obj, new, old, set(values))
        if error is not None:
            raise RecordFailure(error)
        missing = [f.name for f in obj.required_fields if new.get(f.name) is None]
        if missing:
            raise RecordFailure(_required_error(missing))
        self._check_unique(obj, new, record_id)
        txn.put(obj, new, old, "UPDATE")
        return record_id

    def upsert(self, txn: Txn, prepared: Prepared, ext_field: FieldDef, ext_value: Any) -> tuple[str, bool]:
        """Update the one live record whose ``ext_field`` equals ``ext_value``, or insert one."""
        obj = prepared.obj
        if ext_field.name == "Id":
            if ext_value is None:
                prepared.has_id = False
                return self.insert(txn, prepared), True
            return self.update(txn, prepared, str(ext_value)), False
        if ext_value is None:
            raise RecordFailure(SfError("MISSING_ARGUMENT", f"{ext_field.name} not specified", ()))
        matches = self.store.tables[obj.name].lookup(ext_field, ext_value)
        if len(matches) > 1:
            raise MultipleMatches(list(matches))
        if prepared.has_id:
            raise RecordFailure(
                SfError("INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an upsert call", ("Id",))
            )
        if matches:
            old = self.store.tables[obj.name].rows[next(iter(matches))]
            own = prepared.values.get(ext_field.name)
            if (
                own is not None
                and own[1] is not None
                and _fold(ext_field, own[1]) == _fold(ext_field, ext_value)
            ):
                prepared.values.pop(ext_field.name)
            return self.update(txn, prepared, old["Id"], old=old), False
        prepared.values[ext_field.name] = (ext_field, ext_value)
        return self.insert(txn, prepared), True

    def delete(self, txn: Txn, obj: ObjectDef, raw_id: str, *, hard: bool = False) -> str:
        old = self.target(obj, raw_id)
        if not obj.deletable:
            raise RecordFailure(
                SfError("INVALID_TYPE_FOR_OPERATION", f"entity type cannot be deleted: {obj.name}", ())
            )
        if obj.name == "Pricebook2" and old.get("IsStandard"):
            raise RecordFailure(SfError("DELETE_FAILED", "You can't delete the standard price book.", ()))
        doomed: list[tuple[ObjectDef, Record]] = []
        self._collect_cascade(obj, old, doomed, set())
        doomed_ids = {record["Id"] for _, record in doomed}
        for dobj, record in doomed:
            for child in dobj.child_relationships:
                if not child.restricted_delete:
                    continue
                cobj = self.schema.objects[child.child.lower()]
                ctable = self.store.tables[cobj.name]
                kids = sorted(ctable.child_ids(cobj.fields[child.field.lower()], record["Id"]) - doomed_ids)
                if kids:
                    names = ", ".join(str(ctable.rows[k].get("Name") or k) for k in kids)
                    raise RecordFailure(
                        SfError(
                            "DELETE_FAILED",
                            f"Your attempt to delete {record.get('Name') or record['Id']} could not be completed "
                            f"because it is associated with the following {cobj.label_plural.lower()}.: {names}",
                            (),
                        )
                    )
        root = old["Id"]
        for dobj, record in doomed:
            self._mark_deleted(txn, dobj, record, root, hard)
        return root

    def _collect_cascade(
        self, obj: ObjectDef, record: Record, out: list[tuple[ObjectDef, Record]], seen: set[str]
    ) -> None:
        if record["Id"] in seen:
            return
        seen.add(record["Id"])
        out.append((obj, record))
        for child in obj.child_relationships:
            if not child.cascade_delete:
                continue
            cobj = self.schema.objects[child.child.lower()]
            table = self.store.tables[cobj.name]
            for kid_id in sorted(table.child_ids(cobj.fields[child.field.lower()], record["Id"])):
                self._collect_cascade(cobj, table.rows[kid_id], out, seen)

    def _mark_deleted(self, txn: Txn, obj: ObjectDef, old: Record, root: str, hard: bool) -> None:
        table = self.store.tables[obj.name]
        record_id = old["Id"]
        now = txn.now
        # lookups that point here and do not cascade are cleared (restored on undelete)
        for child in obj.child_relationships:
            if child.cascade_delete:
                continue
            cobj = self.schema.objects[child.child.lower()]
            ctable = self.store.tables[cobj.name]
            for kid_id in sorted(ctable.child_ids(cobj.fields[child.field.lower()], record_id)):
                kid = ctable.rows[kid_id]
                cleared = dict(kid)
                cleared.pop(child.field, None)
                cleared["SystemModstamp"] = (
                    now if now > kid["SystemModstamp"] else kid["SystemModstamp"] + _MS
                )
                txn.put(cobj, cleared, kid, "UPDATE")
                nulled = self.store.nulled.setdefault(record_id, [])
                nulled.append((cobj.name, kid_id, child.field))
                txn.on_undo(_popper(nulled))
        if hard:
            txn.put(obj, None, old, "DELETE")
            return
        new = dict(old)
        new["IsDeleted"] = True
        new["SystemModstamp"] = now if now > old["SystemModstamp"] else old["SystemModstamp"] + _MS
        txn.put(obj, new, old, "DELETE")
        table.deleted_at[record_id] = now
        self.store.deleted_root[record_id] = root

        def forget() -> None:
            table.deleted_at.pop(record_id, None)
            self.store.deleted_root.pop(record_id, None)

        txn.on_undo(forget)

    def undelete(self, txn: Txn, raw_id: str) -> list[str]:
        """Restore a deleted record, what was cascade-deleted with it, and the lookups cleared then."""
        record_id = canonical_id(raw_id)
        found = self.store.get_record(record_id) if record_id else None
        if record_id is None or found is None:
            raise RecordFailure(SfError("INVALID_ID_FIELD", f"invalid record id: {raw_id}", ()))
        obj, record = found
        if not record["IsDeleted"]:
            raise RecordFailure(SfError("UNDELETE_FAILED", "Entity is not in the recycle bin", ()))
        group = [
            rid for rid, root in self.store.deleted_root.items() if root == record_id and rid != record_id
        ]
        restored = []
        for rid in [record_id, *group]:
            robj, old = self.store.get_record(rid) or (obj, record)
            new = dict(old)
            new["IsDeleted"] = False
            new["SystemModstamp"] = (
                txn.now if txn.now > old["SystemModstamp"] else old["SystemModstamp"] + _MS
            )
            self._check_unique(robj, new, rid)
            txn.put(robj, new, old, "UNDELETE")
            table = self.store.tables[robj.name]
            deleted_at = table.deleted_at.pop(rid, None)
            root = self.store.deleted_root.pop(rid, None)
            txn.on_undo(_restorer(self.store, table, rid, deleted_at, root))
            for cname, kid_id, fname in self.store.nulled.pop(rid, []):
                ctable = self.store.tables[cname]
                kid = ctable.rows.get(kid_id)
                if kid is not None and kid.get(fname) is None and not kid["IsDeleted"]:
                    relinked = dict(kid)
                    relinked[fname] = rid
                    relinked["SystemModstamp"] = txn.now
                    txn.put(ctable.obj, relinked, kid, "UPDATE")
            restored.append(rid)
        return restored

    # -- rules -----------------------------------------------------------------------------------

    def _check_unique(self, obj: ObjectDef, record: Record, own_id: str | None) -> None:
        table = self.store.tables[obj.name]
        for fdef in obj.unique_fields:
            value = record.get(fdef.name)
            if value is None:
                continue
            others = [i for i in table.lookup(fdef, value) if i != own_id]
            if others:
                raise RecordFailure(
                    SfError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {fdef.name} duplicates value on record with id: {min(others)}",
                        (),
                    )
                )

    def _derive(
        self, txn: Txn, obj: ObjectDef, record: Record, old: Record | None, given: set[str]
    ) -> SfError | None:
        """Computed fields and standard-object rules; an error when a rule refuses the record."""
        for compound in obj.compound_fields:
            if compound.type == "address":
                parts = {
                    obj.fields[p.lower()].compound_key or p: record.get(p) for p in compound.compound_parts
                }
                if any(v is not None for v in parts.values()):
                    record[compound.name] = {k: parts[k] for k in sorted(parts)}
                else:
                    record.pop(compound.name, None)
            else:
                names = [record.get("FirstName"), record.get("LastName")]
                full = " ".join(n for n in names if n)
                if full:
                    record[compound.name] = full
                else:
                    record.pop(compound.name, None)
        if obj.stages:
            error = self._opportunity(obj, record, old, given)
            if error is not None:
                return error
        if obj.name == "PricebookEntry":
            error = self._pricebook_entry(record, old)
            if error is not None:
                return error
        for fdef in obj.formula_fields:
            assert fdef.formula_fn is not None
            value = fdef.formula_fn(record)
            if value is None:
                record.pop(fdef.name, None)
            else:
                record[fdef.name] = value
        return None

    def _opportunity(
        self, obj: ObjectDef, record: Record, old: Record | None, given: set[str]
    ) -> SfError | None:
        stage = record.get("StageName")
        info = obj.stages.get(stage) if stage else None
        if info is None:
            return None
        probability, closed, won, forecast = info
        stage_changed = old is None or old.get("StageName") != stage
        if stage_changed and "Probability" not in given:
            record["Probability"] = Decimal(probability)
        if stage_changed and "ForecastCategoryName" not in given:
            record["ForecastCategoryName"] = {"Pipeline": "Pipeline", "Closed": "Closed"}.get(
                forecast, forecast
            )
        record["ForecastCategory"] = forecast
        record["IsClosed"] = closed
        record["IsWon"] = won
        amount, prob = record.get("Amount"), record.get("Probability")
        if amount is not None and prob is not None:
            record["ExpectedRevenue"] = (amount * prob / 100).quantize(Decimal("0.01"))
        else:
            record.pop("ExpectedRevenue", None)
        return None

    def _pricebook_entry(self, record: Record, old: Record | None) -> SfError | None:
        books = self.store.tables["Pricebook2"].rows
        entries = self.store.tables["PricebookEntry"]
        product = self.store.tables["Product2"].rows.get(record.get("Product2Id", ""))
        book = books.get(record.get("Pricebook2Id", ""))
        if product is not None:
            record["Name"] = product.get("Name")
            if product.get("ProductCode") is not None:
                record["ProductCode"] = product["ProductCode"]
        if old is not None or product is None or book is None:
            return None
        same = [
            entries.rows[i]
            for i in entries.child_ids(entries.obj.fields["product2id"], product["Id"])
            if not entries.rows[i]["IsDeleted"]
        ]
        if any(e.get("Pricebook2Id") == book["Id"] for e in same):
            return SfError("DUPLICATE_VALUE", "This price definition already exists in this price book", ())
        if not book.get("IsStandard"):
            standard = [e for e in same if books.get(e.get("Pricebook2Id", ""), {}).get("IsStandard")]
            if not standard:
                return SfError("STANDARD_PRICE_NOT_DEFINED", "No standard price defined for this product", ())
            if record.get("UseStandardPrice"):
                record["UnitPrice"] = standard[0].get("UnitPrice")
        elif record.get("UseStandardPrice"):
            return SfError(
                "FIELD_INTEGRITY_EXCEPTION",
                "field integrity exception: UseStandardPrice (cannot use standard price for the standard price book)",
                ("UseStandardPrice",),
            )
        return None


def _restorer(
    store: Store, table: Table, record_id: str, deleted_at: datetime | None, root: str | None
) -> Callable[[], None]:
    def restore() -> None:
        if deleted_at is not None:
            table.deleted_at[record_id] = deleted_at
        if root is not None:
            store.deleted_root[record_id] = root

    return restore


def _popper(entries: list[tuple[str, str, str]]) -> Callable[[], None]:
    def pop() -> None:
        entries.pop()

    return pop


def _fold(fdef: FieldDef, value: Any) -> Any:
    return value.lower() if isinstance(value, str) and not fdef.case_sensitive else value


def _read_only_error(names: list[str]) -> SfError:
    return SfError(
        "INVALID_FIELD_FOR_INSERT_UPDATE", _READ_ONLY_MESSAGE.format(fields=", ".join(names)), tuple(names)
    )


def _required_error(names: list[str]) -> SfError:
    return SfError(
        "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(names)}]", tuple(names)
    )


_AUTO = re.compile(r"\{(0+|YYYY|YY|MM|DD)\}")


def _auto_number(display_format: str, number: int, now: datetime) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group(1)
        if token.startswith("0"):
            return str(number).zfill(len(token))
        return {
            "YYYY": f"{now.year:04d}",
            "YY": f"{now.year % 100:02d}",
            "MM": f"{now.month:02d}",
            "DD": f"{now.day:02d}",
        }[token]

    text = _AUTO.sub(replace, display_format)
    return text if text != display_format or "{" in display_format else f"{display_format}{number}"
