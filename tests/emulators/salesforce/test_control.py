"""The control API under /_emulator/: reset, seed, dump, calls, faults, settings, time, events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from local.salesforce import SalesforceEmulator
from local.salesforce.clients import emulator_session
from local.salesforce.control import SeedError
from tests.emulators.salesforce.helpers import Api


@pytest.fixture
def control(salesforce: SalesforceEmulator) -> Any:
    http = emulator_session(salesforce.ca_file)

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        return http.request(method, f"{salesforce.base_url}/_emulator/{path}", **kwargs)

    return call


def test_seed_dump_and_reset(control: Any, api: Api) -> None:
    seeded = control(
        "POST", "records/Account", json=[{"Name": "A", "Billing_Id__c": "main:1"}, {"Name": "B"}]
    )
    assert seeded.status_code == 201
    ids = seeded.json()["ids"]
    assert len(ids) == 2
    dumped = control("GET", "records/Account").json()
    assert [r["Id"] for r in dumped] == ids
    assert dumped[0]["Billing_Id__c"] == "main:1"
    api.delete(f"/sobjects/Account/{ids[1]}")
    assert len(control("GET", "records/Account", params={"include_deleted": "false"}).json()) == 1
    assert len(control("GET", "records/Account").json()) == 2
    assert control("POST", "reset").json() == {"reset": True}
    assert control("GET", "records/Account").json() == []
    assert control("GET", "records/Pricebook2").json()[0]["IsStandard"] is True
    assert api.get("/limits").status_code == 401


def test_seed_validates_unless_told_not_to(control: Any, salesforce: SalesforceEmulator) -> None:
    refused = control("POST", "records/Account", json=[{"Name": "ok"}, {"Phone": "no name"}])
    assert refused.status_code == 400
    assert refused.json()["results"][1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert control("GET", "records/Account").json() == []
    with pytest.raises(SeedError):
        salesforce.control.seed("Account", [{"Phone": "no name"}])
    old = "2024-01-02T03:04:05.000+0000"
    seeded = control(
        "POST",
        "records/Account",
        params={"validate": "false"},
        json={
            "records": [
                {"Phone": "no name", "CreatedDate": old, "LastModifiedDate": old, "SystemModstamp": old}
            ]
        },
    )
    assert seeded.status_code == 201
    record = control("GET", "records/Account").json()[0]
    assert record["Name"] is None
    assert record["CreatedDate"] == old
    assert record["SystemModstamp"] == old


def test_seed_as_another_user(salesforce: SalesforceEmulator, api: Api) -> None:
    human = salesforce.credentials["human_user_id"]
    record_id = salesforce.control.seed("Account", [{"Name": "By a person"}], as_user=human)[0]
    assert api.get(f"/sobjects/Account/{record_id}").json()["LastModifiedById"] == human


def test_calls_are_counted_by_route_template_and_method(control: Any, api: Api) -> None:
    control("DELETE", "calls")
    record_id = api.create("Account", {"Name": "A"})
    api.patch(f"/sobjects/Account/{record_id}", {"Name": "B"})
    api.patch("/sobjects/Account/Billing_Id__c/main:1", {"Name": "C"})
    api.patch("/composite/sobjects/Account/Billing_Id__c", {"records": []})
    api.get("/query", params={"q": "SELECT Id FROM Account"})
    stats = control("GET", "calls").json()
    assert stats["calls"] == {
        "GET /query": 1,
        "PATCH /composite/sobjects/{type}/{field}": 1,
        "PATCH /sobjects/{type}/{field}/{value}": 1,
        "PATCH /sobjects/{type}/{id}": 1,
        "POST /sobjects/{type}": 1,
    }
    assert stats["total"] == 5
    assert stats["api_usage"]["used"] == 5
    assert stats["lock_failures"] == 0
    assert control("DELETE", "calls").json()["calls"] == {}


def test_faults_and_settings_over_http(control: Any, api: Api) -> None:
    faults = control("PATCH", "faults", json={"seed": 3, "bursts": {"SERVER_UNAVAILABLE": 2}}).json()
    assert faults["seed"] == 3
    assert faults["bursts"] == {"SERVER_UNAVAILABLE": 2}
    assert [api.get("/limits").status_code for _ in range(3)] == [503, 503, 200]
    assert control("GET", "faults").json()["injected"] == {"SERVER_UNAVAILABLE": 2}
    assert control("PATCH", "faults", json={"rates": {"NOPE": 1}}).status_code == 400
    settings = control("PATCH", "settings", json={"lock_wait_ms": 50, "daily_api_limit": 10}).json()
    assert settings["lock_wait_ms"] == 50.0
    assert settings["daily_api_limit"] == 10
    assert control("PATCH", "settings", json={"api_versions": []}).status_code == 400
    assert api.get("/limits").headers["Sforce-Limit-Info"].endswith("/10")


def test_time_and_info(control: Any, salesforce: SalesforceEmulator) -> None:
    moved = control("POST", "time", json={"now": "2030-01-01T00:00:00Z", "frozen": True}).json()
    assert moved["now"].startswith("2030-01-01T00:00:00")
    assert moved["frozen"] is True
    record_id = salesforce.control.seed("Account", [{"Name": "Future"}])[0]
    assert control("GET", "records/Account").json()[0]["CreatedDate"] == "2030-01-01T00:00:00.000+0000"
    assert record_id
    info = control("GET", "info").json()
    assert info["base_url"] == salesforce.base_url
    assert info["consumer_key"] == salesforce.credentials["consumer_key"]
    assert control("GET", "nope").status_code == 404


def test_standalone_server_prints_its_credentials(tmp_path: Path) -> None:
    executable = Path(sys.executable).with_name("billsync")
    process = subprocess.Popen(
        [
            str(executable),
            "local",
            "salesforce",
            "--port",
            "0",
            "--ca-file",
            str(tmp_path / "ca" / "whatever.pem"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        assert info["ca_file"] == str(tmp_path / "ca" / "billsync-local-ca.pem")
        for key in ("base_url", "consumer_key", "consumer_secret", "username", "password", "security_token"):
            assert info[key]
        http = emulator_session(info["ca_file"])
        token = http.post(
            f"{info['base_url']}/services/oauth2/token",
            data={
                "grant_type": "password",
                "client_id": info["consumer_key"],
                "client_secret": info["consumer_secret"],
                "username": info["username"],
                "password": info["password"] + info["security_token"],
            },
        ).json()
        limits = http.get(
            f"{token['instance_url']}/services/data/v59.0/limits",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        assert limits.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
