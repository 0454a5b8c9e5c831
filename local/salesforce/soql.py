"""The SOQL engine of the local Salesforce org: parse a query, check it against the schema, run it.

``parse`` turns text into an immutable :class:`Query` (cached by text); ``execute`` resolves it
against a schema, compiles the WHERE clause into closures once, scans the records and builds
result rows shaped like Salesforce's REST ``records`` (typed Python values; the HTTP layer turns
them into JSON, see :func:`attach_urls`). Anything outside the supported subset fails with a
:class:`SoqlError` carrying Salesforce's error code and a located message - never a wrong answer.
"""

from __future__ import annotations

import gc
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cached_property, lru_cache
from typing import Any, Protocol

from local.salesforce.soql_dates import HOUR_LITERALS, date_range, datetime_range
from local.salesforce.soql_syntax import (
    MAX_RELATIONSHIP_DEPTH,
    Comparison,
    Condition,
    FieldPath,
    Junction,
    Not,
    OrderItem,
    Query,
    Select,
    SoqlError,
    Value,
    error_at,
    parse_text,
)

__all__ = [
    "Query",
    "QueryResult",
    "RecordAttributes",
    "SoqlData",
    "SoqlError",
    "SoqlField",
    "SoqlObject",
    "SoqlSchema",
    "attach_urls",
    "canonical_id",
    "execute",
    "parse",
    "to18",
]

# --------------------------------------------------------------------------------------------
# The schema and data the engine needs (duck-typed)
# --------------------------------------------------------------------------------------------


class SoqlField(Protocol):
    """A field as describe reports it (read-only here, so frozen dataclasses qualify).

    A picklist field may also carry ``picklist_values`` (strings, ``{"value": ...}`` dicts or
    objects with ``.value``): picklists then sort in their defined order, as in Salesforce.
    """

    @property
    def name(self) -> str: ...  # canonical API name, e.g. "Billing_Id__c"

    @property
    def type(self) -> str: ...  # describe type: string, reference, datetime, ...

    @property
    def reference_to(self) -> Sequence[str]: ...

    @property
    def relationship_name(self) -> str | None: ...

    @property
    def filterable(self) -> bool: ...

    @property
    def sortable(self) -> bool: ...


class SoqlObject(Protocol):
    """An sObject type; every lookup is case-insensitive.

    ``get_child_relationship`` answers ``(child object, child field)``; it may add the canonical
    relationship name as a third item, which then keys the subquery in result rows.
    """

    @property
    def name(self) -> str: ...

    def get_field(self, name: str) -> SoqlField | None: ...

    def get_relationship(self, name: str) -> SoqlField | None: ...

    def get_child_relationship(self, name: str) -> tuple[str, str] | None: ...


class SoqlSchema(Protocol):
    def get_object(self, name: str) -> SoqlObject | None: ...


class SoqlData(Protocol):
    def scan(self, sobject: str, include_deleted: bool) -> Iterable[Mapping[str, Any]]: ...

    def get(self, sobject: str, record_id: str) -> Mapping[str, Any] | None: ...


Record = Mapping[str, Any]
Getter = Callable[[Record], Any]
Predicate = Callable[[Record], bool]


class RecordAttributes(dict[str, Any]):
    """A row's ``attributes`` (``{"type": "Account"}``) that also knows the record's Id.

    It compares and serialises as a plain dict; :func:`attach_urls` uses ``record_id`` to add
    ``url`` the way Salesforce does.
    """

    __slots__ = ("record_id",)

    def __init__(self, sobject: str, record_id: str | None) -> None:
        self["type"] = sobject
        self.record_id = record_id


@dataclass
class QueryResult:
    """What a query returns: ``total_size`` counts the rows the query returns (after LIMIT/OFFSET),
    or the count for ``SELECT COUNT()`` (then ``rows`` is empty). ``sobject`` is the canonical
    name of the queried object."""

    total_size: int
    rows: list[dict[str, Any]]
    is_count: bool
    sobject: str = ""


# --------------------------------------------------------------------------------------------
# Record Ids
# --------------------------------------------------------------------------------------------

