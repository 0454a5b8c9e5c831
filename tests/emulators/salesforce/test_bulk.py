"""Bulk API 2.0 over raw HTTPS: job states, CSV formats, results, paging headers, refusals."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

from local.salesforce import SalesforceEmulator
from tests.emulators.salesforce.helpers import Api, error


def create_job(api: Api, **body: Any) -> dict[str, Any]:
    response = api.post(
        "/jobs/ingest", {"contentType": "CSV", "lineEnding": "LF", "columnDelimiter": "COMMA", **body}
    )
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def upload(api: Api, job_id: str, text: str) -> None:
    response = api.raw("PUT", f"/jobs/ingest/{job_id}/batches", text, "text/csv")
    assert response.status_code == 201, response.text
    assert response.text == ""


def close(api: Api, job_id: str) -> dict[str, Any]:
    response = api.patch(f"/jobs/ingest/{job_id}", {"state": "UploadComplete"})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def wait(api: Api, path: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        info: dict[str, Any] = api.get(path).json()
        if info["state"] in ("JobComplete", "Failed", "Aborted"):
            return info
        time.sleep(0.02)
    raise AssertionError(f"{path} did not finish")


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_ingest_lifecycle_and_results(api: Api, salesforce: SalesforceEmulator) -> None:
    salesforce.control.seed("Billing_Invoice__c", [{"Name": "INV", "Billing_Id__c": "main:inv-1"}])
    job = create_job(
        api, object="Billing_Invoice_Line__c", operation="upsert", externalIdFieldName="Billing_Id__c"
    )
    assert job["state"] == "Open"
    assert job["object"] == "Billing_Invoice_Line__c"
    assert job["contentUrl"] == f"services/data/v59.0/jobs/ingest/{job['id']}/batches"
    assert job["id"].startswith("750")
    data = (
        "Billing_Id__c,Name,Amount__c,Description__c,Invoice__r.Billing_Id__c\n"
        'main:l1,Line 1,10.5,"with, comma",main:inv-1\n'
        "main:l2,Line 2,abc,,main:inv-1\n"
        "main:l3,Line 3,1,#N/A,main:nope\n"
        "main:l4,,1,,main:inv-1\n"
    )
    upload(api, job["id"], data)
    assert close(api, job["id"])["state"] == "UploadComplete"
    info = wait(api, f"/jobs/ingest/{job['id']}")
    assert info["state"] == "JobComplete"
    assert info["jobType"] == "V2Ingest"
    assert info["numberRecordsProcessed"] == 4
    assert info["numberRecordsFailed"] == 3
    successful = api.get(f"/jobs/ingest/{job['id']}/successfulResults/")
    assert successful.headers["Content-Type"].startswith("text/csv")
    assert (
        successful.text.splitlines()[0]
        == '"sf__Id","sf__Created",Billing_Id__c,Name,Amount__c,Description__c,Invoice__r.Billing_Id__c'
    )
    ok = rows(successful.text)
    assert [(r["sf__Created"], r["Billing_Id__c"], r["Description__c"]) for r in ok] == [
        ("true", "main:l1", "with, comma")
    ]
    failed = rows(api.get(f"/jobs/ingest/{job['id']}/failedResults/").text)
    errors = {r["Billing_Id__c"]: r["sf__Error"] for r in failed}
    assert (
        errors["main:l2"]
        == "INVALID_TYPE_ON_FIELD_IN_RECORD:Amount: value not of required type: abc:Amount__c --"
    )
    assert errors["main:l3"].startswith("INVALID_FIELD:Foreign key external ID: main:nope not found")
    assert errors["main:l4"] == "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"
    assert {r["sf__Id"] for r in failed} == {""}
    unprocessed = api.get(f"/jobs/ingest/{job['id']}/unprocessedRecords/")
    assert unprocessed.text == "Billing_Id__c,Name,Amount__c,Description__c,Invoice__r.Billing_Id__c\n"
    line = api.query("SELECT Amount__c, Invoice__r.Billing_Id__c FROM Billing_Invoice_Line__c")["records"][0]
    assert line["Amount__c"] == 10.5
    assert line["Invoice__r"]["Billing_Id__c"] == "main:inv-1"
    assert api.delete(f"/jobs/ingest/{job['id']}").status_code == 204
    assert error(api.get(f"/jobs/ingest/{job['id']}"), 404)["errorCode"] == "NOT_FOUND"


def test_update_delete_and_null_cells(api: Api) -> None:
    record_id = api.create("Account", {"Name": "Acme", "Phone": "1", "Website": "https://a.example"})
    job = create_job(api, object="Account", operation="update")
    upload(api, job["id"], f"Id,Phone,Website\n{record_id},#N/A,\n")
    close(api, job["id"])
    assert wait(api, f"/jobs/ingest/{job['id']}")["numberRecordsFailed"] == 0
    record = api.get(f"/sobjects/Account/{record_id}").json()
    assert record["Phone"] is None
    assert record["Website"] == "https://a.example"
    job = create_job(api, object="Account", operation="delete")
    upload(api, job["id"], f"Id\n{record_id}\n")
    close(api, job["id"])
    wait(api, f"/jobs/ingest/{job['id']}")
    assert api.get(f"/sobjects/Account/{record_id}").status_code == 404


def test_job_refusals(api: Api) -> None:
    assert error(api.post("/jobs/ingest", {"object": "Account", "operation": "upsert"}), 400) == {
        "errorCode": "INVALIDJOB",
        "message": "InvalidJob : External ID was blank for Account. An External ID must be specified for upsert.",
    }
    assert error(
        api.post(
            "/jobs/ingest", {"object": "Account", "operation": "upsert", "externalIdFieldName": "Website"}
        ),
        400,
    ) == {
        "errorCode": "INVALIDJOB",
        "message": "InvalidJob : Field name provided, Website does not match an External ID, Salesforce Id, or indexed field for Account",
    }
    assert (
        error(api.post("/jobs/ingest", {"object": "Nope__c", "operation": "insert"}), 400)["errorCode"]
        == "INVALIDJOB"
    )
    job = create_job(api, object="Account", operation="insert")
    upload(api, job["id"], "Name\nA\n")
    again = api.raw("PUT", f"/jobs/ingest/{job['id']}/batches", "Name\nB\n", "text/csv")
    assert error(again, 400)["errorCode"] == "BULK_API_ERROR"
    close(api, job["id"])
    wait(api, f"/jobs/ingest/{job['id']}")
    assert (
        error(api.patch(f"/jobs/ingest/{job['id']}", {"state": "UploadComplete"}), 409)["errorCode"]
        == "INVALIDJOBSTATE"
    )
    assert error(api.get("/jobs/ingest/750000000000000AAA"), 404)["errorCode"] == "NOT_FOUND"


def test_unknown_column_fails_the_job_and_abort_leaves_rows_unprocessed(api: Api) -> None:
    job = create_job(api, object="Account", operation="insert")
    upload(api, job["id"], "Name,Foo__c\nA,1\n")
    close(api, job["id"])
    info = wait(api, f"/jobs/ingest/{job['id']}")
    assert info["state"] == "Failed"
    assert info["errorMessage"] == "InvalidBatch : Field name not found : Foo__c"
    aborted = create_job(api, object="Account", operation="insert")
    upload(api, aborted["id"], "Name\nA\nB\n")
    response = api.patch(f"/jobs/ingest/{aborted['id']}", {"state": "Aborted"})
    assert response.json()["state"] == "Aborted"
    assert rows(api.get(f"/jobs/ingest/{aborted['id']}/unprocessedrecords").text) == [
        {"Name": "A"},
        {"Name": "B"},
    ]
    listed = api.get("/jobs/ingest").json()
    assert {j["id"] for j in listed["records"]} == {job["id"], aborted["id"]}
    assert listed["done"] is True


def test_query_job_pages_with_locator_headers(api: Api, salesforce: SalesforceEmulator) -> None:
    salesforce.control.seed("Account", [{"Name": f'Acme "{n}"', "Phone": None} for n in range(5)])
    job = api.post(
        "/jobs/query", {"operation": "query", "query": "SELECT Id, Name, Phone, CreatedDate FROM Account"}
    ).json()
    assert job["state"] == "UploadComplete"
    info = wait(api, f"/jobs/query/{job['id']}")
    assert info["state"] == "JobComplete"
    assert info["jobType"] == "V2Query"
    assert info["numberRecordsProcessed"] == 5
    first = api.get(f"/jobs/query/{job['id']}/results", params={"maxRecords": 2})
    assert first.headers["Sforce-NumberOfRecords"] == "2"
    assert first.headers["Sforce-Locator"] != "null"
    lines = first.text.splitlines()
    assert lines[0] == '"Id","Name","Phone","CreatedDate"'
    record = next(csv.reader(io.StringIO(lines[1])))
    assert record[1] == 'Acme "0"'
    assert record[3].endswith("Z")
    assert lines[1] == f'"{record[0]}","Acme ""0""","","{record[3]}"'
    seen = 2
    locator = first.headers["Sforce-Locator"]
    while locator != "null":
        page = api.get(f"/jobs/query/{job['id']}/results", params={"maxRecords": 2, "locator": locator})
        seen += int(page.headers["Sforce-NumberOfRecords"])
        locator = page.headers["Sforce-Locator"]
    assert seen == 5
    bad = api.post("/jobs/query", {"operation": "query", "query": "SELECT Foo FROM Account"})
    assert error(bad, 400)["errorCode"] == "INVALID_FIELD"
    nested = api.post(
        "/jobs/query", {"operation": "query", "query": "SELECT Id, (SELECT Id FROM Contacts) FROM Account"}
    )
    assert error(nested, 400)["errorCode"] == "INVALIDJOB"


def test_bulk_calls_count_toward_the_budget(api: Api, salesforce: SalesforceEmulator) -> None:
    before = salesforce.control.calls()["api_usage"]["used"]
    job = create_job(api, object="Account", operation="insert")
    upload(api, job["id"], "Name\nA\n")
    close(api, job["id"])
    assert salesforce.control.calls()["api_usage"]["used"] == before + 3
