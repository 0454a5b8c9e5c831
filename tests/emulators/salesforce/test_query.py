"""Query and queryAll over REST: paging, batch sizes, locators and errors."""

from __future__ import annotations

from local.salesforce import SalesforceEmulator
from tests.emulators.salesforce.helpers import Api, error


def seed_accounts(salesforce: SalesforceEmulator, n: int) -> list[str]:
    return salesforce.control.seed("Account", [{"Name": f"A{i:05d}"} for i in range(n)])


def test_paging_with_the_default_and_a_requested_batch_size(api: Api, salesforce: SalesforceEmulator) -> None:
    seed_accounts(salesforce, 2500)
    first = api.query("SELECT Id, Name FROM Account ORDER BY Name")
    assert first["totalSize"] == 2500
    assert first["done"] is False
    assert len(first["records"]) == 2000
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    assert first["nextRecordsUrl"].endswith("-2000")
    last = api.get(first["nextRecordsUrl"]).json()
    assert last["done"] is True
    assert "nextRecordsUrl" not in last
    assert len(last["records"]) == 500
    assert last["records"][-1]["Name"] == "A02499"
    small = api.query("SELECT Id FROM Account", headers={"Sforce-Query-Options": "batchSize=300"})
    assert len(small["records"]) == 300
    tiny = api.query("SELECT Id FROM Account", headers={"Sforce-Query-Options": "batchSize=10"})
    assert len(tiny["records"]) == 200


def test_child_rows_count_toward_the_batch_size(api: Api, salesforce: SalesforceEmulator) -> None:
    accounts = seed_accounts(salesforce, 10)
    salesforce.control.seed(
        "Contact", [{"LastName": f"L{i}", "AccountId": a} for a in accounts for i in range(49)]
    )
    page = api.query(
        "SELECT Id, (SELECT Id FROM Contacts) FROM Account", headers={"Sforce-Query-Options": "batchSize=200"}
    )
    assert len(page["records"]) == 4
    assert page["records"][0]["Contacts"]["totalSize"] == 49
    assert page["totalSize"] == 10


def test_query_all_sees_deleted_records_and_its_locators_work_under_both_paths(
    api: Api, salesforce: SalesforceEmulator
) -> None:
    ids = seed_accounts(salesforce, 450)
    api.delete(f"/sobjects/Account/{ids[0]}")
    assert api.query("SELECT COUNT() FROM Account")["totalSize"] == 449
    everything = api.get(
        "/queryAll/",
        params={"q": "SELECT Id, IsDeleted FROM Account"},
        headers={"Sforce-Query-Options": "batchSize=200"},
    ).json()
    assert everything["totalSize"] == 450
    assert "/queryAll/" in everything["nextRecordsUrl"]
    locator = everything["nextRecordsUrl"].rsplit("/", 1)[1]
    assert len(api.get(f"/query/{locator}").json()["records"]) == 200
    deleted = api.get("/queryAll/", params={"q": "SELECT Id FROM Account WHERE IsDeleted = true"}).json()
    assert [r["Id"] for r in deleted["records"]] == [ids[0]]


def test_locators_expire_and_only_a_few_stay_open(api: Api, salesforce: SalesforceEmulator) -> None:
    seed_accounts(salesforce, 400)
    headers = {"Sforce-Query-Options": "batchSize=200"}
    first = api.query("SELECT Id FROM Account", headers=headers)
    salesforce.control.set_time(advance_seconds=901)
    assert error(api.get(first["nextRecordsUrl"]), 400) == {
        "errorCode": "INVALID_QUERY_LOCATOR",
        "message": "invalid query locator",
    }
    opened = [api.query("SELECT Id FROM Account", headers=headers)["nextRecordsUrl"] for _ in range(11)]
    assert error(api.get(opened[0]), 400)["errorCode"] == "INVALID_QUERY_LOCATOR"
    assert api.get(opened[-1]).status_code == 200
    assert error(api.get("/query/01g000000000000AAA-200"), 400)["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_query_errors_carry_the_soql_engine_code(api: Api) -> None:
    bad_field = error(api.get("/query/", params={"q": "SELECT Foo__c FROM Account"}), 400)
    assert bad_field["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Foo__c' on entity 'Account'" in bad_field["message"]
    assert "ERROR at Row:1:Column:8" in bad_field["message"]
    assert "fields" not in bad_field
    assert (
        error(api.get("/query/", params={"q": "SELECT Id FROM Nope__c"}), 400)["errorCode"] == "INVALID_TYPE"
    )
    assert error(api.get("/query/", params={"q": "SELECT FROM"}), 400)["errorCode"] == "MALFORMED_QUERY"


def test_query_results_are_typed_and_nest_parents(api: Api, salesforce: SalesforceEmulator) -> None:
    account = salesforce.control.seed(
        "Account", [{"Name": "Acme", "Billing_Id__c": "main:1", "AnnualRevenue": 10}]
    )[0]
    salesforce.control.seed(
        "Billing_Invoice__c",
        [
            {
                "Name": "INV",
                "Account__c": account,
                "Total__c": 99.5,
                "Due_Date__c": "2024-03-31",
                "Issue__c": True,
            },
            {"Name": "Orphan"},
        ],
    )
    rows = api.query(
        "SELECT Name, Total__c, Due_Date__c, Issue__c, CreatedDate, Account__r.Name, Account__r.Owner.Username "
        "FROM Billing_Invoice__c ORDER BY Name"
    )["records"]
    assert rows[0]["Total__c"] == 99.5
    assert rows[0]["Due_Date__c"] == "2024-03-31"
    assert rows[0]["Issue__c"] is True
    assert rows[0]["CreatedDate"].endswith("+0000")
    assert rows[0]["Account__r"]["attributes"] == {
        "type": "Account",
        "url": f"/services/data/v59.0/sobjects/Account/{account}",
    }
    assert rows[0]["Account__r"]["Owner"]["Username"] == salesforce.credentials["username"]
    assert rows[1]["Account__r"] is None
    incremental = api.query(
        "SELECT Id FROM Billing_Invoice__c WHERE SystemModstamp > 2020-01-01T00:00:00Z ORDER BY SystemModstamp, Id LIMIT 1"
    )
    assert incremental["totalSize"] == 1
