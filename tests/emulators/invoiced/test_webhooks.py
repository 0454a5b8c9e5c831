"""Webhooks: signed deliveries, Invoiced's hourly retries and disabling, and the soak-test faults."""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from typing import Any

from local.invoiced import InvoicedEmulator
from tests.emulators.invoiced.conftest import Api, Receiver

HOUR = 3600


def _customer(api: Api, name: str = "Acme") -> dict[str, Any]:
    return api.create("/customers", {"name": name})


def _attempts(invoiced: InvoicedEmulator) -> list[dict[str, Any]]:
    return [d for d in invoiced.control.deliveries() if not d["duplicate"]]


def test_delivery_is_the_signed_event_object(
    invoiced: InvoicedEmulator, api: Api, receiver: Receiver
) -> None:
    invoiced.control.add_webhook(receiver.url, secret="whsec_local_test")
    _customer(api)
    assert receiver.wait_for(1)

    delivery = receiver.received[0]
    assert delivery.headers["Content-Type"] == "application/json"
    assert delivery.headers["User-Agent"] == "Invoiced/1.0"
    expected = hmac.new(b"whsec_local_test", delivery.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, delivery.headers["X-Invoiced-Signature"])
    event = delivery.json()
    assert event == api.ok(api.get(f"/events/{event['id']}"))
    assert event["type"] == "customer.created"
    invoiced.control.wait_for_deliveries()
    log = invoiced.control.deliveries()
    assert [(d["event"], d["attempt"], d["status"], d["succeeded"]) for d in log] == [
        (event["id"], 1, 200, True)
    ]


def test_a_generated_secret_signs_too(invoiced: InvoicedEmulator, api: Api, receiver: Receiver) -> None:
    endpoint = invoiced.control.add_webhook(receiver.url)
    secret = invoiced.control.webhook_secret(endpoint)
    assert len(secret) == 32
    _customer(api)
    assert receiver.wait_for(1)
    body = receiver.received[0].body
    assert (
        receiver.received[0].headers["X-Invoiced-Signature"]
        == hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    )


def test_deliveries_follow_event_order(invoiced: InvoicedEmulator, api: Api, receiver: Receiver) -> None:
    invoiced.control.add_webhook(receiver.url)
    for i in range(6):
        _customer(api, f"Customer {i}")
    assert receiver.wait_for(6)
    ids = [e["id"] for e in receiver.events()]
    assert ids == sorted(ids)


def test_failed_attempts_are_retried_every_hour(
    manual: InvoicedEmulator, api: Api, receiver: Receiver
) -> None:
    receiver.answer(then=500)
    manual.control.add_webhook(receiver.url)
    _customer(api)

    assert [d["status"] for d in manual.control.deliver_due()] == [500]
    manual.control.advance_clock(HOUR - 5)
    assert manual.control.deliver_due() == []
    manual.control.advance_clock(5)
    second = manual.control.deliver_due()
    assert [(d["attempt"], d["status"]) for d in second] == [(2, 500)]

    first_at, second_at = (d["timestamp"] for d in manual.control.deliveries())
    assert HOUR <= second_at - first_at <= HOUR + 2
    assert second[0]["next_attempt"] >= second_at + HOUR - 1


def test_forty_eight_failures_disable_the_endpoint(
    manual: InvoicedEmulator, api: Api, receiver: Receiver
) -> None:
    receiver.answer(then=503)
    endpoint = manual.control.add_webhook(receiver.url)
    _customer(api)

    for _ in range(50):
        manual.control.deliver_due()
        manual.control.advance_clock(HOUR)

    attempts = manual.control.deliveries()
    assert [d["attempt"] for d in attempts] == list(range(1, 49))
    assert attempts[-1]["disabled"] is True
    assert attempts[-1]["next_attempt"] is None
    assert all(d["next_attempt"] is not None for d in attempts[:-1])
    status = next(w for w in manual.control.webhooks() if w["id"] == endpoint)
    assert (status["enabled"], status["disabled_reason"]) == (False, "48 failed attempts")
    assert len(receiver.received) == 48

    _customer(api, "After disable")
    manual.control.advance_clock(HOUR)
    assert manual.control.deliver_due() == []
    assert manual.control.pending_deliveries() == 0

    manual.control.enable_webhook(endpoint)
    receiver.answer(then=200)
    _customer(api, "Re-enabled")
    assert [d["status"] for d in manual.control.deliver_due()] == [200]