_ID_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def to18(id15: str) -> str:
    """The 18-character, case-insensitive form of a 15-character Salesforce Id."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for position in range(5):
            if "A" <= id15[chunk * 5 + position] <= "Z":
                bits |= 1 << position
        suffix += _ID_SUFFIX[bits]
    return id15 + suffix


def canonical_id(value: str) -> str | None:
    """The canonical 18-character Id for a 15- or 18-character Id in any case; None if invalid.

    An 18-character Id's suffix encodes the case of its first 15 characters, so the body is
    re-cased from the suffix (``001d000000iqhsliaz`` is ``001D000000IqhSLIAZ``).
    """
    if len(value) == 15 and all(ch in _ID_CHARS for ch in value):
        return to18(value)
    if len(value) != 18 or not all(ch in _ID_CHARS for ch in value):
        return None
    suffix = value[15:].upper()
    body: list[str] = []
    for chunk in range(3):
        bits = _ID_SUFFIX.find(suffix[chunk])
        if bits < 0:
            return None
        for position in range(5):
            ch = value[chunk * 5 + position]
            upper = bool(bits & (1 << position))
            if ch.isdigit():
                if upper:
                    return None
                body.append(ch)
            else:
                body.append(ch.upper() if upper else ch.lower())
    return "".join(body) + suffix


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _parse_cached(text: str) -> Query:
    return parse_text(text)


def parse(text: str) -> Query:
    """Parse a SOQL statement into an immutable, cacheable :class:`Query` (raises ``SoqlError``)."""
    return _parse_cached(text)


def execute(
    query: Query,
    schema: SoqlSchema,
    data: SoqlData,
    *,
    include_deleted: bool = False,
    now: datetime | None = None,
) -> QueryResult:
    """Run a parsed query. ``include_deleted`` is queryAll; ``now`` anchors relative date literals.

    Raises ``SoqlError`` for schema errors (INVALID_TYPE, INVALID_FIELD, ...).
    """
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _Execution(query.text, schema, data, moment, include_deleted).run(query.select)


def attach_urls(rows: Iterable[Mapping[str, Any]], base_path: str) -> None:
    """Add ``attributes.url`` (``{base_path}/sobjects/{type}/{id}``) to rows, parents and children.

    ``base_path`` is e.g. ``/services/data/v59.0``. Rows are changed in place.
    """
    for row in rows:
        attributes = row.get("attributes")
        if isinstance(attributes, RecordAttributes) and attributes.record_id:
            attributes["url"] = f"{base_path}/sobjects/{attributes['type']}/{attributes.record_id}"
        for key, value in row.items():
            if key == "attributes" or not isinstance(value, Mapping):
                continue
            if "attributes" in value:
                attach_urls([value], base_path)
            elif isinstance(value.get("records"), list):
                attach_urls(value["records"], base_path)


# --------------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------------

_TEXT_TYPES = frozenset(
    {"string", "textarea", "email", "phone", "url", "picklist", "encryptedstring", "combobox"}
)
_ID_TYPES = frozenset({"id", "reference"})
_NUMBER_TYPES = frozenset({"int", "double", "currency", "percent", "long"})
_CATEGORY = {
    **dict.fromkeys(_TEXT_TYPES, "text"),
    **dict.fromkeys(_ID_TYPES, "id"),
    **dict.fromkeys(_NUMBER_TYPES, "number"),
    "multipicklist": "multi",
    "boolean": "bool",
    "date": "date",
    "datetime": "datetime",
    "time": "time",
}
#: The type names Salesforce's "value of filter criterion" message uses (SOAP type names).
_SOAP_TYPE = {"int": "int", "long": "long", "double": "double", "currency": "double", "percent": "double"}
_QUOTED_CATEGORIES = frozenset({"text", "id", "multi"})
_VALUE_KIND_FOR = {
    "number": "number",
    "bool": "boolean",
    "date": "date",
    "datetime": "datetime",
    "time": "time",
}

_NO_SUCH_COLUMN = (
    "No such column '{name}' on entity '{entity}'. If you are attempting to use a custom field, be sure to "
    "append the '__c' after the custom field name. Please reference your WSDL or the describe call for the "
    "appropriate names."
)
_BAD_RELATIONSHIP = (
    "Didn't understand relationship '{name}' in field path. If you are attempting to use a custom "
    "relationship, be sure to append the '__r' after the custom relationship name. Please reference your "
    "WSDL or the describe call for the appropriate names."
)
_BAD_CHILD_RELATIONSHIP = (
    "Didn't understand relationship '{name}' in FROM part of query call. If you are attempting to use a "
    "custom relationship, be sure to append the '__r' after the custom relationship name. Please reference "
    "your WSDL or the describe call for the appropriate names."
)
_BAD_OBJECT = (
    "sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to append "
    "the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
)

_RANGE_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _type_of(field_: SoqlField) -> str:
    return (field_.type or "").lower()


def _number(value: Any) -> Any:
    return Decimal(repr(value)) if isinstance(value, float) else value


def _multi(value: str) -> frozenset[str]:
    return frozenset(part.strip().lower() for part in value.split(";") if part.strip())


def _like_regex(pattern: str, literal: frozenset[int]) -> re.Pattern[str]:
    parts: list[str] = []
    for index, ch in enumerate(pattern):
        if ch == "%" and index not in literal:
            parts.append(".*")
        elif ch == "_" and index not in literal:
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _picklist_order(field_: SoqlField) -> dict[str, int] | None:
    """Positions of a picklist's values when the field lists them (Salesforce sorts picklists by
    their defined order, not alphabetically)."""
    values = getattr(field_, "picklist_values", None)
    if not values:
        return None
    order: dict[str, int] = {}
    for index, entry in enumerate(values):
        value: Any
        if isinstance(entry, str):
            value = entry
        elif isinstance(entry, Mapping):
            value = entry.get("value")
        else:
            value = getattr(entry, "value", None)
        if isinstance(value, str):
            order.setdefault(value.lower(), index)
    return order


# --------------------------------------------------------------------------------------------
# Plans
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Hop:
    fk: str  # canonical name of the reference field
    relationship: str  # canonical relationship name (the output key)
    targets: tuple[str, ...]  # canonical names of the objects it may point to


@dataclass(frozen=True, slots=True)
class _Resolved:
    hops: tuple[_Hop, ...]
    field: SoqlField


@dataclass
class _Projection:
    """The output shape of one record: field keys, parent sub-shapes and child subqueries, in order."""

    entries: dict[str, _FieldOut | _ParentOut | _ChildOut] = field(default_factory=dict)

    @cached_property
    def fields(self) -> tuple[tuple[str, str], ...]:
        """(output key, field name) of the plain fields, when there is nothing else to build."""
        return tuple((key, entry.name) for key, entry in self.entries.items() if isinstance(entry, _FieldOut))

    @cached_property
    def flat(self) -> bool:
        return len(self.fields) == len(self.entries)


@dataclass(slots=True)
class _FieldOut:
    name: str


@dataclass(slots=True)
class _ParentOut:
    hop: _Hop
    projection: _Projection


@dataclass(slots=True)
class _ChildOut:
    plan: _Plan


@dataclass(slots=True)
class _SortKey:
    getter: Getter
    descending: bool
    nulls_first: bool


@dataclass
class _Plan:
    """A compiled SELECT: what to scan, how to filter, sort, slice and shape it."""

    sobject: str
    where: Predicate | None
    sort: list[_SortKey]
    limit: int | None
    offset: int
    projection: _Projection
    is_count: bool
    id_lookup: str | None = None  # canonical Id when WHERE pins a single record
    child_fk: str = ""  # for child subqueries: the child's reference field to the parent
    children: list[tuple[str, _Plan]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Scope:
    obj: SoqlObject
    alias: str | None


class _Execution:
    """One execution: resolves and compiles the query, then runs it (parents are cached per run)."""

    def __init__(
        self, text: str, schema: SoqlSchema, data: SoqlData, now: datetime, include_deleted: bool
    ) -> None:
        self.text = text
        self.schema = schema
        self.data = data
        self.now = now
        self.include_deleted = include_deleted
        self.parents: dict[str, tuple[str, Record] | None] = {}

    def error(self, code: str, pos: int, description: str) -> SoqlError:
        return error_at(code, self.text, pos, description)

    # -- resolution ------------------------------------------------------------------------

    def object_named(self, name: str, pos: int) -> SoqlObject:
        obj = self.schema.get_object(name)
        if obj is None:
            raise self.error("INVALID_TYPE", pos, _BAD_OBJECT.format(name=name))
        return obj

    def resolve(self, scope: _Scope, path: FieldPath) -> _Resolved:
        parts = list(path.parts)
        if len(parts) > 1:
            head = parts[0].lower()
            # An alias, or the queried object's own name, may prefix a path (``a.Name``, ``Contact.Name``).
            is_alias = scope.alias is not None and head == scope.alias.lower()
            is_self = head == scope.obj.name.lower() and scope.obj.get_relationship(parts[0]) is None
            if is_alias or is_self:
                parts = parts[1:]
        if len(parts) - 1 > MAX_RELATIONSHIP_DEPTH:
            raise self.error(
                "MALFORMED_QUERY",
                path.pos,
                f"SOQL statements cannot query more than {MAX_RELATIONSHIP_DEPTH} levels of parent relationships",
            )
        objects: list[SoqlObject] = [scope.obj]
        hops: list[_Hop] = []
        for part in parts[:-1]:
            if len(objects) > 1:
                raise self.error(
                    "MALFORMED_QUERY",
                    path.pos,
                    f"a path through the polymorphic relationship '{hops[-1].relationship}' can only "
                    "name a field of the related record",
                )
            reference = objects[0].get_relationship(part)
            targets = [self.schema.get_object(name) for name in (reference.reference_to if reference else ())]
            found = [target for target in targets if target is not None]
            if reference is None or not found:
                raise self.error("INVALID_FIELD", path.pos, _BAD_RELATIONSHIP.format(name=part))
            relationship = reference.relationship_name or part
            hops.append(_Hop(reference.name, relationship, tuple(target.name for target in found)))
            objects = found
        leaf_name = parts[-1]
        leaf: SoqlField | None = None
        for obj in objects:
            leaf = obj.get_field(leaf_name)
            if leaf is None:
                entity = obj.name if len(objects) == 1 else "Name"
                raise self.error(
                    "INVALID_FIELD", path.pos, _NO_SUCH_COLUMN.format(name=leaf_name, entity=entity)
                )
        assert leaf is not None
        return _Resolved(tuple(hops), leaf)

    # -- getters ---------------------------------------------------------------------------

    def fetch(self, hop: _Hop, record_id: Any) -> tuple[str, Record] | None:
        if not record_id:
            return None
        if record_id in self.parents:
            return self.parents[record_id]
        result: tuple[str, Record] | None = None
        for target in hop.targets:
            record = self.data.get(target, record_id)
            if record is not None:
                result = (target, record)
                break
        self.parents[record_id] = result
        return result

    def getter(self, resolved: _Resolved) -> Getter:
        name = resolved.field.name
        hops = resolved.hops
        if not hops:
            return lambda record: record.get(name)
        fetch = self.fetch

        def walk(record: Record) -> Any:
            current = record
            for hop in hops:
                parent = fetch(hop, current.get(hop.fk))
                if parent is None:
                    return None
                current = parent[1]
            return current.get(name)

        return walk

    def typed_getter(self, resolved: _Resolved, category: str) -> Getter:
        """A getter whose empty values are None (text-like) and whose booleans are never None."""
        base = self.getter(resolved)
        if category in _QUOTED_CATEGORIES:
            return lambda record: base(record) or None
        if category == "bool":
            return lambda record: bool(base(record))
        if category == "number":
            return lambda record: _number(base(record))
        return base

    # -- planning --------------------------------------------------------------------------

    def plan(self, select: Select, obj: SoqlObject, nested: bool) -> _Plan:
        scope = _Scope(obj, select.alias)
        projection = _Projection()
        children: list[tuple[str, _Plan]] = []
        seen: set[tuple[str, ...]] = set()
        for item in select.items:
            if isinstance(item, Select):
                key, child = self.child_plan(obj, item)
                if key.lower() in {existing.lower() for existing, _ in children}:
                    raise self.error(
                        "MALFORMED_QUERY", item.sobject_pos, f"duplicate field selected: {item.sobject}"
                    )
                children.append((key, child))
                projection.entries[key] = _ChildOut(child)
                continue
            resolved = self.resolve(scope, item)
            signature = (*(hop.relationship.lower() for hop in resolved.hops), resolved.field.name.lower())
            if signature in seen:
                raise self.error("MALFORMED_QUERY", item.pos, f"duplicate field selected: {item.text}")
            seen.add(signature)
            target = projection
            for hop in resolved.hops:
                entry = target.entries.get(hop.relationship)
                if not isinstance(entry, _ParentOut):
                    entry = _ParentOut(hop, _Projection())
                    target.entries[hop.relationship] = entry
                target = entry.projection
            target.entries[resolved.field.name] = _FieldOut(resolved.field.name)
        where = self.compile(scope, select.where) if select.where is not None else None
        sort = [self.sort_key(scope, item) for item in select.order_by]
        plan = _Plan(
            sobject=obj.name,
            where=where,
            sort=sort,
            limit=select.limit,
            offset=select.offset or 0,
            projection=projection,
            is_count=select.is_count,
            children=children,
        )
        if not nested and select.where is not None:
            plan.id_lookup = self.pinned_id(scope, select.where)
        return plan

    def child_plan(self, parent: SoqlObject, select: Select) -> tuple[str, _Plan]:
        relationship = parent.get_child_relationship(select.sobject)
        if relationship is None:
            raise self.error(
                "INVALID_TYPE", select.sobject_pos, _BAD_CHILD_RELATIONSHIP.format(name=select.sobject)
            )
        child = self.object_named(relationship[0], select.sobject_pos)
        child_field = child.get_field(relationship[1])
        if child_field is None:
            raise self.error(
                "INVALID_TYPE", select.sobject_pos, _BAD_CHILD_RELATIONSHIP.format(name=select.sobject)
            )
        described: tuple[str, ...] = tuple(relationship)
        key = described[2] if len(described) > 2 else select.sobject
        plan = self.plan(select, child, nested=True)
        plan.child_fk = child_field.name
        return key, plan

    def pinned_id(self, scope: _Scope, condition: Condition) -> str | None:
        """The Id a top-level ``Id = '...'`` (alone or ANDed) pins the result to, if any."""
        candidates = (
            condition.operands if isinstance(condition, Junction) and condition.op == "AND" else (condition,)
        )
        for candidate in candidates:
            if not isinstance(candidate, Comparison) or candidate.op != "=":
                continue
            value = candidate.values[0]
            if value.kind != "string" or not value.value:
                continue
            resolved = self.resolve(scope, candidate.path)
            if not resolved.hops and _type_of(resolved.field) == "id":
                return canonical_id(value.value)
        return None

    # -- ORDER BY --------------------------------------------------------------------------

    def sort_key(self, scope: _Scope, item: OrderItem) -> _SortKey:
        resolved = self.resolve(scope, item.path)
        field_ = resolved.field
        ftype = _type_of(field_)
        category = _CATEGORY.get(ftype)
        if not getattr(field_, "sortable", True) or category in (None, "multi"):
            raise self.error(
                "INVALID_FIELD", item.path.pos, f"field '{field_.name}' can not be sorted in a query call"
            )
        base = self.typed_getter(resolved, category or "")
        getter: Getter = base
        if category == "text":
            order = _picklist_order(field_) if ftype == "picklist" else None
            getter = _picklist_sort_getter(base, order) if order is not None else _text_sort_getter(base)
        return _SortKey(getter, item.descending, item.nulls_first)

    # -- WHERE -----------------------------------------------------------------------------

    def compile(self, scope: _Scope, condition: Condition) -> Predicate:
        if isinstance(condition, Junction):
            parts = [self.compile(scope, operand) for operand in condition.operands]
            if condition.op == "AND":
                if len(parts) == 2:
                    first, second = parts
                    return lambda record: first(record) and second(record)
                return lambda record: all(part(record) for part in parts)
            if len(parts) == 2:
                first, second = parts
                return lambda record: first(record) or second(record)
            return lambda record: any(part(record) for part in parts)
        if isinstance(condition, Not):
            inner = self.compile(scope, condition.operand)
            return lambda record: not inner(record)
        return self.comparison(scope, condition)

    def type_error(self, field_: SoqlField, category: str, path: FieldPath) -> SoqlError:
        ftype = _type_of(field_)
        if category == "id":
            soap = "id"
        elif category in ("text", "multi"):
            soap = "string"
        elif category == "datetime":
            soap = "dateTime"
        else:
            soap = _SOAP_TYPE.get(ftype, ftype)
        quoted = "be" if category in _QUOTED_CATEGORIES else "not be"
        return self.error(
            "INVALID_FIELD",
            path.pos,
            f"value of filter criterion for field '{field_.name}' must be of type {soap} and should {quoted} "
            "enclosed in quotes",
        )

    def operand(self, field_: SoqlField, category: str, value: Value, path: FieldPath) -> tuple[str, Any]:
        """A literal coerced to the field's type: ``("null", None)``, ``("value", v)`` or
        ``("range", (start, end))`` for relative date literals. Raises Salesforce's type errors."""
        kind = value.kind
        if kind == "null":
            return "null", None
        if category in _QUOTED_CATEGORIES:
            if kind != "string":
                raise self.type_error(field_, category, path)
            text = value.value
            if text == "":
                return "null", None
            if category == "text":
                return "value", text
            if category == "multi":
                return "value", _multi(text)
            record_id = canonical_id(text)
            if record_id is None:
                raise self.error("INVALID_QUERY_FILTER_OPERATOR", path.pos, f"invalid ID field: {text}")
            return "value", record_id
        if category in ("date", "datetime") and kind == "relative":
            if value.value in HOUR_LITERALS and category == "date":
                raise self.type_error(field_, category, path)
            try:
                if category == "date":
                    return "range", date_range(value.value, value.n, self.now)
                return "range", datetime_range(value.value, value.n, self.now)
            except (OverflowError, ValueError):
                raise self.error(
                    "MALFORMED_QUERY", value.pos, f"date literal out of range: {value.text}"
                ) from None
        if kind != _VALUE_KIND_FOR.get(category):
            raise self.type_error(field_, category, path)
        return "value", value.value

    def comparison(self, scope: _Scope, cmp: Comparison) -> Predicate:
        resolved = self.resolve(scope, cmp.path)
        field_ = resolved.field
        ftype = _type_of(field_)
        category = _CATEGORY.get(ftype)
        if not getattr(field_, "filterable", True) or category is None:
            raise self.error(
                "INVALID_FIELD", cmp.path.pos, f"field '{field_.name}' can not be filtered in a query call"
            )
        op = cmp.op
        get = self.typed_getter(resolved, category)
        if op == "LIKE":
            if category != "text":
                raise self.invalid_operator(cmp.path, category, ftype)
            value = cmp.values[0]
            if value.kind != "string":
                raise self.type_error(field_, category, cmp.path)
            regex = _like_regex(value.value, value.literal_wildcards).fullmatch
            return lambda record: (v := get(record)) is not None and regex(v) is not None
        if op in ("INCLUDES", "EXCLUDES"):
            return self.includes(field_, category, cmp, get)
        if op in ("IN", "NOT_IN"):
            membership = self.membership(field_, category, cmp, get)
            if op == "IN":
                return membership
            return lambda record: not membership(record)
        return self.compare(field_, category, ftype, cmp, get)

    def invalid_operator(self, path: FieldPath, category: str, ftype: str) -> SoqlError:
        label = "id" if category == "id" else ftype
        return self.error("INVALID_QUERY_FILTER_OPERATOR", path.pos, f"invalid operator on {label} field")

    def includes(self, field_: SoqlField, category: str, cmp: Comparison, get: Getter) -> Predicate:
        """INCLUDES / EXCLUDES: each term is a set of values (``'a;b'`` means a AND b); terms are ORed."""
        if category != "multi":
            raise self.error(
                "INVALID_QUERY_FILTER_OPERATOR",
                cmp.path.pos,
                "includes or excludes operator only valid on multipicklist field",
            )
        terms: list[frozenset[str]] = []
        for value in cmp.values:
            if value.kind != "string" or not _multi(value.value):
                raise self.type_error(field_, category, cmp.path)
            terms.append(_multi(value.value))

        def included(record: Record) -> bool:
            v = get(record)
            if v is None:
                return False
            selected = _multi(v)
            return any(term <= selected for term in terms)

        if cmp.op == "INCLUDES":
            return included
        return lambda record: not included(record)

    def compare(
        self, field_: SoqlField, category: str, ftype: str, cmp: Comparison, get: Getter
    ) -> Predicate:
        """``= != < <= > >=`` against one literal."""
        op = cmp.op
        ordering = op in _RANGE_OPS
        if ordering and (category in ("bool", "multi") or ftype == "picklist"):
            raise self.invalid_operator(cmp.path, category, ftype)
        kind, operand = self.operand(field_, category, cmp.values[0], cmp.path)
        if kind == "null":
            if category == "bool":
                # Booleans are never null: "= null" matches false (Salesforce's "Use null in WHERE").
                if op == "=":
                    return lambda record: not get(record)
                if op == "!=":
                    return lambda record: bool(get(record))
            elif op == "=":
                return lambda record: get(record) is None
            elif op == "!=":
                return lambda record: get(record) is not None
            return lambda record: False
        if kind == "range":
            return _range_predicate(op, get, operand[0], operand[1])
        norm: Callable[[Any], Any] | None = None
        if category == "text":
            norm = str.upper if ordering else str.lower
            operand = norm(operand)
        elif category == "id" and not ordering:
            norm = str.lower
            operand = operand.lower()
        elif category == "multi":
            norm = _multi
        if op == "=":
            if norm is None:
                return lambda record: (v := get(record)) is not None and v == operand
            return lambda record: (v := get(record)) is not None and norm(v) == operand
        if op == "!=":
            if norm is None:
                return lambda record: (v := get(record)) is None or v != operand
            return lambda record: (v := get(record)) is None or norm(v) != operand
        test = _RANGE_OPS[op]
        if norm is None:
            return lambda record: (v := get(record)) is not None and test(v, operand)
        return lambda record: (v := get(record)) is not None and test(norm(v), operand)

    @staticmethod
    def normaliser(category: str) -> Callable[[Any], Any] | None:
        if category in ("text", "id"):
            return str.lower
        if category == "multi":
            return _multi
        return None

    def membership(self, field_: SoqlField, category: str, cmp: Comparison, get: Getter) -> Predicate:
        accepts_null = False
        values: set[Any] = set()
        ranges: list[tuple[Any, Any]] = []
        for value in cmp.values:
            kind, operand = self.operand(field_, category, value, cmp.path)
            if kind == "null":
                accepts_null = True
            elif kind == "range":
                ranges.append(operand)
            elif category in ("text", "id"):
                values.add(operand.lower())
            else:
                values.add(operand)
        norm = self.normaliser(category)

        def member(record: Record) -> bool:
            v = get(record)
            if v is None:
                return accepts_null
            key = norm(v) if norm is not None else v
            if key in values:
                return True
            return any(start <= v < end for start, end in ranges)

        return member

    # -- running ---------------------------------------------------------------------------

    def candidates(self, plan: _Plan) -> Iterable[Record]:
        if plan.id_lookup is not None:
            record = self.data.get(plan.sobject, plan.id_lookup)
            return [record] if record is not None else []
        return self.data.scan(plan.sobject, self.include_deleted)

    def matching(self, plan: _Plan, records: Iterable[Record]) -> list[Record]:
        """Filter, sort and slice records for a plan."""
        where = plan.where
        include_deleted = self.include_deleted
        stop: int | None = None
        if not plan.sort and plan.limit is not None:
            stop = plan.offset + plan.limit
        matches: list[Record] = []
        if stop == 0:
            return matches
        for record in records:
            if not include_deleted and record.get("IsDeleted"):
                continue
            if where is not None and not where(record):
                continue
            matches.append(record)
            if stop is not None and len(matches) >= stop:
                break
        for key in reversed(plan.sort):
            matches.sort(key=_sort_function(key), reverse=key.descending)
        end = None if plan.limit is None else plan.offset + plan.limit
        if plan.offset or end is not None:
            matches = matches[plan.offset : end]
        return matches

    def build(
        self, projection: _Projection, sobject: str, record: Record, children: Mapping[str, Any]
    ) -> dict[str, Any]:
        get = record.get
        row: dict[str, Any] = {"attributes": RecordAttributes(sobject, get("Id"))}
        if projection.flat:
            for key, name in projection.fields:
                row[key] = get(name)
            return row
        for key, entry in projection.entries.items():
            if isinstance(entry, _FieldOut):
                row[key] = get(entry.name)
            elif isinstance(entry, _ParentOut):
                parent = self.fetch(entry.hop, get(entry.hop.fk))
                row[key] = None if parent is None else self.build(entry.projection, parent[0], parent[1], {})
            else:
                row[key] = children.get(key)
        return row

    def child_results(self, plan: _Plan, parents: list[Record]) -> dict[Any, dict[str, Any]]:
        """For each parent Id, the nested ``{"totalSize", "done", "records"}`` of each subquery."""
        results: dict[Any, dict[str, Any]] = {}
        if not plan.children or not parents:
            return results
        parent_ids = {record.get("Id") for record in parents}
        for key, child in plan.children:
            groups: dict[Any, list[Record]] = {}
            fk = child.child_fk
            for record in self.data.scan(child.sobject, self.include_deleted):
                parent_id = record.get(fk)
                if parent_id in parent_ids:
                    groups.setdefault(parent_id, []).append(record)
            for parent_id, records in groups.items():
                matches = self.matching(child, records)
                if not matches:
                    continue
                rows = [self.build(child.projection, child.sobject, record, {}) for record in matches]
                results.setdefault(parent_id, {})[key] = {
                    "totalSize": len(rows),
                    "done": True,
                    "records": rows,
                }
        return results

    def run(self, select: Select) -> QueryResult:
        obj = self.object_named(select.sobject, select.sobject_pos)
        plan = self.plan(select, obj, nested=False)
        with _gc_paused():
            matches = self.matching(plan, self.candidates(plan))
            if plan.is_count:
                return QueryResult(len(matches), [], True, obj.name)
            children = self.child_results(plan, matches)
            rows = [
                self.build(plan.projection, plan.sobject, record, children.get(record.get("Id"), {}))
                for record in matches
            ]
        return QueryResult(len(rows), rows, False, obj.name)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a result is built.

    A result is many small acyclic dicts; without the pause the collector re-scans the whole
    record store every few thousand allocations, which doubles the time of large results. Only
    the caller that paused it resumes it, so concurrent executions are safe.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _sort_function(key: _SortKey) -> Callable[[Record], tuple[Any, ...]]:
    getter = key.getter
    # Nulls rank below values for "first" when ascending; a reversed sort flips the ranks.
    null_rank = 0 if key.nulls_first != key.descending else 2
    null_key = (null_rank,)

    def sort_key(record: Record) -> tuple[Any, ...]:
        value = getter(record)
        return null_key if value is None else (1, value)

    return sort_key


