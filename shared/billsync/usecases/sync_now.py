"""Sync now: chosen records at once, or an object's pull run now — from the command line or the ops API.

* Records (`ids`): each becomes a reference-only change with `cause="sync_now"` in the object's queue,
  so the worker reads the record's latest state from its side and applies it, even a version that was
  dead-lettered or handled before. Ids are those of the side the object syncs from: billing ids for
  records that go to Salesforce, Salesforce ids (15 or 18 characters) for records that go to billing.
  For an object synced both ways the direction is given, or inferred from each id's shape.
* `all`: the object's pull runs now from its checkpoint, as its schedule would (also in manual mode).
* `since`: the object's changes since a time are read again, on a stream of their own (`sync-now`),
  leaving the scheduled pulls' checkpoints alone.
A switched-off object is refused, and nothing is queued for a request with any bad part.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from billsync.config import ConfigError, parse_since
from billsync.domain.models import Change, Direction
from billsync.ports import QueuePort
from billsync.usecases.catalog import ObjectInfo, looks_like_salesforce_id
from billsync.usecases.ops_ports import FunctionsPort
from billsync.usecases.outcomes import envelope

SYNC_NOW_STREAM = "sync-now"
MAX_IDS = 500
_BILLING_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class SyncNowError(ValueError):
    """A request that cannot be carried out; nothing was queued. `status` is its HTTP answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SyncNowRequest:
    object: str
    ids: tuple[str, ...] = ()
    direction: Direction | None = None
    all: bool = False
    since: datetime | None = None
    source: str | None = None

    @classmethod
    def from_json(cls, body: Any) -> SyncNowRequest:
        """The ops API's body: {"object", "ids"?, "direction"?, "all"?, "since"?, "source"?}."""
        if not isinstance(body, Mapping):
            raise SyncNowError("the body must be a JSON object")
        unknown = sorted(set(body) - {"object", "ids", "direction", "all", "since", "source"})
        if unknown:
            raise SyncNowError(f"unknown field(s): {', '.join(unknown)}")
        object_name = body.get("object")
        if not isinstance(object_name, str) or not object_name:
            raise SyncNowError("'object' is required: the object to sync (for example invoice)")
        ids = body.get("ids", [])
        if not isinstance(ids, list) or not all(isinstance(i, str | int) for i in ids):
            raise SyncNowError("'ids' must be a list of record ids")
        direction = body.get("direction")
        try:
            parsed_direction = Direction(direction) if direction is not None else None
        except ValueError:
            raise SyncNowError(
                f"'direction' must be one of {', '.join(d.value for d in Direction)}"
            ) from None
        everything = body.get("all", False)
        if not isinstance(everything, bool):
            raise SyncNowError("'all' must be true or false")
        since = body.get("since")
        if since is not None and not isinstance(since, str):
            raise SyncNowError("'since' must be an ISO 8601 time with a zone")
        try:
            parsed_since = parse_since(since) if since else None
        except ConfigError as exc:
            raise SyncNowError(f"'since': {exc}") from None
        source = body.get("source")
        if source is not None and not isinstance(source, str):
            raise SyncNowError("'source' must be a source key")
        return cls(
            object_name, tuple(str(i) for i in ids), parsed_direction, everything, parsed_since, source
        )


@dataclass
class SyncNowResult:
    object: str
    queued: list[dict[str, str]] = field(default_factory=list)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"object": self.object, "queued": self.queued, "pulls": self.pulls, "notes": self.notes}


def check(request: SyncNowRequest, catalog: Mapping[str, ObjectInfo]) -> ObjectInfo:
    """The object the request concerns, after every check that can refuse it."""
    info = catalog.get(request.object)
    if info is None:
        known = ", ".join(sorted(catalog)) or "none"
        raise SyncNowError(f"unknown object {request.object!r}; this deployment syncs: {known}")
    chosen = sum(bool(x) for x in (request.ids, request.all, request.since is not None))
    if chosen != 1:
        raise SyncNowError("give exactly one of: record ids, all, or since")
    if not info.enabled:
        raise SyncNowError(
            f"{info.name} sync is switched off (objects.{info.name}.enabled or sync.enabled); "
            "switch it on first",
            status=409,
        )
    if request.direction is not None and request.direction not in info.directions:
        raise SyncNowError(f"{info.name} does not sync {request.direction.value}")
    if request.source is not None and request.source not in info.sources:
        raise SyncNowError(
            f"unknown source {request.source!r} for {info.name}; known: {', '.join(info.sources)}"
        )
    if len(request.ids) > MAX_IDS:
        raise SyncNowError(f"at most {MAX_IDS} ids per request (use all or since for more)")
    return info


