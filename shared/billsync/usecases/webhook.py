"""Accept a billing webhook: verify it, validate it, and queue each change for its object.

Answers:
* 202 with how many changes were queued and how many events were ignored (billsync does not sync that
  object, or the object is switched off or set to manual);
* 401 for an unsigned or forged request (the signature is checked in constant time; when no configured
  secret matches, the secret is read again once, so a rotated secret works without a redeploy);
* 400 with the reason for a malformed request or an event older than the replay window;
* 404 for an unknown source or a source whose billing system has no webhooks; 413 for an oversized body.
It never calls Salesforce: a Salesforce outage never loses a webhook.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from billsync.config import Config
from billsync.connectors.base import BillingConnector, MalformedWebhook, WebhookEvent
from billsync.domain.models import Change, Direction
from billsync.ports import Envelope, QueuePort
from billsync.usecases.outcomes import envelope

SecretFetcher = Callable[[str, bool], Mapping[str, Any]]  # (secret name, refresh) -> secret
Deduplicator = Callable[
    [str, Callable[[], None]], None
]  # (idempotency key, action) -> runs action at most once


@dataclass
class WebhookAnswer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)


def webhook_secrets(secret: Mapping[str, Any]) -> list[str]:
    """The secrets a source's webhooks may be signed with: several while one is being rotated."""
    value = secret.get("webhook_secrets", secret.get("webhook_secret"))
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return []


def accept_webhook(
    *,
    config: Config,
    source_key: str,
    headers: Mapping[str, str],
    body: bytes,
    connector_for: Callable[[str], BillingConnector],
    secret_for: SecretFetcher,
    queues: QueuePort,
    deduplicate: Deduplicator,
    now: datetime,
) -> WebhookAnswer:
    source = config.by_key.get(source_key)
    if source is None:
        return WebhookAnswer(404, {"error": "unknown source"})
    if len(body) > config.webhooks.max_body_bytes:
        return WebhookAnswer(
            413, {"error": f"the body is larger than {config.webhooks.max_body_bytes} bytes"}
        )
    connector = connector_for(source_key)
    if connector.webhooks is None:
        return WebhookAnswer(404, {"error": "this source's billing system sends no webhooks"})
    if not _verified(connector, source.secret, headers, body, secret_for):
        return WebhookAnswer(401, {"error": "the signature does not match"})
    try:
        events = connector.webhooks.parse(headers, body)
    except MalformedWebhook as exc:
        return WebhookAnswer(400, {"error": str(exc)})
    oldest = now - timedelta(seconds=config.webhooks.replay_window_seconds)
    for event in events:
        if event.occurred_at is not None and event.occurred_at < oldest:
            return WebhookAnswer(400, {"error": f"event {event.id} is older than the replay window"})
    queued, ignored = _route(config, connector, source_key, events, queues, deduplicate)
    return WebhookAnswer(202, {"queued": queued, "ignored": ignored})


def _verified(
    connector: BillingConnector,
    secret_name: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: SecretFetcher,
) -> bool:
    assert connector.webhooks is not None
    for refresh in (False, True):
        secrets = webhook_secrets(secret_for(secret_name, refresh))
        if secrets and connector.webhooks.verify(headers, body, secrets):
            return True
    return False


def _route(
    config: Config,
    connector: BillingConnector,
    source_key: str,
    events: Sequence[WebhookEvent],
    queues: QueuePort,
    deduplicate: Deduplicator,
) -> tuple[int, int]:
    queued = ignored = 0
    for event in events:
        support = connector.objects.get(event.object) if event.object else None
        record = event.record
        if support is None or record is None or not config.object_automatic(support.name):
            ignored += 1
            continue
        change = Change(
            source=source_key,
            object=support.name,
            direction=Direction.TO_SALESFORCE,
            id=record.id,
            parent=record.parents.get(support.parent) if support.parent else None,
            version=record.version,
            deleted=record.state.value == "deleted",
            record=None if support.sensitive else record.data,
            event_id=event.id,
            cause="webhook",
        )
        item: Envelope = envelope(change, support)

        def send(object_name: str = support.name, item: Envelope = item) -> None:
            queues.send(object_name, [item])

        deduplicate(f"{source_key}:{event.id}", send)
        queued += 1
    return queued, ignored
