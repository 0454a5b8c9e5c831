"""simple-salesforce, used as billsync uses it, works unchanged against the local org.

The only concession is trusting the local CA: a session from ``local.salesforce.clients``.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
)

from local.salesforce import SalesforceEmulator
from local.salesforce.clients import LoginRewritingSession, emulator_session


def rewriting(emulator: SalesforceEmulator) -> LoginRewritingSession:
    return LoginRewritingSession(emulator.base_url, emulator.ca_file)


# -- logins ------------------------------------------------------------------------------------


def test_client_credentials_login_through_my_domain(salesforce: SalesforceEmulator) -> None:
    session = rewriting(salesforce)
    credentials = salesforce.credentials
    sf = Salesforce(
        consumer_key=credentials["consumer_key"],
        consumer_secret=credentials["consumer_secret"],
        domain="billsync.my",
        session=session,
    )
    assert session.rewritten == ["https://billsync.my.salesforce.com/services/oauth2/token"]
    assert sf.sf_instance == salesforce.base_url.removeprefix("https://")
    assert sf.is_sandbox() is True
    assert sf.query("SELECT Id FROM User WHERE Id = '" + credentials["user_id"] + "'")["totalSize"] == 1


def test_jwt_login(salesforce: SalesforceEmulator) -> None:
    credentials = salesforce.credentials
    session = rewriting(salesforce)
    sf = Salesforce(
        username=credentials["username"],
        consumer_key=credentials["consumer_key"],
        privatekey_file=credentials["private_key_file"],
        session=session,
    )
    assert session.rewritten == ["https://login.salesforce.com/services/oauth2/token"]
    created = sf.Account.create({"Name": "Via JWT"})
    record = sf.Account.get(created["id"])
    assert record["CreatedById"] == credentials["user_id"]


def test_soap_login_with_security_token(salesforce: SalesforceEmulator) -> None:
    credentials = salesforce.credentials
    session = rewriting(salesforce)
    sf = Salesforce(
        username=credentials["username"],
        password=credentials["password"],
        security_token=credentials["security_token"],
        session=session,
    )
    assert session.rewritten == ["https://login.salesforce.com/services/Soap/u/59.0"]
    assert sf.describe()["maxBatchSize"] == 200


def test_soap_login_refuses_a_wrong_token(salesforce: SalesforceEmulator) -> None:
    credentials = salesforce.credentials
    with pytest.raises(SalesforceAuthenticationFailed) as failure:
        Salesforce(
            username=credentials["username"],
            password=credentials["password"],
            security_token="wrong",
            session=rewriting(salesforce),
        )
    assert failure.value.code == "INVALID_LOGIN"
    assert b"Invalid username, password, security token" in failure.value.content


def test_oauth_password_login_as_another_user(salesforce: SalesforceEmulator) -> None:
    credentials = salesforce.credentials
    sf = Salesforce(
        username=credentials["human_username"],
        password=credentials["human_password"] + credentials["human_security_token"],
        consumer_key=credentials["consumer_key"],
        consumer_secret=credentials["consumer_secret"],
        domain="test",
        session=rewriting(salesforce),
    )
    record_id = sf.Account.create({"Name": "Edited by a person"})["id"]
    record = sf.Account.get(record_id)
    assert record["CreatedById"] == credentials["human_user_id"]
    assert record["LastModifiedById"] == credentials["human_user_id"]


def test_session_id_mode_with_a_ca_trusting_session(salesforce: SalesforceEmulator) -> None:
    http = emulator_session(salesforce.ca_file)
    credentials = salesforce.credentials
    token = http.post(
        f"{salesforce.base_url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": credentials["consumer_key"],
            "client_secret": credentials["consumer_secret"],
        },
    ).json()
    sf = Salesforce(instance_url=token["instance_url"], session_id=token["access_token"], session=http)
    assert sf.limits()["DailyApiRequests"]["Max"] == salesforce.settings.daily_api_limit
    assert sf.api_usage["api-usage"].used == 1


def test_expired_session_is_renewed_transparently(salesforce: SalesforceEmulator) -> None:
    salesforce.control.update_settings({"token_lifetime_seconds": 1})
    credentials = salesforce.credentials
    sf = Salesforce(
        consumer_key=credentials["consumer_key"],
        consumer_secret=credentials["consumer_secret"],
        domain="billsync.my",
        session=rewriting(salesforce),
    )
    first = sf.session_id
    sf.Account.create({"Name": "Before expiry"})
    salesforce.control.set_time(advance_seconds=2)
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 1
    assert sf.Account.create({"Name": "After expiry"})["success"] is True
    assert sf.session_id != first
    calls = salesforce.control.calls()["calls"]
    assert calls["POST /services/oauth2/token"] == 2


# -- records -------------------------------------------------------------------------------------


def test_upsert_by_external_id_creates_then_updates(sf_client: Salesforce) -> None:
    assert sf_client.Account.upsert("Billing_Id__c/main:3100", {"Name": "Acme"}) == 201
    assert sf_client.Account.upsert("Billing_Id__c/main:3100", {"Name": "Acme Ltd"}) == 200
    record = sf_client.Account.get_by_custom_id("Billing_Id__c", "MAIN:3100")
    assert record["Name"] == "Acme Ltd"
    assert record["Billing_Id__c"] == "main:3100"


def test_upsert_matching_several_records_raises_more_than_one(
    salesforce: SalesforceEmulator, sf_client: Salesforce
) -> None:
    ids = salesforce.control.seed(
        "Product2",
        [{"Name": "A", "ExternalId": "SKU-1"}, {"Name": "B", "ExternalId": "sku-1"}],
    )
    with pytest.raises(SalesforceMoreThanOneRecord) as failure:
        sf_client.Product2.upsert("ExternalId/SKU-1", {"Name": "C"})
    assert sorted(failure.value.content) == sorted(
        f"/services/data/v59.0/sobjects/Product2/{record_id}" for record_id in ids
    )


def test_validation_errors_raise_malformed_request(sf_client: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as failure:
        sf_client.Contact.create({"FirstName": "No last name"})
    assert failure.value.content == [
        {
            "message": "Required fields are missing: [LastName]",
            "errorCode": "REQUIRED_FIELD_MISSING",
            "fields": ["LastName"],
        }
    ]


def test_update_delete_and_replication(salesforce: SalesforceEmulator, sf_client: Salesforce) -> None:
    start = datetime.now(UTC) - timedelta(minutes=1)
    record_id = sf_client.Contact.create({"LastName": "Lee"})["id"]
    assert sf_client.Contact.update(record_id, {"FirstName": "Ann"}) == 204
    assert sf_client.Contact.get(record_id)["Name"] == "Ann Lee"
    assert sf_client.Contact.delete(record_id) == 204
    other = sf_client.Contact.create({"LastName": "Kim"})["id"]
    # replication covers whole minutes: changes of the current minute show up once it is over
    salesforce.control.set_time(advance_seconds=120)
    end = datetime.now(UTC) + timedelta(minutes=5)
    assert sf_client.Contact.updated(start, end)["ids"] == [other]
    deleted = sf_client.Contact.deleted(start, end)["deletedRecords"]
    assert [d["id"] for d in deleted] == [record_id]
    assert sf_client.query_all("SELECT Id FROM Contact", include_deleted=True)["totalSize"] == 2
    assert sf_client.query_all("SELECT Id FROM Contact")["totalSize"] == 1


# -- queries -------------------------------------------------------------------------------------


def test_query_all_follows_many_pages(salesforce: SalesforceEmulator, sf_client: Salesforce) -> None:
    salesforce.control.seed("Account", [{"Name": f"Account {n:04d}"} for n in range(1050)])
    result = sf_client.query_all(
        "SELECT Id, Name FROM Account ORDER BY Name", headers={"Sforce-Query-Options": "batchSize=200"}
    )
    assert result["totalSize"] == 1050
    assert [r["Name"] for r in result["records"]] == [f"Account {n:04d}" for n in range(1050)]
    calls = salesforce.control.calls()["calls"]
    assert calls["GET /query"] == 1
    assert calls["GET /query/{locator}"] == 5


# -- composite -----------------------------------------------------------------------------------


def test_collection_upsert_through_restful(salesforce: SalesforceEmulator, sf_client: Salesforce) -> None:
    salesforce.control.seed("Account", [{"Name": "Acme", "Billing_Id__c": "main:3100"}])
    records = [
        {
            "attributes": {"type": "Billing_Invoice__c"},
            "Billing_Id__c": f"main:inv-{n}",
            "Name": f"INV-{n}",
            "Total__c": 100,
            "Balance__c": 40,
            "Account__r": {"Billing_Id__c": "main:3100"},
        }
        for n in range(3)
    ]
    first = sf_client.restful(
        "composite/sobjects/Billing_Invoice__c/Billing_Id__c",
        method="PATCH",
        json={"allOrNone": False, "records": records},
    )
    assert [r["created"] for r in first] == [True, True, True]
    again = sf_client.restful(
        "composite/sobjects/Billing_Invoice__c/Billing_Id__c",
        method="PATCH",
        json={"allOrNone": False, "records": records},
    )
    assert [r["created"] for r in again] == [False, False, False]
    assert [r["id"] for r in again] == [r["id"] for r in first]
    rows = sf_client.query("SELECT Amount_Paid__c, Account__r.Billing_Id__c FROM Billing_Invoice__c")[
        "records"
    ]
    assert {r["Amount_Paid__c"] for r in rows} == {60.0}
    assert {r["Account__r"]["Billing_Id__c"] for r in rows} == {"main:3100"}


def test_composite_with_references(sf_client: Salesforce) -> None:
    result = sf_client.restful(
        "composite",
        method="POST",
        json={
            "allOrNone": True,
            "compositeRequest": [
                {
                    "method": "PATCH",
                    "url": "/services/data/v59.0/sobjects/Account/Billing_Id__c/main:1",
                    "referenceId": "acct",
                    "body": {"Name": "Acme"},
                },
                {
                    "method": "POST",
                    "url": "/services/data/v59.0/sobjects/Billing_Invoice__c",
                    "referenceId": "inv",
                    "body": {"Account__c": "@{acct.id}", "Name": "INV-7", "Total__c": 99.5},
                },
                {
                    "method": "GET",
                    "url": "/services/data/v59.0/query?q=SELECT+Id,+Account__c+FROM+Billing_Invoice__c",
                    "referenceId": "q",
                },
            ],
        },
    )
    acct, inv, query = result["compositeResponse"]
    assert acct["httpStatusCode"] == 201
    assert inv["httpStatusCode"] == 201
    assert inv["httpHeaders"]["Location"].endswith(inv["body"]["id"])
    assert query["body"]["records"][0]["Account__c"] == acct["body"]["id"]


# -- Bulk API 2.0 --------------------------------------------------------------------------------


def test_bulk2_upsert_with_failed_successful_and_unprocessed_results(
    salesforce: SalesforceEmulator, sf_client: Salesforce
) -> None:
    salesforce.control.seed("Account", [{"Name": "Acme", "Billing_Id__c": "main:1"}])
    records = [
        {"Billing_Id__c": f"main:c{n}", "LastName": f"Lee {n}", "Account.Billing_Id__c": "main:1"}
        for n in range(450)
    ]
    records.append(
        {"Billing_Id__c": "main:orphan", "LastName": "Orphan", "Account.Billing_Id__c": "main:404"}
    )
    result = sf_client.bulk2.Contact.upsert(records=records, external_id_field="Billing_Id__c", wait=0)
    assert result == [
        {
            "numberRecordsFailed": 1,
            "numberRecordsProcessed": 451,
            "numberRecordsTotal": 451,
            "job_id": result[0]["job_id"],
        }
    ]
    job_id = result[0]["job_id"]
    failed = list(csv.DictReader(io.StringIO(sf_client.bulk2.Contact.get_failed_records(job_id))))
    assert len(failed) == 1
    assert failed[0]["sf__Id"] == ""
    assert failed[0]["sf__Error"] == (
        "INVALID_FIELD:Foreign key external ID: main:404 not found for field Billing_Id__c in entity Account --"
    )
    assert failed[0]["Billing_Id__c"] == "main:orphan"
    successful = list(csv.DictReader(io.StringIO(sf_client.bulk2.Contact.get_successful_records(job_id))))
    assert len(successful) == 450
    assert {row["sf__Created"] for row in successful} == {"true"}
    unprocessed = list(csv.DictReader(io.StringIO(sf_client.bulk2.Contact.get_unprocessed_records(job_id))))
    assert unprocessed == []
    again = sf_client.bulk2.Contact.upsert(records=records[:10], external_id_field="Billing_Id__c", wait=0)
    rows = list(
        csv.DictReader(io.StringIO(sf_client.bulk2.Contact.get_successful_records(again[0]["job_id"])))
    )
    assert {row["sf__Created"] for row in rows} == {"false"}


def test_bulk2_query_over_several_pages(salesforce: SalesforceEmulator, sf_client: Salesforce) -> None:
    account = salesforce.control.seed("Account", [{"Name": "Acme"}])[0]
    salesforce.control.seed(
        "Contact", [{"LastName": f"Lee {n:03d}", "AccountId": account} for n in range(520)]
    )
    pages = list(
        sf_client.bulk2.Contact.query(
            "SELECT Id, LastName, Account.Name FROM Contact", max_records=200, wait=0
        )
    )
    assert len(pages) == 3
    rows = [row for page in pages for row in csv.DictReader(io.StringIO(page))]
    assert len(rows) == 520
    assert set(rows[0]) == {"Id", "LastName", "Account.Name"}
    assert {row["Account.Name"] for row in rows} == {"Acme"}
    assert pages[0].splitlines()[0] == '"Id","LastName","Account.Name"'
