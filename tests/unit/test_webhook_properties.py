"""Fuzzing the webhook use case: whatever arrives — any body, headers, signature or source — the answer
is 202 or a clear 4xx with its reason, never a 5xx and never an unhandled exception."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from billsync.config import parse_config
from billsync.connectors import build_connector
from billsync.connectors.base import BillingConnector, ConnectorContext
from billsync.ports import Envelope
from billsync.usecases.webhook import WebhookAnswer, accept_webhook
from hypothesis import given
from hypothesis import strategies as st

SECRETS = ["whsec_new", "whsec_old"]  # a rotation in progress: both sign valid webhooks
NOW = datetime(2026, 6, 1, tzinfo=UTC)
CONFIG = parse_config(
    {
        "salesforce": {"secret": "sf"},
        "sources": [{"key": "main", "connector": "invoiced", "secret": "inv", "settings": {}}],
        "webhooks": {"max_body_bytes": 4096},
    }
)
CONNECTOR = build_connector(
    "invoiced", ConnectorContext(source_key="main", settings={}, secret={"api_key": "k"})
)
OBJECTS = ["invoice", "customer", "contact", "note", "credit_note", "payment", "task", "subscription"]
ACTIONS = ["created", "updated", "deleted", "paid", "voided", "x"]


class RecordingQueues:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Envelope]] = []

    def send(self, object_name: str, envelopes: Sequence[Envelope]) -> None:
        self.sent.extend((object_name, e) for e in envelopes)

    def dead_letter(self, object_name: str, letters: Sequence[Any]) -> None:
        raise AssertionError("the webhook function never dead-letters")

    def delay(self, object_name: str, receipt_handle: str, seconds: int) -> bool:
        raise AssertionError("the webhook function never delays")


def once() -> Callable[[str, Callable[[], None]], None]:
    seen: set[str] = set()

    def deduplicate(key: str, action: Callable[[], None]) -> None:
        if key not in seen:
            seen.add(key)
            action()

    return deduplicate


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a plausible value, sometimes anything at all."""
    return st.one_of(valid, valid, valid, json_values)


timestamps = mostly(
    st.integers(min_value=int(NOW.timestamp()) - 400_000, max_value=int(NOW.timestamp()) + 1000)
)
records = st.fixed_dictionaries(
    {
        "id": mostly(st.integers(min_value=1, max_value=10**6)),
        "customer": mostly(st.integers(min_value=1, max_value=999)),
        "updated_at": timestamps,
    },
    optional={
        "object": st.sampled_from(OBJECTS),
        "created_at": timestamps,
        "status": mostly(st.sampled_from(["draft", "paid", "voided", "x"])),
        "total": mostly(
            st.integers(min_value=0) | st.decimals(allow_nan=False, allow_infinity=False).map(str)
        ),
        "items": st.lists(
            st.dictionaries(st.sampled_from(["id", "name", "quantity", "unit_cost"]), json_values)
        ),
        "name": json_values,
        "notes": json_values,
    },
)
event_types = st.builds(lambda o, a: f"{o}.{a}", st.sampled_from(OBJECTS), st.sampled_from(ACTIONS))
events = st.fixed_dictionaries(
    {
        "id": mostly(st.integers(min_value=1)),
        "type": mostly(event_types),
        "timestamp": timestamps,
        "data": mostly(st.fixed_dictionaries({"object": records})),
    }
).flatmap(
    # and sometimes without one of its keys
    lambda event: st.sampled_from([None, None, None, *event]).map(
        lambda dropped: {k: v for k, v in event.items() if k != dropped}
    )
)
bodies = st.one_of(
    events.map(lambda e: json.dumps(e).encode()),
    events.map(lambda e: json.dumps(e).encode()),
    events.map(lambda e: json.dumps(e).encode()),
    st.binary(max_size=600),
    st.text(max_size=300).map(str.encode),
    st.integers(min_value=4000, max_value=9000).map(lambda n: b"{" + b" " * n + b"}"),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, str], bytes]:
    body = draw(bodies)
    valid = st.sampled_from(SECRETS).map(lambda s: hmac.new(s.encode(), body, hashlib.sha256).hexdigest())
    signature = draw(st.one_of(valid, valid, st.text(max_size=70), st.just(None)))
    headers = draw(st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=3))
    if signature is not None:
        name = draw(st.sampled_from(["X-Invoiced-Signature", "x-invoiced-signature", "X-INVOICED-SIGNATURE"]))
        headers[name] = signature
    source = draw(st.sampled_from(["main", "main", "main", "main", "nowhere", ""]))
    return source, headers, body


def answer(source: str, headers: Mapping[str, str], body: bytes, queues: RecordingQueues) -> WebhookAnswer:
    def connector_for(key: str) -> BillingConnector:
        assert key == "main"
        return CONNECTOR

    return accept_webhook(
        config=CONFIG,
        source_key=source,
        headers=headers,
        body=body,
        connector_for=connector_for,
        secret_for=lambda name, refresh: {"webhook_secrets": SECRETS},
        queues=queues,
        deduplicate=once(),
        now=NOW,
    )


@given(requests())
def test_every_webhook_gets_202_or_a_clear_4xx(request: tuple[str, dict[str, str], bytes]) -> None:
    source, headers, body = request
    queues = RecordingQueues()
    result = answer(source, headers, body, queues)
    assert result.status in {202, 400, 401, 404, 413}
    if result.status == 202:
        assert set(result.body) == {"queued", "ignored"}
        assert result.body["queued"] == len(queues.sent)
    else:
        assert isinstance(result.body["error"], str) and result.body["error"]
        assert queues.sent == []
    json.dumps(result.body)  # every answer can be sent as JSON


@given(requests())
def test_only_a_correct_signature_gets_past_the_door(request: tuple[str, dict[str, str], bytes]) -> None:
    source, headers, body = request
    signature = next((v for k, v in headers.items() if k.lower() == "x-invoiced-signature"), None)
    valid = {hmac.new(s.encode(), body, hashlib.sha256).hexdigest() for s in SECRETS}
    result = answer(source, headers, body, RecordingQueues())
    if source != "main":
        assert result.status == 404
    elif len(body) > CONFIG.webhooks.max_body_bytes:
        assert result.status == 413
    elif signature is None or signature.lower() not in valid:
        assert result.status == 401
    else:
        assert result.status in {202, 400}


@given(events.map(lambda e: json.dumps(e).encode()))
def test_a_repeated_delivery_queues_nothing_more(body: bytes) -> None:
    headers = {"X-Invoiced-Signature": hmac.new(SECRETS[0].encode(), body, hashlib.sha256).hexdigest()}
    queues = RecordingQueues()
    deduplicate = once()

    def deliver() -> WebhookAnswer:
        return accept_webhook(
            config=CONFIG,
            source_key="main",
            headers=headers,
            body=body,
            connector_for=lambda key: CONNECTOR,
            secret_for=lambda name, refresh: {"webhook_secrets": SECRETS},
            queues=queues,
            deduplicate=deduplicate,
            now=NOW,
        )

    first = deliver()
    sent = len(queues.sent)
    second = deliver()
    assert second.status == first.status
    assert len(queues.sent) == sent
