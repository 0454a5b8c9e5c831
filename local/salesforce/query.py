"""SOQL over REST: query, queryAll and their ``nextRecordsUrl`` pages.

The SOQL engine (``local.salesforce.soql``) returns every matching row; this module pages them the
way Salesforce does. Pages hold ``Sforce-Query-Options: batchSize=N`` rows (200..2000, a hint;
rows of child subqueries count toward it), ``totalSize`` counts all rows, and the last page has
no ``nextRecordsUrl``. Locators expire after ``query_locator_ttl_seconds`` without use, and a user
holds at most ``max_open_query_locators`` of them: opening one more invalidates the oldest.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from local.salesforce.errors import ApiError
from local.salesforce.http import CallContext
from local.salesforce.org import Org
from local.salesforce.soql import SoqlError, attach_urls, execute, parse
from local.salesforce.soql_syntax import Select

__all__ = ["Cursors", "batch_size", "run_query"]


@dataclass
class Cursor:
    locator: str
    user_id: str
    rows: list[dict[str, Any]]
    include_deleted: bool
    batch_size: int
    has_children: bool
    last_used: float


def batch_size(ctx: CallContext, default: int) -> int:
    header = ctx.http.headers.get("Sforce-Query-Options", "")
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "batchsize":
            try:
                return max(200, min(2000, int(value.strip())))
            except ValueError:
                return default
    return default


def _weight(row: dict[str, Any]) -> int:
    weight = 1
    for value in row.values():
        if isinstance(value, dict):
            records = value.get("records")
            if isinstance(records, list):
                weight += len(records)
    return weight


class Cursors:
    def __init__(self, org: Org) -> None:
        self.org = org
        self._lock = threading.Lock()
        self._cursors: dict[str, OrderedDict[str, Cursor]] = {}
        org.hooks.append(self.clear)

    def clear(self) -> None:
        with self._lock:
            self._cursors.clear()

    def open(
        self, user_id: str, rows: list[dict[str, Any]], include_deleted: bool, size: int, children: bool
    ) -> Cursor:
        locator = self.org.ids.new_id("01g")
        cursor = Cursor(locator, user_id, rows, include_deleted, size, children, self.org.clock.timestamp())
        with self._lock:
            mine = self._cursors.setdefault(user_id, OrderedDict())
            mine[locator] = cursor
            while len(mine) > self.org.settings.max_open_query_locators:
                mine.popitem(last=False)
        return cursor

    def find(self, user_id: str, locator: str) -> Cursor:
        now = self.org.clock.timestamp()
        with self._lock:
            mine = self._cursors.get(user_id, OrderedDict())
            cursor = mine.get(locator)
            if cursor is None or now - cursor.last_used > self.org.settings.query_locator_ttl_seconds:
                mine.pop(locator, None)
                raise ApiError.request(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            cursor.last_used = now
            return cursor

    def close(self, cursor: Cursor) -> None:
        with self._lock:
            self._cursors.get(cursor.user_id, OrderedDict()).pop(cursor.locator, None)

    def page(self, ctx: CallContext, cursor: Cursor, start: int, size: int) -> dict[str, Any]:
        rows = cursor.rows
        if start > len(rows):
            raise ApiError.request(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        if cursor.has_children:
            end, weight = start, 0
            while end < len(rows):
                w = _weight(rows[end])
                if end > start and weight + w > size:
                    break
                weight += w
                end += 1
        else:
            end = min(len(rows), start + size)
        page = rows[start:end]
        attach_urls(page, ctx.base_path)
        body: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows)}
        if end < len(rows):
            resource = "queryAll" if cursor.include_deleted else "query"
            body["nextRecordsUrl"] = f"{ctx.base_path}/{resource}/{cursor.locator}-{end}"
        else:
            self.close(cursor)
        body["records"] = page
        ctx.records = len(page)
        return body


def _has_children(select: Select) -> bool:
    return any(isinstance(item, Select) for item in select.items)


def run_query(
    org: Org, cursors: Cursors, ctx: CallContext, text: str, include_deleted: bool
) -> dict[str, Any]:
    """Execute SOQL and return its first page."""
    if not text or not text.strip():
        raise ApiError.request(400, "MALFORMED_QUERY", "A query string has to be specified")
    try:
        query = parse(text)
        result = execute(query, org.schema, org.store, include_deleted=include_deleted, now=org.clock.now())
    except SoqlError as exc:
        raise ApiError.request(400, exc.code, exc.message) from None
    if result.is_count:
        return {"totalSize": result.total_size, "done": True, "records": []}
    size = batch_size(ctx, org.settings.default_query_batch_size)
    children = _has_children(query.select)
    cursor = cursors.open(ctx.session.user_id, result.rows, include_deleted, size, children)
    return cursors.page(ctx, cursor, 0, size)


def query_more(org: Org, cursors: Cursors, ctx: CallContext, token: str) -> dict[str, Any]:
    locator, _, offset = token.rpartition("-")
    if not locator:
        locator, offset = token, "0"
    try:
        start = int(offset)
    except ValueError:
        raise ApiError.request(400, "INVALID_QUERY_LOCATOR", "invalid query locator") from None
    cursor = cursors.find(ctx.session.user_id, locator)
    size = (
        batch_size(ctx, cursor.batch_size)
        if ctx.http.headers.get("Sforce-Query-Options")
        else cursor.batch_size
    )
    return cursors.page(ctx, cursor, start, size)
