"""The daily API budget, every injected fault kind, latency, and row-lock contention."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce

from local.salesforce import SalesforceEmulator
from tests.emulators.salesforce.helpers import Api, error


def test_daily_limit_is_counted_reported_and_enforced(api: Api, salesforce: SalesforceEmulator) -> None:
    salesforce.control.update_settings({"daily_api_limit": 4})
    first = api.get("/limits")
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/4"
    assert first.json()["DailyApiRequests"] == {"Max": 4, "Remaining": 3}
    assert api.get("/sobjects").headers["Sforce-Limit-Info"] == "api-usage=2/4"
    assert api.post("/sobjects/Account", {}).headers["Sforce-Limit-Info"] == "api-usage=3/4"
    assert api.get("/limits").json()["DailyApiRequests"] == {"Max": 4, "Remaining": 0}
    refused = api.get("/limits")
    assert error(refused, 403) == {
        "message": "TotalRequests Limit exceeded.",
        "errorCode": "REQUEST_LIMIT_EXCEEDED",
    }
    assert refused.headers["Sforce-Limit-Info"] == "api-usage=4/4"
    assert salesforce.control.calls()["api_usage"] == {"used": 4, "max": 4}
    assert api.http.get(f"{salesforce.base_url}/services/data/").status_code == 200
    assert Api(salesforce).token


def test_server_unavailable(api: Api, salesforce: SalesforceEmulator) -> None:
    salesforce.control.faults.update({"rates": {"SERVER_UNAVAILABLE": 1.0}})
    response = api.get("/limits")
    assert error(response, 503) == {
        "errorCode": "SERVER_UNAVAILABLE",
        "message": "Server is temporarily unavailable. Please try again later.",
    }
    assert salesforce.control.faults.get()["injected"] == {"SERVER_UNAVAILABLE": 1}


def test_injected_request_limit_exceeded(api: Api, salesforce: SalesforceEmulator) -> None:
    salesforce.control.faults.update({"bursts": {"REQUEST_LIMIT_EXCEEDED": 1}})
    assert error(api.get("/limits"), 403)["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert api.get("/limits").status_code == 200


def test_injected_invalid_session_then_a_fresh_login_works(api: Api, salesforce: SalesforceEmulator) -> None:
    salesforce.control.faults.update({"bursts": {"INVALID_SESSION_ID": 1}})
    response = api.get("/limits")
    assert response.status_code == 401
    assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    assert api.get("/limits").status_code == 401
    assert Api(salesforce).get("/limits").status_code == 200


def test_simple_salesforce_recovers_from_an_injected_invalid_session(
    sf_client: Salesforce, salesforce: SalesforceEmulator
) -> None:
    salesforce.control.faults.update({"every": {"INVALID_SESSION_ID": 3}})
    for n in range(7):
        assert sf_client.Account.create({"Name": f"A{n}"})["success"] is True
    assert salesforce.control.faults.get()["injected"]["INVALID_SESSION_ID"] >= 2
    assert sf_client.query("SELECT COUNT() FROM Account")["totalSize"] == 7


def test_dropped_connection(api: Api, salesforce: SalesforceEmulator) -> None:
    salesforce.control.faults.update({"bursts": {"DROPPED_CONNECTION": 1}})
    with pytest.raises(requests.exceptions.ConnectionError):
        api.get("/limits")
    assert api.get("/limits").status_code == 200


def test_injected_lock_failures(api: Api, salesforce: SalesforceEmulator) -> None:
    salesforce.control.faults.update({"bursts": {"UNABLE_TO_LOCK_ROW": 1}})
    assert error(api.post("/sobjects/Account", {"Name": "A"}), 400) == {
        "message": "unable to obtain exclusive access to this record",
        "errorCode": "UNABLE_TO_LOCK_ROW",
        "fields": [],
    }
    salesforce.control.faults.update({"bursts": {}, "every": {"UNABLE_TO_LOCK_ROW": 2}})
    records = [{"attributes": {"type": "Account"}, "Name": f"A{n}"} for n in range(6)]
    results = api.post("/composite/sobjects", {"records": records}).json()
    assert [r["success"] for r in results] == [True, False, True, False, True, False]
    assert results[1]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"


def test_faults_never_hit_logins_or_the_control_api(salesforce: SalesforceEmulator) -> None:
    http = Api(salesforce, login=False).http
    patched = http.patch(
        f"{salesforce.base_url}/_emulator/faults", json={"rates": {"SERVER_UNAVAILABLE": 1.0}}
    )
    assert patched.status_code == 200
    api = Api(salesforce)
    assert http.get(f"{salesforce.base_url}/_emulator/calls").status_code == 200
    assert api.get("/limits").status_code == 503


def test_faults_are_reproducible_from_a_seed(salesforce: SalesforceEmulator) -> None:
    def statuses() -> list[int]:
        salesforce.control.reset()
        salesforce.control.faults.update(
            {"seed": 7, "rates": {"SERVER_UNAVAILABLE": 0.3, "REQUEST_LIMIT_EXCEEDED": 0.2}}
        )
        api = Api(salesforce)
        return [api.get("/limits").status_code for _ in range(30)]

    first, second = statuses(), statuses()
    assert first == second
    assert {200, 403, 503} <= set(first)


def test_latency_fixed_and_per_record(api: Api, salesforce: SalesforceEmulator) -> None:
    salesforce.control.faults.update({"latency_ms": 80})
    started = time.perf_counter()
    api.get("/limits")
    assert time.perf_counter() - started >= 0.08
    salesforce.control.faults.update({"latency_ms": 0, "latency_per_record_ms": 2})
    records = [{"attributes": {"type": "Account"}, "Name": f"A{n}"} for n in range(100)]
    started = time.perf_counter()
    api.post("/composite/sobjects", {"records": records})
    assert time.perf_counter() - started >= 0.2
    started = time.perf_counter()
    api.query("SELECT Id FROM Account")
    assert time.perf_counter() - started >= 0.2


def _upsert_lines(api: Api, invoice: str, start: int, out: dict[str, Any]) -> None:
    records = [
        {
            "attributes": {"type": "Billing_Invoice_Line__c"},
            "Billing_Id__c": f"main:line-{start + n}",
            "Name": f"Line {start + n}",
            "Invoice__r": {"Billing_Id__c": invoice},
        }
        for n in range(3)
    ]
    out[invoice + str(start)] = api.patch(
        "/composite/sobjects/Billing_Invoice_Line__c/Billing_Id__c", {"allOrNone": False, "records": records}
    ).json()


def _concurrently(salesforce: SalesforceEmulator, jobs: list[tuple[str, int]]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    apis = [Api(salesforce) for _ in jobs]
    threads = [
        threading.Thread(target=_upsert_lines, args=(client, invoice, start, results))
        for client, (invoice, start) in zip(apis, jobs, strict=True)
    ]
    threads[0].start()
    time.sleep(0.15)
    threads[1].start()
    for thread in threads:
        thread.join()
    return results


def test_children_of_one_parent_contend_for_its_row_lock(salesforce: SalesforceEmulator) -> None:
    parent = salesforce.control.seed("Billing_Invoice__c", [{"Name": "INV", "Billing_Id__c": "main:inv-1"}])[
        0
    ]
    salesforce.control.update_settings({"lock_wait_ms": 100})
    salesforce.control.faults.update({"latency_ms": 600})
    results = _concurrently(salesforce, [("main:inv-1", 0), ("main:inv-1", 10)])
    assert all(r["success"] for r in results["main:inv-10"])
    blocked = results["main:inv-110"]
    assert [r["success"] for r in blocked] == [False, False, False]
    assert blocked[0]["errors"] == [
        {
            "statusCode": "UNABLE_TO_LOCK_ROW",
            "message": f"unable to obtain exclusive access to this record or 1 records: {parent}",
            "fields": [],
        }
    ]
    stats = salesforce.control.calls()
    assert stats["lock_failures"] == 3
    assert stats["faults_injected"] == {}


def test_children_of_different_parents_do_not_contend(salesforce: SalesforceEmulator) -> None:
    salesforce.control.seed(
        "Billing_Invoice__c",
        [{"Name": "A", "Billing_Id__c": "main:inv-1"}, {"Name": "B", "Billing_Id__c": "main:inv-2"}],
    )
    salesforce.control.update_settings({"lock_wait_ms": 100})
    salesforce.control.faults.update({"latency_ms": 600})
    results = _concurrently(salesforce, [("main:inv-1", 0), ("main:inv-2", 10)])
    assert all(r["success"] for batch in results.values() for r in batch)
    assert salesforce.control.calls()["lock_failures"] == 0


def test_a_lock_wait_long_enough_lets_the_second_writer_through(salesforce: SalesforceEmulator) -> None:
    salesforce.control.seed("Billing_Invoice__c", [{"Name": "A", "Billing_Id__c": "main:inv-1"}])
    salesforce.control.update_settings({"lock_wait_ms": 2000})
    salesforce.control.faults.update({"latency_ms": 300})
    results = _concurrently(salesforce, [("main:inv-1", 0), ("main:inv-1", 10)])
    assert all(r["success"] for batch in results.values() for r in batch)


def _composite_lines(api: Api, invoice: str, start: int, out: dict[str, Any]) -> None:
    records = [
        {
            "attributes": {"type": "Billing_Invoice_Line__c"},
            "Billing_Id__c": f"main:line-{start + n}",
            "Name": f"Line {start + n}",
            "Invoice__r": {"Billing_Id__c": invoice},
        }
        for n in range(3)
    ]
    body = {
        "allOrNone": False,
        "compositeRequest": [
            {
                "method": "PATCH",
                "url": f"/services/data/v{api.version}/composite/sobjects/Billing_Invoice_Line__c/Billing_Id__c",
                "referenceId": "lines",
                "body": {"allOrNone": False, "records": records},
            }
        ],
    }
    out[invoice + str(start)] = api.post("/composite", body).json()["compositeResponse"][0]


def test_collections_inside_a_composite_lock_the_parents_of_their_records(
    salesforce: SalesforceEmulator,
) -> None:
    invoices = salesforce.control.seed(
        "Billing_Invoice__c",
        [{"Name": "A", "Billing_Id__c": "main:inv-1"}, {"Name": "B", "Billing_Id__c": "main:inv-2"}],
    )
    salesforce.control.update_settings({"lock_wait_ms": 100})
    salesforce.control.faults.update({"latency_ms": 600})
    results: dict[str, Any] = {}
    apis = [Api(salesforce) for _ in range(3)]
    jobs = [("main:inv-1", 0), ("main:inv-1", 10), ("main:inv-2", 20)]
    threads = [
        threading.Thread(target=_composite_lines, args=(client, invoice, start, results))
        for client, (invoice, start) in zip(apis, jobs, strict=True)
    ]
    threads[0].start()
    time.sleep(0.15)
    threads[1].start()
    threads[2].start()
    for thread in threads:
        thread.join()
    assert results["main:inv-10"]["httpStatusCode"] == 200
    assert results["main:inv-220"]["httpStatusCode"] == 200  # another parent: no contention
    blocked = results["main:inv-110"]
    assert blocked["httpStatusCode"] == 400
    assert blocked["body"][0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
    assert invoices[0] in blocked["body"][0]["message"]
    assert salesforce.control.calls()["lock_failures"] == 1
