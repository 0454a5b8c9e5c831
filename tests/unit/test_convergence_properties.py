"""Order does not matter: any interleaving of duplicated and reordered events of one invoice, delivered
in batches of any size, leaves Salesforce exactly as applying only its latest version would.

The use case runs for real (apply_to_salesforce with the Invoiced connector and its mapping) against
the real DynamoDB adapter on the AWS stand-in; Salesforce is an in-memory fake that upserts by
external id, the only behaviour this property depends on.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from billsync.aws.state import DynamoState
from billsync.config import parse_config
from billsync.domain.models import Change, Direction, Outcome
from billsync.mappings import MappingSet
from billsync.ports import SfDelete, SfUpdate, SfUpsert, SfWriteResult, WritePlan
from billsync.usecases.context import SyncContext
from billsync.usecases.to_salesforce import apply_to_salesforce
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

NOW = datetime(2026, 6, 1, tzinfo=UTC)
BASE = 1_780_000_000
CONFIG = parse_config(
    {
        "salesforce": {"secret": "sf"},
        "sources": [{"key": "main", "connector": "invoiced", "secret": "inv", "settings": {}}],
    }
)
MAPPINGS = MappingSet()


@dataclass
class InMemorySalesforce:
    """Upserts by external id, updates and deletes by id; ids derive from external ids (comparable)."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> fields

    def write(self, plan: WritePlan) -> dict[str, SfWriteResult]:
        results = {}
        for stage in plan.stages:
            for write in stage:
                if isinstance(write, SfUpsert):
                    record_id = f"{write.object}/{write.fields[write.external_id_field]}"
                    created = record_id not in self.rows
                    self.rows.setdefault(record_id, {"object": write.object}).update(write.fields)
                    results[write.key] = SfWriteResult(write.key, ok=True, id=record_id, created=created)
                elif isinstance(write, SfUpdate):
                    self.rows[write.id].update(write.fields)
                    results[write.key] = SfWriteResult(write.key, ok=True, id=write.id)
                elif isinstance(write, SfDelete):
                    self.rows.pop(write.id, None)
                    results[write.key] = SfWriteResult(write.key, ok=True, id=write.id)
        return results

    def query(self, soql: str, *, include_deleted: bool = False) -> Iterator[dict[str, Any]]:
        raise AssertionError("applying billing changes reads nothing from Salesforce")

    def org_id(self) -> str:
        return "00D000000000001AAA"

    def field_names(self, sobject: str) -> set[str]:
        raise AssertionError("not needed")

    def api_usage(self) -> tuple[int, int] | None:
        return None


class Secrets:
    def get_json(self, name: str, *, refresh: bool = False) -> dict[str, Any]:
        return {"api_key": "k"}


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("dynamodb", region_name="us-east-1")


def fresh_context(dynamodb: Any) -> tuple[SyncContext, InMemorySalesforce]:
    name = f"state-{uuid.uuid4().hex}"
    key = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk")],
        KeySchema=key,
    )
    salesforce = InMemorySalesforce()
    ctx = SyncContext(
        config=CONFIG,
        state=DynamoState(name, client=dynamodb),
        salesforce=salesforce,
        secrets=Secrets(),
        mappings=MAPPINGS,
        clock=lambda: NOW,
    )
    return ctx, salesforce


lines = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.sampled_from([11, 12, 13]),
            "name": st.sampled_from(["Plan", "Setup", "Seats"]),
            "quantity": st.integers(min_value=1, max_value=5),
            "unit_cost": st.sampled_from(["9.99", "100", "0.5"]),
        }
    ),
    max_size=3,
    unique_by=lambda line: line["id"],
)
versions = st.lists(
    st.fixed_dictionaries(
        {
            "status": st.sampled_from(["draft", "sent", "paid", "voided"]),
            "total": st.integers(min_value=0, max_value=10_000),
            "notes": st.text(max_size=20),
            "purchase_order": st.sampled_from(["PO-1", "PO-2", None]),
            "items": lines,
        }
    ),
    min_size=1,
    max_size=4,
)


def payload(index: int, version: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": 4401,
        "object": "invoice",
        "customer": 3100,
        "number": "INV-0001",
        "currency": "usd",
        "created_at": BASE,
        "updated_at": BASE + 60 * index,
        **version,
    }


def change(index: int, version: dict[str, Any]) -> Change:
    record = payload(index, version)
    return Change(
        source="main",
        object="invoice",
        direction=Direction.TO_SALESFORCE,
        id="4401",
        parent="3100",
        version=datetime.fromtimestamp(record["updated_at"], UTC),
        record=record,
        event_id=f"evt-{index}",
        cause="webhook",
    )


def apply(ctx: SyncContext, batches: Sequence[Sequence[Change]]) -> None:
    for batch in batches:
        results = apply_to_salesforce(ctx, "main", "invoice", list(batch))
        assert all(r.outcome is not Outcome.FAILED for r in results), results


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """Versions of one invoice, and their deliveries: each at least once, some twice, in any order,
    cut into batches of any size."""
    history = draw(versions)
    extra = draw(st.lists(st.integers(min_value=0, max_value=len(history) - 1), max_size=4))
    order = draw(st.permutations([*range(len(history)), *extra]))
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=max(1, len(order) - 1)), max_size=3)))
    bounds = [0, *[c for c in cuts if c < len(order)], len(order)]
    return history, [order[a:b] for a, b in itertools.pairwise(bounds) if a < b]


@given(deliveries())
def test_any_interleaving_converges_to_the_latest_version(dynamodb: Any, case: Any) -> None:
    history, batches = case
    ctx, salesforce = fresh_context(dynamodb)
    apply(ctx, [[change(i, history[i]) for i in batch] for batch in batches])

    latest = len(history) - 1
    expected_ctx, expected = fresh_context(dynamodb)
    apply(expected_ctx, [[change(latest, history[latest])]])
    assert content(salesforce.rows) == content(expected.rows)
    stamp = salesforce.rows["Billing_Invoice__c/main:4401"]["Billing_Updated_At__c"]
    # A later version with the same content is skipped as unchanged: the stamp stays on the first of them.
    same = [i for i, v in enumerate(history) if v == history[latest]]
    assert stamp in {datetime.fromtimestamp(BASE + 60 * i, UTC) for i in same}


def content(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: {f: v for f, v in row.items() if f != "Billing_Updated_At__c"} for k, row in rows.items()}