def plan_changes(request: SyncNowRequest, info: ObjectInfo) -> tuple[list[Change], list[str]]:
    """The reference-only changes for the request's ids, and what was inferred on the way."""
    source = request.source or info.sources[0]
    notes: list[str] = []
    changes: list[Change] = []
    inferred = 0
    for record_id in dict.fromkeys(i.strip() for i in request.ids):
        direction = request.direction
        if direction is None:
            if len(info.directions) == 1:
                direction = info.directions[0]
            else:
                direction = (
                    Direction.TO_BILLING if looks_like_salesforce_id(record_id) else Direction.TO_SALESFORCE
                )
                inferred += 1
        if direction is Direction.TO_BILLING and not looks_like_salesforce_id(record_id):
            raise SyncNowError(
                f"{record_id!r} is not a Salesforce id (15 or 18 letters and digits): "
                f"{info.name} records go to billing from Salesforce"
            )
        if direction is Direction.TO_SALESFORCE and not _BILLING_ID.match(record_id):
            raise SyncNowError(f"{record_id!r} is not a billing record id")
        changes.append(
            Change(source=source, object=info.name, direction=direction, id=record_id, cause="sync_now")
        )
    if inferred:
        notes.append(
            f"direction inferred from the id's shape for {inferred} id(s): Salesforce ids go to billing, "
            "others to Salesforce (give the direction to choose)"
        )
    return changes, notes


def pull_event(
    direction: Direction, *, since: datetime | None, resume: bool = False, correlation_id: str | None = None
) -> dict[str, Any]:
    """The event that runs an object's pull for an operator (see `billsync.handlers`)."""
    event: dict[str, Any] = {"action": "pull", "direction": direction.value, "trigger": "sync_now"}
    if correlation_id:
        event["correlation_id"] = correlation_id
    if since is not None or resume:
        event["stream"] = SYNC_NOW_STREAM
    if since is not None:
        event["since"] = since.isoformat()
        event["restart"] = True
    return event


def sync_now(
    request: SyncNowRequest,
    catalog: Mapping[str, ObjectInfo],
    *,
    queues: QueuePort,
    functions: FunctionsPort,
    request_id: str | None = None,
) -> SyncNowResult:
    """Queue the request's records, or hand its pulls to the object's function (asynchronously)."""
    info = check(request, catalog)
    result = SyncNowResult(info.name)
    if request.ids:
        changes, result.notes = plan_changes(request, info)
        nonce = request_id or uuid.uuid4().hex  # pressing "sync now" twice syncs twice
        queues.send(info.name, [envelope(change, None, nonce=nonce) for change in changes])
        result.queued = [{"id": c.id, "direction": c.direction.value, "source": c.source} for c in changes]
        return result
    for direction in directions_of(request, info):
        event = pull_event(direction, since=request.since, correlation_id=request_id)
        functions.invoke_async(info.name, event)
        result.pulls.append({"direction": direction.value, "since": _iso(request.since), "status": "started"})
    return result


def directions_of(request: SyncNowRequest, info: ObjectInfo) -> Sequence[Direction]:
    return (request.direction,) if request.direction is not None else info.directions


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class PullRunFailed(RuntimeError):
    """The object's function failed while running an operator's pull."""


def run_pulls_now(
    request: SyncNowRequest,
    catalog: Mapping[str, ObjectInfo],
    functions: FunctionsPort,
    *,
    on_run: Callable[[Direction, list[dict[str, Any]]], None] | None = None,
) -> SyncNowResult:
    """Run the request's pulls and wait for them (the command line): a run that pauses because its time
    is up is continued at once, from where it stopped, until its window is done."""
    info = check(request, catalog)
    if request.ids:
        raise SyncNowError("record ids are queued, not pulled")
    result = SyncNowResult(info.name)
    for direction in directions_of(request, info):
        event = pull_event(direction, since=request.since)
        totals: dict[str, int] = {}
        while True:
            answer = functions.invoke(info.name, event)
            if not answer.ok:
                raise PullRunFailed(f"the {info.name} function failed: {answer.error}")
            payload = answer.payload if isinstance(answer.payload, dict) else {}
            streams: list[dict[str, Any]] = list(payload.get("streams") or [])
            if on_run is not None:
                on_run(direction, streams)
            for stream in streams:
                for outcome, count in (stream.get("outcomes") or {}).items():
                    totals[outcome] = totals.get(outcome, 0) + int(count)
            statuses = [str(s.get("status")) for s in streams]
            if "paused" not in statuses:
                result.pulls.append(
                    {
                        "direction": direction.value,
                        "since": _iso(request.since),
                        "status": _overall(statuses, payload),
                        "outcomes": totals,
                        "detail": next((s.get("detail") for s in streams if s.get("detail")), None)
                        or payload.get("skipped"),
                    }
                )
                break
            event = pull_event(direction, since=None, resume=request.since is not None)
    return result


def _overall(statuses: Sequence[str], payload: Mapping[str, Any]) -> str:
    if payload.get("skipped"):
        return "skipped"
    for status in ("budget", "busy", "skipped"):
        if status in statuses:
            return status
    return "done"
