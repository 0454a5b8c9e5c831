"""Invoiced webhooks: X-Invoiced-Signature checked in constant time; bodies parsed or refused with a reason."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from billsync.connectors.base import ConnectorContext, MalformedWebhook
from billsync.connectors.invoiced import build
from billsync.domain.models import RecordState

SECRET = "whsec_test"


@pytest.fixture
def connector():
    return build(
        ConnectorContext(
            source_key="main", settings={"base_url": "https://127.0.0.1:9"}, secret={"api_key": "k"}
        )
    )


def sign(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Invoiced-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def event(**overrides: object) -> bytes:
    base = {
        "id": 90001,
        "object": "event",
        "type": "invoice.paid",
        "timestamp": 1717000000,
        "data": {
            "object": {
                "id": 4401,
                "object": "invoice",
                "customer": 3100,
                "status": "paid",
                "updated_at": 1717000000,
            }
        },
    }
    return json.dumps({**base, **overrides}).encode()


def test_a_signed_body_verifies_and_any_change_does_not(connector) -> None:
    body = event()
    assert connector.webhooks.verify(sign(body), body, [SECRET])
    assert not connector.webhooks.verify(sign(body), body + b" ", [SECRET])
    assert not connector.webhooks.verify(sign(body, "other"), body, [SECRET])
    assert not connector.webhooks.verify({}, body, [SECRET])
    assert not connector.webhooks.verify(sign(body), body, [])


def test_either_secret_verifies_while_one_rotates(connector) -> None:
    body = event()
    assert connector.webhooks.verify(sign(body, "old"), body, ["new", "old"])
    assert connector.webhooks.verify(
        {"x-invoiced-signature": sign(body, "new")["X-Invoiced-Signature"].upper()}, body, ["new"]
    )


def test_an_event_becomes_a_record_of_its_object(connector) -> None:
    [parsed] = connector.webhooks.parse({}, event())
    assert parsed.id == "90001"
    assert parsed.object == "invoice"
    assert parsed.record.id == "4401"
    assert parsed.record.parents == {"customer": "3100"}
    assert parsed.record.version.timestamp() == 1717000000


def test_deletions_and_voids_are_stated(connector) -> None:
    [deleted] = connector.webhooks.parse({}, event(type="invoice.deleted", timestamp=1717000100))
    assert deleted.record.state is RecordState.DELETED
    assert deleted.record.version.timestamp() == 1717000100
    voided = {"id": 4401, "object": "invoice", "customer": 3100, "status": "voided", "updated_at": 1717000000}
    [void] = connector.webhooks.parse({}, event(type="invoice.updated", data={"object": voided}))
    assert void.record.state is RecordState.VOIDED


def test_events_of_objects_not_synced_to_salesforce_are_ignored_not_refused(connector) -> None:
    task = {"id": 5, "object": "task", "updated_at": 1717000000}
    [ignored] = connector.webhooks.parse({}, event(type="task.completed", data={"object": task}))
    assert ignored.object is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"type": "invoice.paid", "data": {"object": {"id": 1}}}).encode(), "no id"),
        (json.dumps({"id": 1, "data": {"object": {"id": 1}}}).encode(), "no type"),
        (json.dumps({"id": 1, "type": "invoice.paid"}).encode(), "no data.object"),
        (
            json.dumps({"id": 1, "type": "invoice.paid", "data": {"object": {"id": 1}}}).encode(),
            "not a valid invoice",
        ),
        (
            json.dumps(
                {"id": 1, "type": "invoice.paid", "timestamp": "soon", "data": {"object": {"id": 1}}}
            ).encode(),
            "timestamp",
        ),
    ],
)
def test_malformed_bodies_are_refused_with_the_reason(connector, body: bytes, reason: str) -> None:
    with pytest.raises(MalformedWebhook, match=reason):
        connector.webhooks.parse({}, body)
