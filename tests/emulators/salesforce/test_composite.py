"""sObject Collections, /composite, /composite/batch and /composite/tree over real HTTPS."""

from __future__ import annotations

from typing import Any

import pytest

from local.salesforce import SalesforceEmulator
from tests.emulators.salesforce.helpers import Api, error

ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
    "fields": [],
}


def invoice(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "attributes": {"type": "Billing_Invoice__c"},
        "Billing_Id__c": f"main:{n}",
        "Name": f"INV-{n}",
        **extra,
    }


def count(api: Api, sobject: str) -> int:
    total: int = api.query(f"SELECT COUNT() FROM {sobject}")["totalSize"]
    return total


# -- collections ---------------------------------------------------------------------------------


def test_create_mixed_types_in_request_order(api: Api) -> None:
    records = [
        {"attributes": {"type": "Account"}, "Name": "A"},
        {"attributes": {"type": "Contact"}, "LastName": "L"},
        {"attributes": {"type": "Account"}},
    ]
    response = api.post("/composite/sobjects", {"allOrNone": False, "records": records})
    assert response.status_code == 200
    results = response.json()
    assert results[0]["success"] is True
    assert results[0]["id"].startswith("001")
    assert results[1]["id"].startswith("003")
    assert results[2] == {
        "success": False,
        "errors": [
            {
                "statusCode": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [Name]",
                "fields": ["Name"],
            }
        ],
    }
    assert count(api, "Account") == 1


def test_all_or_none_rolls_everything_back(api: Api) -> None:
    records = [invoice(1), invoice(2, Status__c="Nope"), invoice(3)]
    results = api.post("/composite/sobjects", {"allOrNone": True, "records": records}).json()
    assert results[0] == {"id": None, "success": False, "errors": [ROLLED_BACK]}
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert results[2] == {"id": None, "success": False, "errors": [ROLLED_BACK]}
    assert count(api, "Billing_Invoice__c") == 0
    assert api.emulator.control.dump("Billing_Invoice__c") == []


