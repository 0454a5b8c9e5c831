"""Rotating a source's webhook secret without downtime: while both are listed in the secret, webhooks
signed with either are accepted (a warm function re-reads the secret when a signature matches none
it knows); once the old one is removed, it is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import requests

from local.stack import STAGE, DevStack

NEW_SECRET = "whsec_rotated_" + "7" * 24


def post(stack: DevStack, secret: str, event_id: int) -> requests.Response:
    assert stack.runtime
    # An event of an object billsync does not sync: accepted and ignored, nothing else happens.
    body = json.dumps(
        {"id": event_id, "type": "task.created", "timestamp": int(time.time()), "data": {"object": {"id": 5}}}
    ).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return requests.post(
        stack.webhook_url,
        data=body,
        headers={"Content-Type": "application/json", "X-Invoiced-Signature": signature},
        timeout=10,
    )


def put_webhook_secrets(stack: DevStack, secrets: list[str]) -> None:
    assert stack.runtime
    client = stack.runtime.boto3_client("secretsmanager")
    name = f"billsync/{STAGE}/invoiced/main"
    value = json.loads(client.get_secret_value(SecretId=name)["SecretString"])
    client.put_secret_value(SecretId=name, SecretString=json.dumps({**value, "webhook_secrets": secrets}))


def test_old_and_new_secrets_both_work_while_rotating_then_only_the_new(stack: DevStack) -> None:
    old = stack.settings.webhook_secret
    try:
        answer = post(stack, old, 1)
        assert (answer.status_code, answer.json()) == (202, {"queued": 0, "ignored": 1})

        put_webhook_secrets(stack, [NEW_SECRET, old])  # the rotation starts
        assert post(stack, NEW_SECRET, 2).status_code == 202  # the warm function re-reads the secret
        assert post(stack, old, 3).status_code == 202
        assert post(stack, "whsec_neither", 4).status_code == 401

        put_webhook_secrets(stack, [NEW_SECRET])  # the rotation ends
        stack.reconfigure()  # fresh environments read the secret anew
        assert post(stack, NEW_SECRET, 5).status_code == 202
        refused = post(stack, old, 6)
        assert (refused.status_code, refused.json()) == (401, {"error": "the signature does not match"})
    finally:
        put_webhook_secrets(stack, [old])
        stack.reconfigure()