def test_410_gone_disables_at_once_and_drops_pending(
    manual: InvoicedEmulator, api: Api, receiver: Receiver
) -> None:
    receiver.answer(410)
    endpoint = manual.control.add_webhook(receiver.url)
    _customer(api, "One")
    _customer(api, "Two")

    log = manual.control.deliver_due()
    assert [(d["status"], d["disabled"]) for d in log] == [(410, True)]
    assert log[0]["dropped"] == [manual.control.events()[1]["id"]]
    assert next(w for w in manual.control.webhooks() if w["id"] == endpoint)["disabled_reason"] == "410 Gone"
    assert len(receiver.received) == 1


def test_redirects_are_not_followed(manual: InvoicedEmulator, api: Api, receiver: Receiver) -> None:
    receiver.answer(302)
    manual.control.add_webhook(receiver.url)
    _customer(api)
    log = manual.control.deliver_due()
    assert [(d["status"], d["succeeded"]) for d in log] == [(302, False)]
    assert [r.path for r in receiver.received] == ["/webhooks/invoiced"]


def test_timeouts_and_unreachable_endpoints_are_failed_attempts(
    manual: InvoicedEmulator, api: Api, receiver: Receiver
) -> None:
    manual.control.update_settings(webhook_timeout_s=0.2)
    receiver.delay_s = 0.6
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    manual.control.add_webhook(receiver.url)
    manual.control.add_webhook(f"http://127.0.0.1:{closed_port}/hook")
    _customer(api)

    log = manual.control.deliver_due()
    assert [d["status"] for d in log] == [None, None]
    assert "Timeout" in log[0]["error"]
    assert "ConnectionError" in log[1]["error"]
    assert all(d["next_attempt"] is not None for d in log)


def test_background_retries_run_on_the_compressed_clock(
    invoiced: InvoicedEmulator, api: Api, receiver: Receiver
) -> None:
    invoiced.control.update_settings(webhook_clock_scale=HOUR * 50)  # an hour passes in 20 ms
    receiver.answer(500, 500, then=200)
    invoiced.control.add_webhook(receiver.url)
    started = time.monotonic()
    _customer(api)

    assert receiver.wait_for(3, timeout=5)
    assert time.monotonic() - started < 3
    invoiced.control.wait_for_deliveries()
    log = invoiced.control.deliveries()
    assert [(d["attempt"], d["status"]) for d in log] == [(1, 500), (2, 500), (3, 200)]
    assert log[1]["timestamp"] - log[0]["timestamp"] >= HOUR


def test_a_failed_delivery_can_be_retried_at_once(
    manual: InvoicedEmulator, api: Api, receiver: Receiver
) -> None:
    receiver.answer(500, then=200)
    manual.control.add_webhook(receiver.url)
    _customer(api)
    [failed] = manual.control.deliver_due()
    assert failed["status"] == 500 and failed["next_attempt"] is not None
    assert manual.control.deliver_due() == []  # Invoiced's own retry is an hour away
    assert manual.control.retry_failed_deliveries() == 1
    [retried] = manual.control.deliver_due()
    assert (retried["attempt"], retried["status"]) == (2, 200)
    assert manual.control.retry_failed_deliveries() == 0


