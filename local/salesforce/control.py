"""The control API: reset, seed and dump records, read call counts, set faults and settings.

Served under ``/_emulator/`` (never under ``/services``), never counted toward the API budget and
never faulted. `Control` is also the in-process handle tests use (``emulator.control``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from local.salesforce.bulk import Bulk
from local.salesforce.dml import RecordFailure, prepare
from local.salesforce.errors import ApiError, SfError
from local.salesforce.formats import parse_datetime
from local.salesforce.http import json_body, json_response
from local.salesforce.org import Org
from local.salesforce.rest import record_json

__all__ = ["Control", "SeedError"]


class SeedError(Exception):
    """Seeding was refused; ``results`` holds one result per record (nothing was stored)."""

    def __init__(self, results: list[dict[str, Any]]) -> None:
        self.results = results
        failed = [r for r in results if not r.get("success")]
        super().__init__(f"{len(failed)} of {len(results)} records refused: {failed[:3]}")


class FaultsHandle:
    """``control.faults.get()`` / ``control.faults.update({...})``."""

    def __init__(self, org: Org) -> None:
        self._org = org

    def get(self) -> dict[str, Any]:
        return {**self._org.faults.settings.to_json(), "injected": dict(self._org.faults.injected)}

    def update(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        self._org.faults.update(dict(changes))
        return self.get()


class Control:
    def __init__(self, org: Org, bulk: Bulk, info: Any) -> None:
        self._org = org
        self._bulk = bulk
        self._info = info
        self.faults = FaultsHandle(org)

    # -- in-process API --------------------------------------------------------------------------

    def reset(self) -> None:
        self._org.reset()
        self._org.after_commit = None
        self._org.before_write = None

    def on_commit(self, hook: Callable[[list[str]], None] | None) -> None:
        """Call `hook` with the written records' ids after each committed write, before its response."""
        self._org.after_commit = hook

    def before_write(self, hook: Callable[[], None] | None) -> None:
        """Call `hook` as each write request starts, before it takes its row locks."""
        self._org.before_write = hook

    def seed(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        validate: bool = True,
        as_user: str | None = None,
    ) -> list[str]:
        """Insert ``records`` (JSON-shaped, like REST bodies) in one transaction; their Ids in order.

        With ``validate=False`` read-only and system fields (``CreatedDate``, ``LastModifiedDate``...)
        may be set and field rules are not enforced. Raises `SeedError` when a record is refused.
        """
        org = self._org
        obj = org.schema.get_object(sobject)
        if obj is None:
            raise ApiError.request(404, "NOT_FOUND", f"sObject type '{sobject}' is not supported.")
        prepared = [prepare(org.schema, obj, dict(record), None) for record in records]
        user = as_user or org.integration_user_id
        results: list[dict[str, Any]] = []

        def body(txn: Any) -> list[str]:
            ids: list[str] = []
            failed = False
            for item in prepared:
                try:
                    record_id = org.dml.insert(txn, item) if validate else org.dml.seed(txn, item)
                except RecordFailure as exc:
                    failed = True
                    results.append({"success": False, "errors": [e.collection() for e in exc.errors]})
                else:
                    ids.append(record_id)
                    results.append({"id": record_id, "success": True, "errors": []})
            if failed:
                txn.rollback()
            return ids

        ids = org.transact(user, "", body)
        if len(ids) != len(prepared):
            raise SeedError(results)
        return ids

    def dump(self, sobject: str, include_deleted: bool = True) -> list[dict[str, Any]]:
        org = self._org
        obj = org.schema.get_object(sobject)
        if obj is None:
            raise ApiError.request(404, "NOT_FOUND", f"sObject type '{sobject}' is not supported.")
        version = org.settings.api_versions[-1]
        rows = org.store.all_rows(obj)
        return [
            record_json(obj, row, f"/services/data/v{version}")
            for row in rows
            if include_deleted or not row["IsDeleted"]
        ]

    def undelete(self, record_id: str) -> list[str]:
        org = self._org
        try:
            return org.transact(org.integration_user_id, "", lambda txn: org.dml.undelete(txn, record_id))
        except RecordFailure as exc:
            raise ApiError(400, exc.errors) from None

    def calls(self) -> dict[str, Any]:
        return self._org.stats()

    def reset_calls(self) -> None:
        self._org.reset_calls()

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        return self._org.events.after(after)[0]

    def settings(self) -> dict[str, Any]:
        return self._org.settings.runtime_json()

    def update_settings(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        self._org.settings.apply(dict(changes))
        return self.settings()

    def set_time(
        self, now: datetime | None = None, *, advance_seconds: float = 0.0, frozen: bool | None = None
    ) -> dict[str, Any]:
        self._org.clock.set(now=now, advance_seconds=advance_seconds, frozen=frozen)
        return self._org.clock.describe()

    def wait_for_bulk(self, timeout: float = 10.0) -> bool:
        return self._bulk.wait_idle(timeout)

    # -- HTTP ------------------------------------------------------------------------------------

    def handle(self, request: Request, path: str) -> Response:
        try:
            return self._route(request, path)
        except ApiError as exc:
            return json_response(exc.body, exc.status)
        except SeedError as exc:
            return json_response({"results": exc.results}, 400)
        except ValueError as exc:
            return json_response([SfError("INVALID_INPUT", str(exc), record_level=False).rest()], 400)

    def _route(self, request: Request, path: str) -> Response:
        method = request.method
        parts = [p for p in path.split("/") if p]
        head = parts[0] if parts else ""
        args = request.args
        if head == "reset" and method == "POST":
            self.reset()
            return json_response({"reset": True})
        if head == "records" and len(parts) == 2:
            if method == "POST":
                body = json_body(request.get_data(as_text=True))
                records = body.get("records") if isinstance(body, dict) else body
                if not isinstance(records, list):
                    raise ValueError('send a JSON array of records, or {"records": [...]}')
                validate = args.get("validate", "true").lower() != "false"
                ids = self.seed(parts[1], records, validate=validate, as_user=args.get("as_user"))
                return json_response({"ids": ids}, 201)
            if method == "GET":
                include = args.get("include_deleted", "true").lower() != "false"
                return json_response(self.dump(parts[1], include))
        if head == "undelete" and len(parts) == 2 and method == "POST":
            return json_response({"ids": self.undelete(parts[1])})
        if head == "calls":
            if method == "GET":
                return json_response(self.calls())
            if method == "DELETE":
                self.reset_calls()
                return json_response(self.calls())
        if head == "faults":
            if method == "GET":
                return json_response(self.faults.get())
            if method == "PATCH":
                body = json_body(request.get_data(as_text=True))
                if not isinstance(body, dict):
                    raise ValueError("send a JSON object of fault settings")
                return json_response(self.faults.update(body))
        if head == "events" and method == "GET":
            after = int(args.get("after", "0"))
            events, last = self._org.events.after(after)
            return json_response({"events": events, "last": last})
        if head == "settings":
            if method == "GET":
                return json_response(self.settings())
            if method == "PATCH":
                body = json_body(request.get_data(as_text=True))
                if not isinstance(body, dict):
                    raise ValueError("send a JSON object of settings")
                return json_response(self.update_settings(body))
        if head == "time":
            if method == "GET":
                return json_response(self._org.clock.describe())
            if method == "POST":
                body = json_body(request.get_data(as_text=True))
                if not isinstance(body, dict):
                    raise ValueError("send a JSON object: now, advance_seconds, frozen")
                now = parse_datetime(body["now"]) if body.get("now") else None
                return json_response(
                    self.set_time(
                        now, advance_seconds=float(body.get("advance_seconds", 0)), frozen=body.get("frozen")
                    )
                )
        if head == "bulk" and len(parts) == 2 and parts[1] == "wait" and method == "POST":
            return json_response({"idle": self.wait_for_bulk(float(args.get("timeout", "10")))})
        if head == "info" and method == "GET":
            return json_response(self._info())
        return json_response(
            [{"errorCode": "NOT_FOUND", "message": f"No control resource {method} /_emulator/{path}"}], 404
        )
