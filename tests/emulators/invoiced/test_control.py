"""The control API over HTTP (`/_emulator/...`), and the standalone command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from local.invoiced import InvoicedEmulator
from tests.emulators.invoiced.conftest import Api, Receiver


def _control(invoiced: InvoicedEmulator, base: str | None = None) -> Api:
    session = requests.Session()
    session.trust_env = False
    session.verify = invoiced.ca_file
    return Api(session, f"{base or invoiced.base_url}/_emulator")


def test_seed_with_references_act_and_dump(invoiced: InvoicedEmulator, api: Api) -> None:
    control = _control(invoiced)
    seeded = control.ok(
        control.post(
            "/seed",
            {
                "data": {
                    "customers": [
                        {
                            "ref": "acme",
                            "name": "Acme",
                            "updated_at": 1700000000,
                            "contacts": [{"name": "Nancy"}],
                        }
                    ],
                    "invoices": [
                        {"ref": "inv", "customer": "@acme", "items": [{"name": "A", "unit_cost": 25}]}
                    ],
                }
            },
        )
    )
    customer_id, invoice_id = seeded["refs"]["acme"], seeded["refs"]["inv"]
    assert api.ok(api.get(f"/customers/{customer_id}"))["updated_at"] == 1700000000
    assert len(api.ok(api.get(f"/customers/{customer_id}/contacts"))) == 1

    paid = control.ok(control.post("/act", {"action": "pay", "resource": "invoices", "id": invoice_id}))
    assert (paid["object"], paid["amount"], paid["applied_to"][0]["invoice"]) == ("payment", 25, invoice_id)
    dump = control.ok(control.get("/dump", {"resources": "invoices,payments"}))
    assert set(dump) == {"invoices", "payments"}
    assert dump["invoices"][0]["status"] == "paid"
    events = control.ok(control.get("/events"))
    assert [e["type"] for e in events] == ["payment.created", "invoice.paid"]

    refused = control.post(
        "/act", {"action": "update", "resource": "customers", "id": customer_id, "data": {"email": "x"}}
    )
    assert refused.status_code == 400
    assert refused.json()["message"] == "Email must be a valid email address"


def test_calls_faults_and_settings(invoiced: InvoicedEmulator, api: Api) -> None:
    control = _control(invoiced)
    api.get("/customers")
    assert control.ok(control.get("/calls")) == {"GET /customers": 1}

    faults = control.ok(control.patch("/faults", {"bursts": {"server_error": 1}}))
    assert faults["settings"]["bursts"] == {"server_error": 1}
    assert api.get("/customers").status_code == 500
    assert control.ok(control.get("/faults"))["injected"] == {"server_error": 1}
    assert control.patch("/faults", {"rates": {"meteor": 0.5}}).status_code == 400

    settings = control.ok(control.patch("/settings", {"concurrency_limit": 5}))
    assert settings["concurrency_limit"] == 5
    assert "api_key" not in settings
    assert control.patch("/settings", {"api_key": "x"}).status_code == 400
    assert control.ok(control.get("/requests"))[-1]["route"] == "/customers"


def test_webhooks_deliveries_clock_and_tokens(
    invoiced: InvoicedEmulator, api: Api, receiver: Receiver
) -> None:
    control = _control(invoiced)
    control.ok(control.patch("/settings", {"webhook_delivery": "manual"}))
    endpoint = control.ok(control.post("/webhooks", {"url": receiver.url, "secret": "s3cret"}), 201)
    assert (endpoint["url"], endpoint["secret"], endpoint["account"]) == (
        receiver.url,
        "s3cret",
        "production",
    )
    assert [w["id"] for w in control.ok(control.get("/webhooks"))] == [endpoint["id"]]

    api.create("/customers", {"name": "Acme"})
    assert len(control.ok(control.post("/deliver_due"))) == 1
    assert control.ok(control.get("/deliveries"))[0]["status"] == 200

    before = control.ok(control.get("/clock"))
    after = control.ok(control.post("/clock/advance", {"seconds": 86400}))
    assert after["now"] - before["now"] >= 86400

    token = control.ok(control.post("/tokens", {"type": "card", "last4": "1117", "brand": "Discover"}), 201)[
        "token"
    ]
    customer = api.ok(api.get("/customers"))[0]
    card = api.ok(
        api.post(f"/customers/{customer['id']}/payment_sources", {"method": "card", "gateway_token": token})
    )
    assert (card["brand"], card["last4"]) == ("Discover", "1117")

    assert control.delete(f"/webhooks/{endpoint['id']}").status_code == 204
    assert control.ok(control.get("/webhooks")) == []


def test_the_sandbox_listener_controls_the_sandbox_account(
    invoiced: InvoicedEmulator, sandbox_api: Api
) -> None:
    control = _control(invoiced, invoiced.sandbox_base_url)
    seeded = control.ok(control.post("/seed", {"data": {"customers": [{"name": "Sandbox Co"}]}}))
    assert sandbox_api.ok(sandbox_api.get(f"/customers/{seeded['customers'][0]}"))["name"] == "Sandbox Co"
    assert control.ok(control.get("/dump", {"resources": "customers", "account": "production"})) == {
        "customers": []
    }


def test_reset_clears_everything(invoiced: InvoicedEmulator, api: Api, receiver: Receiver) -> None:
    control = _control(invoiced)
    api.create("/customers", {"name": "Acme"})
    invoiced.control.add_webhook(receiver.url)
    invoiced.control.set_faults(latency_ms=5)
    invoiced.control.update_settings(concurrency_limit=3)
    invoiced.control.advance_clock(1000)
    assert control.ok(control.post("/reset")) == {"reset": True}

    assert api.ok(api.get("/customers")) == []
    assert invoiced.control.calls() == {"GET /customers": 1}
    assert invoiced.control.webhooks() == []
    assert invoiced.control.faults.settings.latency_ms == 0
    assert invoiced.control.settings.concurrency_limit == 20
    assert invoiced.control.clock()["offset"] == 0
    assert api.create("/customers", {"name": "Fresh"})["number"] == "CUST-0001"


def test_unknown_control_routes(invoiced: InvoicedEmulator) -> None:
    control = _control(invoiced)
    assert control.get("/nope").status_code == 404
    assert control.post("/act", {"action": "teleport", "resource": "customers"}).status_code == 400


def test_standalone_prints_one_json_line_and_serves(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca" / "billsync-local-ca.pem"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    billsync = Path(sys.executable).parent / "billsync"
    command = [str(billsync), "local", "invoiced", "--port", "0", "--ca-file", str(ca_file)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        info: dict[str, Any] = json.loads(process.stdout.readline())
        assert set(info) >= {
            "base_url",
            "sandbox_base_url",
            "ca_file",
            "api_key",
            "sandbox_api_key",
            "control",
        }
        assert info["ca_file"] == str(ca_file)
        session = requests.Session()
        session.trust_env = False
        session.verify = info["ca_file"]
        response = session.post(
            f"{info['base_url']}/customers", json={"name": "Acme"}, auth=(info["api_key"], "")
        )
        assert response.status_code == 201
        sandbox = session.get(f"{info['sandbox_base_url']}/customers", auth=(info["sandbox_api_key"], ""))
        assert sandbox.json() == []
    finally:
        process.terminate()
        process.wait(timeout=10)
