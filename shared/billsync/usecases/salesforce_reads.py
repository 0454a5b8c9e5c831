"""Reading an object's records from Salesforce: SOQL built from its mappings, never from raw text.

Every value placed in a query goes through `soql_string` or a typed literal, so names with quotes,
backslashes, `%`, `_` or newlines cannot change a query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billsync.domain.mapping import FieldSpec, Mapping
from billsync.domain.rules import Owners, Window
from billsync.usecases.common import parent_external_id

_SOQL_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
ID_BATCH = 200  # ids per `Id IN (...)` query: keeps the URL well under Salesforce's limit


def soql_string(value: str) -> str:
    """A SOQL string literal (quoted and escaped)."""
    return "'" + "".join(_SOQL_ESCAPES.get(ch, ch) for ch in value) + "'"


def soql_datetime(value: datetime) -> str:
    moment = value.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_sf_datetime(value: str) -> datetime:
    """Salesforce's `2024-03-01T10:00:00.000+0000` (and ISO variants) as an aware UTC datetime."""
    text = value.replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def split_external_id(value: Any, source_key: str) -> str | None:
    """The vendor id inside a billsync external id of this source (`main:3100` → `3100`)."""
    if not isinstance(value, str) or ":" not in value:
        return None
    prefix, _, vendor_id = value.partition(":")
    return vendor_id if prefix == source_key and vendor_id else None


def position_of(record: dict[str, Any]) -> str:
    return f"{record['SystemModstamp']}|{record['Id']}"


@dataclass(frozen=True)
class ChildRead:
    relationship: str
    sobject: str
    external_id: str
    billing_path: str
    order_by: str | None
    fields: tuple[str, ...]


class SalesforceReads:
    """The queries and reads of one object, derived from its to_billing mapping (and to_salesforce, if any)."""

    def __init__(self, to_billing: Mapping, to_salesforce: Mapping | None) -> None:
        target = to_billing.salesforce
        self.to_billing = to_billing
        self.to_salesforce = to_salesforce
        self.sobject = target.object
        self.external_id = target.external_id
        self.origin_field = target.origin_field
        self.synced_at_field = target.synced_at_field
        self.where = target.where
        self.source_field: str | None = getattr(target, "source_field", None)
        self.children: dict[str, ChildRead] = {}
        for name, child in to_billing.children.items():
            relationship = child.salesforce.relationship or child.from_
            self.children[name] = ChildRead(
                relationship=relationship,
                sobject=child.salesforce.object,
                external_id=child.salesforce.external_id,
                billing_path=child.to or name,
                order_by=child.salesforce.order_by,
                fields=tuple(child.source_paths()),
            )
        self._select = self._select_list()

    def _select_list(self) -> str:
        paths = ["Id", "SystemModstamp", "IsDeleted", self.external_id]
        paths += [p for p in (self.origin_field, self.source_field) if p]
        paths += [p for p in self.to_billing.source_paths() if "[]" not in p]
        if self.to_salesforce is not None:
            paths += [p for spec in self.to_salesforce.fields for p in [self._read_path(spec)]]
        unique = list(dict.fromkeys(paths))
        for child in self.children.values():
            fields = ", ".join(dict.fromkeys(["Id", child.external_id, *child.fields]))
            order = f" ORDER BY {child.order_by}, Id" if child.order_by else " ORDER BY Id"
            unique.append(f"(SELECT {fields} FROM {child.relationship}{order})")
        return ", ".join(unique)

    @staticmethod
    def _read_path(spec: FieldSpec) -> str:
        parent_key = parent_external_id(spec)
        return f"{spec.to}.{parent_key}" if parent_key else spec.to

    def by_ids(self, ids: Sequence[str]) -> str:
        """Records by Salesforce id (deleted ones too, when run with queryAll)."""
        if len(ids) > ID_BATCH:
            raise ValueError(f"at most {ID_BATCH} ids per query")
        listed = ", ".join(soql_string(i) for i in ids)
        return f"SELECT {self._select} FROM {self.sobject} WHERE Id IN ({listed})"

    def pull_query(
        self, window: Window, *, source_key: str, default_source: bool, after: str | None = None
    ) -> str:
        """The records changed in `window` that route to `source_key`, in SystemModstamp, Id order."""
        conditions = [f"SystemModstamp < {soql_datetime(window.end)}"]
        if window.start is not None:
            conditions.append(f"SystemModstamp >= {soql_datetime(window.start)}")
        if after:
            stamp, _, last_id = after.partition("|")
            moment = soql_datetime(parse_sf_datetime(stamp))
            conditions.append(
                f"(SystemModstamp > {moment} OR (SystemModstamp = {moment} AND Id > {soql_string(last_id)}))"
            )
        if self.where:
            # Records the mapping sends to billing, and records already linked to billing (an edit of
            # one the billing system owns must be seen to be logged as ignored).
            conditions.append(f"(({self.where}) OR {self.external_id} != null)")
        if self.source_field:
            route = f"{self.source_field} = {soql_string(source_key)}"
            conditions.append(f"({route} OR {self.source_field} = null)" if default_source else route)
        return f"SELECT {self._select} FROM {self.sobject} WHERE {' AND '.join(conditions)} ORDER BY SystemModstamp, Id"

    def written_fields(self, record: dict[str, Any], *, owners: Owners) -> dict[str, Any]:
        """The values Salesforce holds of the fields billsync writes (to compare with what it wrote)."""
        if self.to_salesforce is None:
            return {}
        values: dict[str, Any] = {}
        for spec in self.to_salesforce.fields:
            if owners == "billing" and spec.owner != "billing":
                continue
            values[spec.to] = record.get(spec.to)
        return values
