"""billsync's state in one DynamoDB table: cross-references, checkpoints, leases and the sync log.

Items (pk / sk):
* `X#<source>#<object>#B#<billing id>` / `X` and `X#<object>#S#<salesforce id>` / `X`: the two faces
  of one record's cross-reference, written together, each carrying the whole state so that a
  lookup from either side is one read. Writes are conditional on the revision read (`rev`).
* `C#<source>#<object>#<direction>` / `C`: a pull checkpoint (cursor, revision, resume point) and the
  last time the object synced in that direction. An operator stream (a backfill) keeps its own
  checkpoint under `C#<source>#<object>@<stream>#<direction>`, with what it was asked for (`since`)
  and how far it got (`records_done`, `total`), so it never disturbs the scheduled pulls.
* `L#<name>` / `L`: a run lease, so two scheduled runs of one stream never overlap.
* `LOG#<object>#<day>` / `<time>#…`: one sync-log entry per record outcome, with a TTL; the index
  `gsi1` (`REC#<source>#<object>#<id>`, time) finds a record's history.
* `STAT#<object>#<direction>` / `H#<hour>`: how many records of each outcome an hour saw (one
  UpdateItem ADD per batch), kept two days: `billsync status` reads 24 items instead of a day of log.
* `U#salesforce` / `U`: the Salesforce API usage a function last saw (used, limit, when).

Reads are batched (BatchGetItem, 100 keys) and writes are batched or transactional (BatchWriteItem
25 items, TransactWriteItems 100), with unprocessed items retried.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from billsync.domain.models import Checkpoint, Direction, Outcome, Side, SyncLogEntry, XrefState
from billsync.ports import LeaseGrant, XrefKey, XrefWrite
from billsync.usecases.ops_ports import ApiUsage, OutcomeCounts, StreamState

BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
TRANSACT_LIMIT = 100
STATS_KEPT = timedelta(days=2)
_LOG_FIELDS = frozenset(SyncLogEntry.model_fields)


class CheckpointConflict(Exception):
    """Another run moved the checkpoint since it was read."""


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _from_ms(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value) / 1000, UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def _from_iso(value: Any) -> datetime | None:
    return None if value in (None, "") else datetime.fromisoformat(str(value))


class DynamoState:
    def __init__(self, table_name: str, *, client: Any = None, log_ttl_days: int = 30) -> None:
        self.table = table_name
        self._client = client
        self._log_ttl = timedelta(days=log_ttl_days)
        self.requests_made = 0
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._ser = TypeSerializer()
        self._de = TypeDeserializer()

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # Every request is built here from typed values; botocore's client-side validation of
            # each large batch costs more CPU than the request itself (DynamoDB still validates).
            self._client = boto3.client("dynamodb", config=Config(parameter_validation=False))
        return self._client

    # ------------------------------------------------------------------------------ encoding

    def _item(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(v) for k, v in values.items() if v is not None}

    def _plain(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._de.deserialize(v) for k, v in item.items()}

    @staticmethod
    def _xref_pk(key: XrefKey) -> str:
        if key.billing_id is not None:
            return f"X#{key.source}#{key.object}#B#{key.billing_id}"
        if key.salesforce_id is not None:
            return f"X#{key.object}#S#{key.salesforce_id[:15]}"
        raise ValueError("a cross-reference key needs a billing id or a Salesforce id")

    def _xref_values(self, state: XrefState) -> dict[str, Any]:
        return {
            "sk": "X",
            "source": state.source,
            "object": state.object,
            "billing_id": state.billing_id,
            "sf_id": state.salesforce_id,
            "origin": state.origin.value if state.origin else None,
            "bver": _ms(state.billing_version),
            "sver": _ms(state.salesforce_version),
            "fps": state.fingerprints or None,
            "children": state.children or None,
            "deleted": state.deleted,
            "failed_ver": _ms(state.failed_version),
            "rev": state.rev,
            "updated_at": _iso(datetime.now(UTC)),
        }

    def _xref_state(self, item: dict[str, Any]) -> XrefState:
        plain = self._plain(item)
        return XrefState(
            source=plain["source"],
            object=plain["object"],
            billing_id=plain.get("billing_id"),
            salesforce_id=plain.get("sf_id"),
            origin=Side(plain["origin"]) if plain.get("origin") else None,
            billing_version=_from_ms(plain.get("bver")),
            salesforce_version=_from_ms(plain.get("sver")),
            fingerprints=dict(plain.get("fps") or {}),
            children={k: dict(v) for k, v in (plain.get("children") or {}).items()},
            deleted=bool(plain.get("deleted", False)),
            failed_version=_from_ms(plain.get("failed_ver")),
            rev=int(plain.get("rev", 0)),
        )

    # ------------------------------------------------------------------------------ cross-references

    def get_xrefs(self, keys: Sequence[XrefKey]) -> dict[XrefKey, XrefState]:
        by_pk: dict[str, list[XrefKey]] = {}
        for key in keys:
            by_pk.setdefault(self._xref_pk(key), []).append(key)
        found: dict[XrefKey, XrefState] = {}
        pks = list(by_pk)
        for start in range(0, len(pks), BATCH_GET_LIMIT):
            chunk = [{"pk": {"S": pk}, "sk": {"S": "X"}} for pk in pks[start : start + BATCH_GET_LIMIT]]
            for item in self._batch_get(chunk):
                state = self._xref_state(item)
                for key in by_pk[item["pk"]["S"]]:
                    found[key] = state
        return found

    def _batch_get(self, keys: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
        attempt = 0
        while request:
            self.requests_made += 1
            response = self.client.batch_get_item(RequestItems=request)
            yield from response.get("Responses", {}).get(self.table, [])
            request = response.get("UnprocessedKeys") or {}
            if request:
                attempt += 1
                _pause(attempt)

    def put_xrefs(self, writes: Sequence[XrefWrite]) -> list[XrefWrite]:
        """Write cross-references transactionally, each conditional on the revision it read.

        Writes that lost a race are returned (and not applied); the others are retried without them.
        """
        lost: list[XrefWrite] = []
        pending = list(writes)
        per_transaction = TRANSACT_LIMIT // 2  # each record has up to two items
        while pending:
            chunk, pending = pending[:per_transaction], pending[per_transaction:]
            while chunk:
                actions, owners = [], []
                for write in chunk:
                    for pk in self._faces(write.state):
                        actions.append(self._conditional_put(pk, write))
                        owners.append(write)
                failed = self._transact(actions, owners)
                if not failed:
                    break
                lost.extend(w for w in chunk if id(w) in failed)
                chunk = [w for w in chunk if id(w) not in failed]
        return lost

    def _faces(self, state: XrefState) -> list[str]:
        faces = []
        if state.billing_id is not None:
            faces.append(self._xref_pk(XrefKey(state.source, state.object, billing_id=state.billing_id)))
        if state.salesforce_id is not None:
            faces.append(
                self._xref_pk(XrefKey(state.source, state.object, salesforce_id=state.salesforce_id))
            )
        return faces

    def _conditional_put(self, pk: str, write: XrefWrite) -> dict[str, Any]:
        values = self._xref_values(write.state.model_copy(update={"rev": write.expected_rev + 1}))
        return {
            "Put": {
                "TableName": self.table,
                "Item": self._item({"pk": pk, **values}),
                "ConditionExpression": "attribute_not_exists(pk) OR #rev = :expected",
                "ExpressionAttributeNames": {"#rev": "rev"},
                "ExpressionAttributeValues": {":expected": {"N": str(write.expected_rev)}},
            }
        }

    def _transact(self, actions: list[dict[str, Any]], owners: list[XrefWrite]) -> set[int]:
        """Run the transaction; the ids (`id()`) of the writes whose condition failed, if any."""
        from botocore.exceptions import ClientError

        attempt = 0
        while True:
            self.requests_made += 1
            try:
                self.client.transact_write_items(TransactItems=actions)
                return set()
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = exc.response.get("CancellationReasons") or []
                # By identity: a write holds a (mutable, unhashable) XrefState.
                failed = {
                    id(owners[i]) for i, r in enumerate(reasons) if r.get("Code") == "ConditionalCheckFailed"
                }
                if failed:
                    return failed
                attempt += 1  # a conflicting transaction in flight: try again shortly
                if attempt > 5:
                    raise
                _pause(attempt)

    # ------------------------------------------------------------------------------ checkpoints

    @staticmethod
    def _checkpoint_pk(source: str, object_name: str, direction: Direction) -> str:
        return f"C#{source}#{object_name}#{direction.value}"

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        self.requests_made += 1
        item = self.client.get_item(
            TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        ).get("Item")
        return self._plain(item) if item else None

    def get_checkpoint(self, source: str, object_name: str, direction: Direction) -> Checkpoint | None:
        item = self._get(self._checkpoint_pk(source, object_name, direction), "C")
        if item is None:
            return None
        return Checkpoint(
            source=source,
            object=object_name,
            direction=direction,
            cursor=_from_iso(item.get("cursor")),
            rev=int(item.get("rev", 0)),
            last_synced_at=_from_iso(item.get("last_synced_at")),
        )

    def resume_point(
        self, source: str, object_name: str, direction: Direction
    ) -> tuple[datetime | None, str | None]:
        item = self._get(self._checkpoint_pk(source, object_name, direction), "C") or {}
        return _from_iso(item.get("window_end")), item.get("position")

    def save_checkpoint(
        self,
        source: str,
        object_name: str,
        direction: Direction,
        *,
        cursor: datetime | None,
        expected_rev: int,
        window_end: datetime | None = None,
        position: str | None = None,
    ) -> int:
        from botocore.exceptions import ClientError

        values = {
            ":rev": {"N": str(expected_rev)},
            ":next": {"N": str(expected_rev + 1)},
            ":now": {"S": _iso(datetime.now(UTC))},
        }
        names = {"#rev": "rev", "#last_run": "last_run_at"}
        sets = ["#rev = :next", "#last_run = :now"]
        removes = []
        for name, value in (
            ("cursor", _iso(cursor)),
            ("window_end", _iso(window_end)),
            ("position", position),
        ):
            names[f"#{name}"] = name  # `cursor` and `position` are DynamoDB reserved words
            if value is None:
                removes.append(f"#{name}")
            else:
                sets.append(f"#{name} = :{name}")
                values[f":{name}"] = {"S": value}
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        self.requests_made += 1
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": self._checkpoint_pk(source, object_name, direction)}, "sk": {"S": "C"}},
                UpdateExpression=expression,
                ConditionExpression="attribute_not_exists(#rev) OR #rev = :rev",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise CheckpointConflict(
                    f"the {object_name} {direction.value} checkpoint of {source} moved on"
                ) from None
            raise
        return expected_rev + 1

    def mark_synced(self, source: str, object_name: str, direction: Direction, at: datetime) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": self._checkpoint_pk(source, object_name, direction)}, "sk": {"S": "C"}},
                UpdateExpression="SET last_synced_at = :at",
                ConditionExpression="attribute_not_exists(last_synced_at) OR last_synced_at < :at",
                ExpressionAttributeValues={":at": {"S": _iso(at)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    # ------------------------------------------------------------------------------ leases

    def acquire_lease(self, name: str, owner: str, seconds: int) -> LeaseGrant | None:
        from botocore.exceptions import ClientError

        now = int(time.time())
        self.requests_made += 1
        try:
            answer = self.client.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": f"L#{name}"},
                    "sk": {"S": "L"},
                    "owner": {"S": owner},
                    "lease_until": {"N": str(now + seconds)},
                },
                ConditionExpression="attribute_not_exists(pk) OR lease_until < :now OR #owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":now": {"N": str(now)}, ":owner": {"S": owner}},
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        previous = answer.get("Attributes", {}).get("owner", {}).get("S")
        # A run releases its lease when it ends, even when it fails: one still there expired unreleased.
        return LeaseGrant(after_crash=previous is not None and previous != owner)

    def release_lease(self, name: str, owner: str) -> None:
        from botocore.exceptions import ClientError

        self.requests_made += 1
        try:
            self.client.delete_item(
                TableName=self.table,
                Key={"pk": {"S": f"L#{name}"}, "sk": {"S": "L"}},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    # ------------------------------------------------------------------------------ sync log

    def write_log(self, entries: Sequence[SyncLogEntry]) -> None:
        items = [self._log_item(entry, n) for n, entry in enumerate(entries)]
        for start in range(0, len(items), BATCH_WRITE_LIMIT):
            self._batch_write(
                [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_LIMIT]]
            )

    def _log_item(self, entry: SyncLogEntry, n: int) -> dict[str, Any]:
        at = entry.at.astimezone(UTC)
        stamp = at.isoformat(timespec="microseconds")
        return self._item(
            {
                "pk": f"LOG#{entry.object}#{at.date().isoformat()}",
                "sk": f"{stamp}#{entry.direction.value}#{entry.record_id}#{n}{random.randrange(1000):03d}",
                "gsi1pk": f"REC#{entry.source}#{entry.object}#{entry.record_id}",
                "gsi1sk": stamp,
                "expires_at": int((at + self._log_ttl).timestamp()),
                **entry.model_dump(mode="json", exclude_none=True),
            }
        )

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {self.table: requests}
        attempt = 0
        while pending:
            self.requests_made += 1
            response = self.client.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if pending:
                attempt += 1
                _pause(attempt)

    def query_log(
        self, object_name: str, *, start: datetime, end: datetime, limit: int
    ) -> list[SyncLogEntry]:
        """An object's sync-log entries in [start, end), newest first, at most `limit`."""
        found: list[SyncLogEntry] = []
        day = end.astimezone(UTC).date()
        first = start.astimezone(UTC).date()
        while day >= first and len(found) < limit:
            found.extend(
                self._query(
                    KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
                    ExpressionAttributeValues={
                        ":pk": {"S": f"LOG#{object_name}#{day.isoformat()}"},
                        ":low": {"S": _iso(start)},
                        ":high": {"S": _iso(end)},
                    },
                    ScanIndexForward=False,
                    limit=limit - len(found),
                )
            )
            day -= timedelta(days=1)
        return [entry for entry in found if entry.at < end]

    def record_log(self, source: str, object_name: str, record_id: str, *, limit: int) -> list[SyncLogEntry]:
        """One record's sync-log entries, newest first."""
        return self._query(
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"REC#{source}#{object_name}#{record_id}"}},
            ScanIndexForward=False,
            limit=limit,
        )

    def _query(self, *, limit: int, **request: Any) -> list[SyncLogEntry]:
        entries: list[SyncLogEntry] = []
        start_key = None
        while len(entries) < limit:
            page = {**request, "TableName": self.table, "Limit": min(1000, limit - len(entries))}
            if start_key:
                page["ExclusiveStartKey"] = start_key
            self.requests_made += 1
            response = self.client.query(**page)
            for item in response.get("Items", []):
                plain = self._plain(item)
                entries.append(
                    SyncLogEntry.model_validate({k: v for k, v in plain.items() if k in _LOG_FIELDS})
                )
            start_key = response.get("LastEvaluatedKey")
            if not start_key:
                break
        return entries

    # ------------------------------------------------------------------------------ outcome counters

    def add_outcome_counts(self, counts: OutcomeCounts) -> None:
        for (object_name, direction, hour), outcomes in counts.items():
            added = {outcome: n for outcome, n in outcomes.items() if n}
            if not added:
                continue
            names = {f"#{outcome.value}": outcome.value for outcome in added}
            values: dict[str, Any] = {f":{outcome.value}": {"N": str(n)} for outcome, n in added.items()}
            values[":expires"] = {"N": str(int((hour + STATS_KEPT).timestamp()))}
            self.requests_made += 1
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"STAT#{object_name}#{direction.value}"}, "sk": {"S": _hour_key(hour)}},
                UpdateExpression="ADD "
                + ", ".join(f"#{o.value} :{o.value}" for o in added)
                + " SET expires_at = :expires",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )

    def outcome_counts(self, object_name: str, direction: Direction, since: datetime) -> dict[Outcome, int]:
        """Record outcomes of an object and direction in the hours from `since` (its hour included)."""
        totals: dict[Outcome, int] = {}
        start_key = None
        while True:
            request: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk AND sk >= :since",
                "ExpressionAttributeValues": {
                    ":pk": {"S": f"STAT#{object_name}#{direction.value}"},
                    ":since": {"S": _hour_key(since)},
                },
            }
            if start_key:
                request["ExclusiveStartKey"] = start_key
            self.requests_made += 1
            response = self.client.query(**request)
            for item in response.get("Items", []):
                plain = self._plain(item)
                for outcome in Outcome:
                    if outcome.value in plain:
                        totals[outcome] = totals.get(outcome, 0) + int(plain[outcome.value])
            start_key = response.get("LastEvaluatedKey")
            if not start_key:
                return totals

    # ------------------------------------------------------------------------------ Salesforce API usage

    def record_api_usage(self, used: int, limit: int, at: datetime) -> None:
        self.requests_made += 1
        self.client.put_item(
            TableName=self.table,
            Item=self._item({"pk": "U#salesforce", "sk": "U", "used": used, "limit": limit, "at": _iso(at)}),
        )

    def api_usage(self) -> ApiUsage | None:
        item = self._get("U#salesforce", "U")
        if item is None:
            return None
        at = _from_iso(item.get("at"))
        assert at is not None
        return ApiUsage(used=int(item["used"]), limit=int(item["limit"]), at=at)

    # ------------------------------------------------------------------------------ stream progress

    def stream_state(self, source: str, stream_object: str, direction: Direction) -> StreamState | None:
        item = self._get(self._checkpoint_pk(source, stream_object, direction), "C")
        if item is None:
            return None
        total = item.get("total")
        return StreamState(
            cursor=_from_iso(item.get("cursor")),
            last_synced_at=_from_iso(item.get("last_synced_at")),
            last_run_at=_from_iso(item.get("last_run_at")),
            window_end=_from_iso(item.get("window_end")),
            position=item.get("position"),
            since=_from_iso(item.get("since")),
            started_at=_from_iso(item.get("started_at")),
            finished_at=_from_iso(item.get("finished_at")),
            records_done=int(item.get("records_done", 0)),
            total=None if total is None else int(total),
            run_id=item.get("run_id"),
            batch_size=int(item["batch_size"]) if item.get("batch_size") else None,
        )

    def start_stream(
        self,
        source: str,
        stream_object: str,
        direction: Direction,
        *,
        since: datetime | None,
        total: int | None,
        at: datetime,
        run_id: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        """Record what an operator stream was asked for, and reset its progress."""
        names = {
            f"#{name}": name
            for name in (
                "records_done",
                "started_at",
                "finished_at",
                "since",
                "total",
                "run_id",
                "batch_size",
            )
        }
        values: dict[str, Any] = {":zero": {"N": "0"}, ":at": {"S": _iso(at)}}
        sets = ["#records_done = :zero", "#started_at = :at"]
        removes = ["#finished_at"]
        for name, value in (
            ("since", _iso(since)),
            ("total", total),
            ("run_id", run_id),
            ("batch_size", batch_size),
        ):
            if value is None:
                removes.append(f"#{name}")
            else:
                sets.append(f"#{name} = :{name}")
                values[f":{name}"] = self._ser.serialize(value)
        self.requests_made += 1
        self.client.update_item(
            TableName=self.table,
            Key={"pk": {"S": self._checkpoint_pk(source, stream_object, direction)}, "sk": {"S": "C"}},
            UpdateExpression="SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def add_stream_progress(
        self, source: str, stream_object: str, direction: Direction, records: int
    ) -> None:
        self.requests_made += 1
        self.client.update_item(
            TableName=self.table,
            Key={"pk": {"S": self._checkpoint_pk(source, stream_object, direction)}, "sk": {"S": "C"}},
            UpdateExpression="ADD records_done :n",
            ExpressionAttributeValues={":n": {"N": str(records)}},
        )

    def finish_stream(self, source: str, stream_object: str, direction: Direction, at: datetime) -> None:
        self.requests_made += 1
        self.client.update_item(
            TableName=self.table,
            Key={"pk": {"S": self._checkpoint_pk(source, stream_object, direction)}, "sk": {"S": "C"}},
            UpdateExpression="SET finished_at = :at",
            ExpressionAttributeValues={":at": {"S": _iso(at)}},
        )


def _hour_key(moment: datetime) -> str:
    return "H#" + moment.astimezone(UTC).strftime("%Y-%m-%dT%H")


def _pause(attempt: int) -> None:
    time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
