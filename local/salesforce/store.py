"""The org's records: typed, indexed, thread-safe, with transactions that roll back.

Records are plain dicts keyed by canonical API names with typed values. They are never changed in
place: a write stores a new dict, so a reader (a query running on another thread) always sees
whole versions. One re-entrant lock serialises writers; a `Txn` holds it for the duration of one
transaction and records an undo log, so ``allOrNone`` rollbacks and composite requests are exact.

Indexes: lookup values of unique / external-ID / idLookup text fields (live records only, folded
to lower case unless case-sensitive), and the children of each parent per reference field.
`Store` also implements the SOQL engine's ``SoqlData`` protocol (``scan`` and ``get``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from local.salesforce.schema import FieldDef, ObjectDef, Schema

__all__ = ["Change", "Store", "Table", "Txn"]

Record = dict[str, Any]
_EMPTY: frozenset[str] = frozenset()


def lookup_key(fdef: FieldDef, value: Any) -> Any:
    if isinstance(value, str) and not fdef.case_sensitive:
        return value.lower()
    return value


class Table:
    """The records of one object, with their indexes."""

    def __init__(self, obj: ObjectDef) -> None:
        self.obj = obj
        self.rows: dict[str, Record] = {}
        self.lookup_fields: tuple[FieldDef, ...] = tuple(
            f
            for f in obj.field_list
            if (f.unique or f.external_id or (f.id_lookup and not f.custom and f.type in ("string", "email")))
            and f.name not in ("Id", "Name")
        )
        self.lookups: dict[str, dict[Any, set[str]]] = {f.name: {} for f in self.lookup_fields}
        self.ref_fields: tuple[FieldDef, ...] = tuple(
            f for f in obj.field_list if f.is_reference and not f.system
        )
        self.children: dict[str, dict[str, set[str]]] = {f.name: {} for f in self.ref_fields}
        self.deleted_at: dict[str, datetime] = {}
        self.auto_number = 0

    def _index(self, record: Record, add: bool) -> None:
        if record.get("IsDeleted"):
            return
        record_id = record["Id"]
        for fdef in self.lookup_fields:
            value = record.get(fdef.name)
            if value is None:
                continue
            bucket = self.lookups[fdef.name]
            key = lookup_key(fdef, value)
            if add:
                bucket.setdefault(key, set()).add(record_id)
            else:
                ids = bucket.get(key)
                if ids is not None:
                    ids.discard(record_id)
                    if not ids:
                        del bucket[key]
        for fdef in self.ref_fields:
            value = record.get(fdef.name)
            if value is None:
                continue
            bucket_children = self.children[fdef.name]
            if add:
                bucket_children.setdefault(value, set()).add(record_id)
            else:
                kids = bucket_children.get(value)
                if kids is not None:
                    kids.discard(record_id)
                    if not kids:
                        del bucket_children[value]

    def put(self, record: Record | None, old: Record | None) -> None:
        """Replace ``old`` with ``record`` (either may be None), keeping indexes right."""
        if record is not None and old is not None and record["IsDeleted"] == old["IsDeleted"]:
            self.rows[record["Id"]] = record
            if not record["IsDeleted"]:
                self._reindex(old, record)
            return
        if old is not None:
            self._index(old, add=False)
        if record is not None:
            self.rows[record["Id"]] = record
            self._index(record, add=True)
        elif old is not None:
            self.rows.pop(old["Id"], None)

    def _reindex(self, old: Record, new: Record) -> None:
        """Move a live record's index entries for the indexed fields whose value changed."""
        record_id = new["Id"]
        for fdef in self.lookup_fields:
            name = fdef.name
            before, after = old.get(name), new.get(name)
            if before == after:
                continue
            bucket = self.lookups[name]
            if before is not None:
                ids = bucket.get(lookup_key(fdef, before))
                if ids is not None:
                    ids.discard(record_id)
                    if not ids:
                        del bucket[lookup_key(fdef, before)]
            if after is not None:
                bucket.setdefault(lookup_key(fdef, after), set()).add(record_id)
        for fdef in self.ref_fields:
            name = fdef.name
            before, after = old.get(name), new.get(name)
            if before == after:
                continue
            children = self.children[name]
            if before is not None:
                kids = children.get(before)
                if kids is not None:
                    kids.discard(record_id)
                    if not kids:
                        del children[before]
            if after is not None:
                children.setdefault(after, set()).add(record_id)

    def lookup(self, fdef: FieldDef, value: Any) -> AbstractSet[str]:
        """Like `find`, but a read-only view that must not be kept past the store lock (no copy)."""
        bucket = self.lookups.get(fdef.name)
        if bucket is not None:
            found = bucket.get(value.lower() if value.__class__ is str and not fdef.case_sensitive else value)
            return found if found is not None else _EMPTY
        return self.find(fdef, value)

    def find(self, fdef: FieldDef, value: Any) -> set[str]:
        """Ids of live records whose ``fdef`` equals ``value`` (case-insensitively unless case-sensitive)."""
        bucket = self.lookups.get(fdef.name)
        if bucket is not None:
            found = bucket.get(value.lower() if value.__class__ is str and not fdef.case_sensitive else value)
            return set(found) if found else set()
        key = lookup_key(fdef, value)
        return {
            rid
            for rid, row in self.rows.items()
            if not row.get("IsDeleted")
            and row.get(fdef.name) is not None
            and lookup_key(fdef, row[fdef.name]) == key
        }

    def child_ids(self, fdef: FieldDef, parent_id: str) -> set[str]:
        return set(self.children.get(fdef.name, {}).get(parent_id, ()))


