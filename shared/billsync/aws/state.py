"""billsync's state in one DynamoDB table: cross-references, checkpoints, leases and the sync log.

Items (pk / sk):
* `X#<source>#<object>#B#<billing id>` / `X` and `X#<object>#S#<salesforce id>` / `X`: the two faces
  of one record's cross-reference, written together, each carrying the whole state so that a
  lookup from either side is one read. Writes are conditional on the revision read (`rev`).
* `C#<source>#<object>#<direction>` / `C`: a pull checkpoint (cursor, revision, resume point) and the
  last time the object synced in that direction.
* `L#<name>` / `L`: a run lease, so two scheduled runs of one stream never overlap.
* `LOG#<object>#<day>` / `<time>#…`: one sync-log entry per record outcome, with a TTL; the index
  `gsi1` (`REC#<source>#<object>#<id>`, time) finds a record's history.

Reads are batched (BatchGetItem, 100 keys) and writes are batched or transactional (BatchWriteItem
25 items, TransactWriteItems 100), with unprocessed items retried.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from billsync.domain.models import Checkpoint, Direction, Side, SyncLogEntry, XrefState
from billsync.ports import XrefKey, XrefWrite

BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
TRANSACT_LIMIT = 100


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

            self._client = boto3.client("dynamodb")
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
        """Run one transaction; the ids (`id()`) of the writes whose condition failed."""
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

    def acquire_lease(self, name: str, owner: str, seconds: int) -> bool:
        from botocore.exceptions import ClientError

        now = int(time.time())
        self.requests_made += 1
        try:
            self.client.put_item(
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
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

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


def _pause(attempt: int) -> None:
    time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