def test_duplicate_deliveries(manual: InvoicedEmulator, api: Api, receiver: Receiver) -> None:
    manual.control.update_settings(duplicate_delivery_rate=1.0)
    manual.control.add_webhook(receiver.url)
    _customer(api, "One")
    _customer(api, "Two")

    log = manual.control.deliver_due()
    assert [(d["duplicate"], d["succeeded"]) for d in log] == [(False, True), (True, True)] * 2
    ids = [e["id"] for e in receiver.events()]
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[0] != ids[2]
    assert receiver.received[0].body == receiver.received[1].body


def test_out_of_order_deliveries_are_seeded(manual: InvoicedEmulator, api: Api, receiver: Receiver) -> None:
    def run() -> list[int]:
        manual.control.reset()
        manual.control.update_settings(webhook_delivery="manual", out_of_order_rate=0.5, webhook_seed=11)
        receiver.received.clear()
        manual.control.add_webhook(receiver.url)
        for i in range(8):
            _customer(api, f"Customer {i}")
        manual.control.deliver_due()
        return [e["id"] for e in receiver.events()]

    first = run()
    assert sorted(first) == [e["id"] for e in manual.control.events()]  # each event exactly once
    assert first != sorted(first)
    assert run() == first
    assert any(d["reordered"] for d in manual.control.deliveries())


def test_sandbox_endpoints_only_hear_sandbox_events(
    invoiced: InvoicedEmulator, api: Api, sandbox_api: Api, receiver: Receiver
) -> None:
    invoiced.control.add_webhook(receiver.url, account="sandbox")
    _customer(api, "Production")
    sandbox_api.create("/customers", {"name": "Sandbox"})
    assert receiver.wait_for(1)
    invoiced.control.wait_for_deliveries()
    assert [e["data"]["object"]["name"] for e in receiver.events()] == ["Sandbox"]


def test_seeding_quietly_sends_nothing(manual: InvoicedEmulator, receiver: Receiver) -> None:
    manual.control.add_webhook(receiver.url)
    manual.control.seed({"customers": [{"name": "Existing"}]})
    assert manual.control.deliver_due() == []
    manual.control.seed({"customers": [{"name": "New"}]}, quiet=False)
    assert len(manual.control.deliver_due()) == 1


def test_paused_endpoints_hold_deliveries(manual: InvoicedEmulator, api: Api, receiver: Receiver) -> None:
    endpoint = manual.control.add_webhook(receiver.url)
    manual.control.pause_webhook(endpoint)
    _customer(api)
    assert manual.control.deliver_due() == []
    manual.control.resume_webhook(endpoint)
    assert [d["status"] for d in manual.control.deliver_due()] == [200]


def test_removing_an_endpoint_deschedules_its_retries(
    manual: InvoicedEmulator, api: Api, receiver: Receiver
) -> None:
    receiver.answer(then=500)
    endpoint = manual.control.add_webhook(receiver.url)
    _customer(api)
    manual.control.deliver_due()
    assert manual.control.pending_deliveries() == 1
    manual.control.remove_webhook(endpoint)
    assert manual.control.pending_deliveries() == 0


def test_endpoints_can_subscribe_to_some_event_types(
    manual: InvoicedEmulator, api: Api, receiver: Receiver
) -> None:
    manual.control.add_webhook(receiver.url, events=["invoice.created"])
    customer = _customer(api)
    api.create("/invoices", {"customer": customer["id"], "items": [{"name": "A", "unit_cost": 1}]})
    manual.control.deliver_due()
    assert [e["type"] for e in receiver.events()] == ["invoice.created"]


def test_https_receivers_signed_by_the_local_ca(
    invoiced: InvoicedEmulator, api: Api, tls_receiver: Receiver
) -> None:
    assert tls_receiver.url.startswith("https://")
    invoiced.control.add_webhook(tls_receiver.url)
    _customer(api)
    assert tls_receiver.wait_for(1)
    invoiced.control.wait_for_deliveries()
    assert invoiced.control.deliveries()[0]["status"] == 200