@dataclass(slots=True)
class Change:
    """One committed change, for Change Data Capture."""

    kind: str  # CREATE, UPDATE, DELETE, UNDELETE
    obj: ObjectDef
    record_id: str
    old: Record | None
    new: Record | None


@dataclass
class Txn:
    """One transaction: holds the store lock, remembers how to undo each change."""

    store: Store
    user_id: str
    now: datetime
    origin: str = ""
    undo: list[Callable[[], None]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    rolled_back: bool = False

    def table(self, obj: ObjectDef) -> Table:
        return self.store.tables[obj.name]

    def put(self, obj: ObjectDef, record: Record | None, old: Record | None, kind: str | None = None) -> None:
        table = self.store.tables[obj.name]
        table.put(record, old)
        self.undo.append(lambda: table.put(old, record))
        if kind is not None:
            record_id = (record or old or {})["Id"]
            self.changes.append(Change(kind, obj, record_id, old, record))

    def on_undo(self, action: Callable[[], None]) -> None:
        self.undo.append(action)

    def savepoint(self) -> tuple[int, int]:
        return len(self.undo), len(self.changes)

    def rollback_to(self, point: tuple[int, int]) -> None:
        undo_len, change_len = point
        while len(self.undo) > undo_len:
            self.undo.pop()()
        del self.changes[change_len:]

    def rollback(self) -> None:
        self.rollback_to((0, 0))
        self.rolled_back = True


class Store:
    """All tables of the org; the SOQL engine's data source."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.lock = threading.RLock()
        self.tables: dict[str, Table] = {o.name: Table(o) for o in schema.ordered}
        #: deleted record Id -> the Id whose delete removed it (itself, or the parent it cascaded from)
        self.deleted_root: dict[str, str] = {}
        #: deleted record Id -> (child object, child Id, field) lookups cleared by its delete
        self.nulled: dict[str, list[tuple[str, str, str]]] = {}

    def clear(self) -> None:
        with self.lock:
            self.tables = {o.name: Table(o) for o in self.schema.ordered}
            self.deleted_root = {}
            self.nulled = {}

    def table(self, obj: ObjectDef) -> Table:
        return self.tables[obj.name]

    def transaction(self, user_id: str, now: datetime, origin: str = "") -> _TxnContext:
        return _TxnContext(self, user_id, now, origin)

    # -- reads -----------------------------------------------------------------------------------

    def get_record(self, record_id: str) -> tuple[ObjectDef, Record] | None:
        obj = self.schema.object_for_id(record_id)
        if obj is None:
            return None
        record = self.tables[obj.name].rows.get(record_id)
        return None if record is None else (obj, record)

    def scan(self, sobject: str, include_deleted: bool) -> Iterator[Record]:
        table = self.tables.get(sobject)
        if table is None:
            obj = self.schema.get_object(sobject)
            if obj is None:
                return iter(())
            table = self.tables[obj.name]
        with self.lock:
            rows = list(table.rows.values())
        if include_deleted:
            return iter(rows)
        return (row for row in rows if not row["IsDeleted"])

    def get(self, sobject: str, record_id: str) -> Record | None:
        table = self.tables.get(sobject)
        if table is None:
            obj = self.schema.get_object(sobject)
            if obj is None:
                return None
            table = self.tables[obj.name]
        return table.rows.get(record_id)

    def count(self, obj: ObjectDef, include_deleted: bool = False) -> int:
        rows = self.tables[obj.name].rows
        if include_deleted:
            return len(rows)
        return sum(1 for row in rows.values() if not row["IsDeleted"])

    def all_rows(self, obj: ObjectDef) -> Iterable[Record]:
        with self.lock:
            return list(self.tables[obj.name].rows.values())


class _TxnContext:
    def __init__(self, store: Store, user_id: str, now: datetime, origin: str) -> None:
        self.store = store
        self.txn = Txn(store, user_id, now, origin)

    def __enter__(self) -> Txn:
        self.store.lock.acquire()
        return self.txn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is not None and not self.txn.rolled_back:
                self.txn.rollback()
        finally:
            self.store.lock.release()