def test_two_hundred_records_at_most(api: Api) -> None:
    ok = api.post("/composite/sobjects", {"records": [invoice(n) for n in range(200)]})
    assert ok.status_code == 200
    assert all(r["success"] for r in ok.json())
    too_many = api.post("/composite/sobjects", {"records": [invoice(n) for n in range(1000, 1201)]})
    assert error(too_many, 400) == {
        "message": "record limit reached. cannot submit more than 200 records into this call",
        "errorCode": "EXCEEDED_ID_LIMIT",
    }
    ids = ",".join(r["id"] for r in ok.json()) + "," + ok.json()[0]["id"]
    assert error(api.delete(f"/composite/sobjects?ids={ids}"), 400)["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_type_is_required(api: Api) -> None:
    assert error(api.post("/composite/sobjects", {"records": [{"Name": "x"}]}), 400) == {
        "message": "Must send a concrete entity type.",
        "errorCode": "INVALID_TYPE",
    }


def test_update_collection(api: Api) -> None:
    a = api.create("Account", {"Name": "A"})
    b = api.create("Account", {"Name": "B"})
    records = [
        {"attributes": {"type": "Account"}, "id": a, "Name": "A2"},
        {"attributes": {"type": "Account"}, "Id": b, "Name": None},
        {"attributes": {"type": "Account"}, "Name": "no id"},
        {"attributes": {"type": "Account"}, "id": "001000000000000", "Name": "missing"},
    ]
    results = api.patch("/composite/sobjects", {"allOrNone": False, "records": records}).json()
    assert results[0] == {"id": a, "success": True, "errors": []}
    assert results[1]["id"] == b
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert results[2] == {
        "success": False,
        "errors": [
            {"statusCode": "MISSING_ARGUMENT", "message": "Id not specified in an update call", "fields": []}
        ],
    }
    assert results[3]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert api.get(f"/sobjects/Account/{a}").json()["Name"] == "A2"


def test_upsert_collection(api: Api, salesforce: SalesforceEmulator) -> None:
    salesforce.control.seed("Account", [{"Name": "Acme", "Billing_Id__c": "main:3100"}])
    path = "/composite/sobjects/Billing_Invoice__c/Billing_Id__c"
    first = api.patch(path, {"allOrNone": False, "records": [invoice(1), invoice(2)]}).json()
    assert [r["created"] for r in first] == [True, True]
    records = [
        invoice(1, Total__c=5),
        invoice(3, Account__r={"Billing_Id__c": "main:3100"}),
        invoice(4, Account__r={"Billing_Id__c": "main:404"}),
        {"attributes": {"type": "Billing_Invoice__c"}, "Name": "no key"},
        invoice(5),
        invoice(5),
    ]
    results = api.patch(path, {"allOrNone": False, "records": records}).json()
    assert results[0] == {"id": first[0]["id"], "success": True, "errors": [], "created": False}
    assert results[1]["created"] is True
    assert results[2] == {
        "success": False,
        "errors": [
            {
                "statusCode": "INVALID_FIELD",
                "message": "Foreign key external ID: main:404 not found for field Billing_Id__c in entity Account",
                "fields": [],
            }
        ],
    }
    assert results[3]["errors"] == [
        {"statusCode": "MISSING_ARGUMENT", "message": "Billing_Id__c not specified", "fields": []}
    ]
    assert results[4]["errors"][0]["statusCode"] == "DUPLICATE_EXTERNAL_ID"
    assert results[5]["errors"][0]["statusCode"] == "DUPLICATE_EXTERNAL_ID"
    wrong_type = {"records": [{"attributes": {"type": "Account"}, "Billing_Id__c": "x", "Name": "n"}]}
    assert error(api.patch(path, wrong_type), 400)["errorCode"] == "INVALID_TYPE"


def test_upsert_collection_reports_several_matches(api: Api, salesforce: SalesforceEmulator) -> None:
    ids = salesforce.control.seed(
        "Product2", [{"Name": "P1", "ExternalId": "k"}, {"Name": "P2", "ExternalId": "K"}]
    )
    records = [{"attributes": {"type": "Product2"}, "ExternalId": "k", "Name": "P3"}]
    result = api.patch("/composite/sobjects/Product2/ExternalId", {"records": records}).json()[0]
    assert result == {
        "success": False,
        "errors": [
            {
                "statusCode": "DUPLICATE_EXTERNAL_ID",
                "message": f"ExternalId: more than one record found for external id field: [{', '.join(sorted(ids))}]",
                "fields": [],
            }
        ],
    }


def test_delete_collection_and_all_or_none(api: Api) -> None:
    a = api.create("Account", {"Name": "A"})
    b = api.create("Account", {"Name": "B"})
    api.delete(f"/sobjects/Account/{b}")
    results = api.delete(f"/composite/sobjects?ids={a},{b}&allOrNone=true").json()
    assert results[0] == {"id": a, "success": False, "errors": [ROLLED_BACK]}
    assert results[1] == {
        "id": b,
        "success": False,
        "errors": [{"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}],
    }
    assert api.get(f"/sobjects/Account/{a}").status_code == 200
    results = api.delete(f"/composite/sobjects?ids={a},{b}&allOrNone=false").json()
    assert results[0] == {"id": a, "success": True, "errors": []}


def test_retrieve_collection(api: Api) -> None:
    a = api.create("Account", {"Name": "A", "Phone": "1"})
    got = api.get(
        "/composite/sobjects/Account", params={"ids": f"{a},001000000000000AAA", "fields": "Name,Phone"}
    ).json()
    assert got[0] == {
        "attributes": {"type": "Account", "url": f"/services/data/v59.0/sobjects/Account/{a}"},
        "Name": "A",
        "Phone": "1",
    }
    assert got[1] is None
    posted = api.post("/composite/sobjects/Account", {"ids": [a], "fields": ["Name"]}).json()
    assert posted[0]["Name"] == "A"


# -- /composite ----------------------------------------------------------------------------------


def sub(reference: str, method: str, url: str, body: Any = None) -> dict[str, Any]:
    item: dict[str, Any] = {"method": method, "url": f"/services/data/v59.0{url}", "referenceId": reference}
    if body is not None:
        item["body"] = body
    return item


def test_composite_all_or_none_true_rolls_back(api: Api) -> None:
    body = {
        "allOrNone": True,
        "compositeRequest": [
            sub("acct", "POST", "/sobjects/Account", {"Name": "Acme"}),
            sub("bad", "POST", "/sobjects/Contact", {"FirstName": "no last name", "AccountId": "@{acct.id}"}),
            sub("after", "POST", "/sobjects/Account", {"Name": "Later"}),
        ],
    }
    response = api.post("/composite", body)
    assert response.status_code == 200
    results = response.json()["compositeResponse"]
    halted = [
        {
            "errorCode": "PROCESSING_HALTED",
            "message": "The transaction was rolled back since another operation in the same transaction failed.",
        }
    ]
    assert results[0] == {"body": halted, "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "acct"}
    assert results[1]["httpStatusCode"] == 400
    assert results[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert results[2] == {"body": halted, "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "after"}
    assert count(api, "Account") == 0


def test_composite_all_or_none_false_halts_dependants(api: Api) -> None:
    body = {
        "allOrNone": False,
        "compositeRequest": [
            sub("acct", "POST", "/sobjects/Account", {"Phone": "no name"}),
            sub("contact", "POST", "/sobjects/Contact", {"LastName": "L", "AccountId": "@{acct.id}"}),
            sub("other", "POST", "/sobjects/Account", {"Name": "Independent"}),
            sub("read", "GET", "/sobjects/Account/@{other.id}?fields=Name"),
            sub("rows", "GET", "/query?q=SELECT+Id+FROM+Account"),
            sub("first", "PATCH", "/sobjects/Account/@{rows.records[0].Id}", {"Phone": "1"}),
        ],
    }
    results = api.post("/composite", body).json()["compositeResponse"]
    assert results[0]["httpStatusCode"] == 400
    assert results[1] == {
        "body": [
            {
                "errorCode": "PROCESSING_HALTED",
                "message": "Invalid reference specified. No value for acct.id found in acct.",
            }
        ],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": "contact",
    }
    assert results[2]["httpStatusCode"] == 201
    assert results[3]["body"]["Name"] == "Independent"
    assert results[4]["body"]["totalSize"] == 1
    assert results[5]["httpStatusCode"] == 204
    assert results[5]["body"] is None
    assert count(api, "Account") == 1


def test_composite_limits(api: Api) -> None:
    many = {"compositeRequest": [sub(f"r{n}", "GET", "/limits") for n in range(26)]}
    response = api.post("/composite", many)
    assert response.json() == {
        "compositeResponse": [
            {
                "body": [
                    {
                        "errorCode": "LIMIT_EXCEEDED",
                        "message": "The request can\u2019t contain more than 25 operations.",
                    }
                ],
                "httpHeaders": {},
                "httpStatusCode": 400,
                "referenceId": None,
            }
        ]
    }
    queries = {"compositeRequest": [sub(f"q{n}", "GET", "/query?q=SELECT+Id+FROM+Account") for n in range(6)]}
    assert (
        api.post("/composite", queries).json()["compositeResponse"][0]["body"][0]["errorCode"]
        == "LIMIT_EXCEEDED"
    )
    ok = {"compositeRequest": [sub(f"r{n}", "GET", "/limits") for n in range(25)]}
    assert len(api.post("/composite", ok).json()["compositeResponse"]) == 25
    bad_reference = {"compositeRequest": [sub("bad[1]", "GET", "/limits")]}
    assert error(api.post("/composite", bad_reference), 400)["errorCode"] == "JSON_PARSER_ERROR"


def test_composite_counts_as_one_request(api: Api, salesforce: SalesforceEmulator) -> None:
    body = {
        "compositeRequest": [sub(f"a{n}", "POST", "/sobjects/Account", {"Name": f"A{n}"}) for n in range(5)]
    }
    before = salesforce.control.calls()["api_usage"]["used"]
    response = api.post("/composite", body)
    assert (
        response.headers["Sforce-Limit-Info"]
        == f"api-usage={before + 1}/{salesforce.settings.daily_api_limit}"
    )


def test_composite_with_collections(api: Api) -> None:
    body = {
        "allOrNone": True,
        "compositeRequest": [
            sub(
                "coll",
                "POST",
                "/composite/sobjects",
                {"records": [{"attributes": {"type": "Account"}, "Name": "A"}]},
            ),
            sub("c", "POST", "/sobjects/Contact", {"LastName": "L", "AccountId": "@{coll[0].id}"}),
        ],
    }
    results = api.post("/composite", body).json()["compositeResponse"]
    assert results[0]["httpStatusCode"] == 200
    assert results[1]["httpStatusCode"] == 201


# -- /composite/batch and /composite/tree --------------------------------------------------------


def test_batch_is_independent_and_counts_each_subrequest(api: Api, salesforce: SalesforceEmulator) -> None:
    account = api.create("Account", {"Name": "A"})
    body = {
        "haltOnError": True,
        "batchRequests": [
            {"method": "GET", "url": f"v59.0/sobjects/Account/{account}?fields=Name"},
            {"method": "PATCH", "url": f"v59.0/sobjects/Account/{account}", "richInput": {"Name": "B"}},
            {"method": "POST", "url": "v59.0/sobjects/Account", "richInput": {}},
            {"method": "GET", "url": "v59.0/limits"},
        ],
    }
    before = salesforce.control.calls()["api_usage"]["used"]
    response = api.post("/composite/batch", body)
    results = response.json()
    assert results["hasErrors"] is True
    assert results["results"][0]["statusCode"] == 200
    assert results["results"][0]["result"]["Name"] == "A"
    assert results["results"][1] == {"statusCode": 204, "result": None}
    assert results["results"][2]["statusCode"] == 400
    assert results["results"][3] == {
        "statusCode": 412,
        "result": [
            {"errorCode": "BATCH_PROCESSING_HALTED", "message": "Batch processing halted per request"}
        ],
    }
    assert salesforce.control.calls()["api_usage"]["used"] == before + 4
    assert api.get(f"/sobjects/Account/{account}").json()["Name"] == "B"


def test_tree_inserts_parents_and_children(api: Api) -> None:
    body: dict[str, Any] = {
        "records": [
            {
                "attributes": {"type": "Account", "referenceId": "acc1"},
                "Name": "Acme",
                "Contacts": {
                    "records": [{"attributes": {"type": "Contact", "referenceId": "c1"}, "LastName": "Lee"}]
                },
            }
        ]
    }
    response = api.post("/composite/tree/Account", body)
    assert response.status_code == 201
    results = response.json()
    assert results["hasErrors"] is False
    ids = {r["referenceId"]: r["id"] for r in results["results"]}
    assert api.get(f"/sobjects/Contact/{ids['c1']}").json()["AccountId"] == ids["acc1"]
    body["records"][0]["Contacts"]["records"][0]["LastName"] = None
    body["records"][0]["attributes"]["referenceId"] = "acc2"
    failed = api.post("/composite/tree/Account", body)
    assert failed.status_code == 400
    assert failed.json() == {
        "hasErrors": True,
        "results": [
            {
                "referenceId": "c1",
                "errors": [
                    {
                        "statusCode": "REQUIRED_FIELD_MISSING",
                        "message": "Required fields are missing: [LastName]",
                        "fields": ["LastName"],
                    }
                ],
            }
        ],
    }
    assert count(api, "Account") == 1


@pytest.mark.parametrize("size", [1, 200])
def test_collection_sizes_accepted(api: Api, size: int) -> None:
    records = [{"attributes": {"type": "Account"}, "Name": f"A{n}"} for n in range(size)]
    assert len(api.post("/composite/sobjects", {"records": records}).json()) == size


def test_a_collection_rolled_back_inside_composite_keeps_earlier_subrequests(api: Api) -> None:
    body = {
        "allOrNone": False,
        "compositeRequest": [
            sub("first", "POST", "/sobjects/Account", {"Name": "Kept"}),
            sub(
                "coll",
                "POST",
                "/composite/sobjects",
                {
                    "allOrNone": True,
                    "records": [
                        {"attributes": {"type": "Account"}, "Name": "Rolled back"},
                        {"attributes": {"type": "Account"}},
                    ],
                },
            ),
        ],
    }
    results = api.post("/composite", body).json()["compositeResponse"]
    assert results[0]["httpStatusCode"] == 201
    assert results[1]["httpStatusCode"] == 200
    assert [r["success"] for r in results[1]["body"]] == [False, False]
    assert [r["Name"] for r in api.query("SELECT Name FROM Account")["records"]] == ["Kept"]