def _text_sort_getter(base: Getter) -> Getter:
    """English-locale SOQL sorts text by its upper-case UTF-8 values, i.e. case-insensitively."""

    def key(record: Record) -> Any:
        value = base(record)
        return None if value is None else value.upper()

    return key


def _picklist_sort_getter(base: Getter, order: dict[str, int]) -> Getter:
    """Picklists sort in their defined order; values not in the list come after, alphabetically."""
    last = len(order)

    def key(record: Record) -> Any:
        value = base(record)
        return None if value is None else (order.get(value.lower(), last), value.upper())

    return key


def _range_predicate(op: str, get: Getter, start: date | datetime, end: date | datetime) -> Predicate:
    """A comparison with a relative date literal: ``=`` is membership of ``[start, end)``,
    ``<`` before the start, ``>`` after the end, ``<=`` before the end, ``>=`` from the start."""
    if op == "=":
        return lambda record: (v := get(record)) is not None and start <= v < end
    if op == "!=":
        return lambda record: (v := get(record)) is None or not start <= v < end
    if op == "<":
        return lambda record: (v := get(record)) is not None and v < start
    if op == "<=":
        return lambda record: (v := get(record)) is not None and v < end
    if op == ">":
        return lambda record: (v := get(record)) is not None and v >= end
    return lambda record: (v := get(record)) is not None and v >= start
