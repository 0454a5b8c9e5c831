"""Change Data Capture events in the Event Relay -> EventBridge envelope."""

from __future__ import annotations

import re
from typing import Any

from local.common.tls import LocalCA
from local.salesforce import EmulatorSettings, SalesforceEmulator
from tests.emulators.salesforce.helpers import Api

CLIENT = {"Sforce-Call-Options": "client=billsync"}


def enable(salesforce: SalesforceEmulator, encoding: str = "iso") -> None:
    salesforce.control.update_settings({"cdc_enabled": True, "cdc_date_encoding": encoding})


def test_nothing_is_emitted_unless_enabled(api: Api, salesforce: SalesforceEmulator) -> None:
    api.create("Account", {"Name": "Quiet"})
    assert salesforce.control.events() == []


def test_create_update_delete_undelete(api: Api, salesforce: SalesforceEmulator) -> None:
    enable(salesforce)
    created = api.post(
        "/sobjects/Account", {"Name": "Acme", "Phone": "1", "BillingCity": "Lyon"}, headers=CLIENT
    )
    record_id = created.json()["id"]
    api.patch(f"/sobjects/Account/{record_id}", {"Phone": None, "Name": "Acme Ltd"}, headers=CLIENT)
    api.patch(f"/sobjects/Account/{record_id}", {"Name": "Acme Ltd"})
    api.delete(f"/sobjects/Account/{record_id}")
    salesforce.control.undelete(record_id)
    events = salesforce.control.events()
    assert [e["detail"]["payload"]["ChangeEventHeader"]["changeType"] for e in events] == [
        "CREATE",
        "UPDATE",
        "DELETE",
        "UNDELETE",
    ]
    create = events[0]
    assert set(create) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
    assert create["version"] == "0"
    assert create["detail-type"] == "AccountChangeEvent"
    assert (
        create["source"]
        == f"aws.partner/salesforce.com/{salesforce.credentials['org_id']}/{create['source'].rsplit('/', 1)[1]}"
    )
    assert create["source"].rsplit("/", 1)[1].startswith("0YL")
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", create["time"])
    payload = create["detail"]["payload"]
    header = payload["ChangeEventHeader"]
    assert header["entityName"] == "Account"
    assert header["recordIds"] == [record_id]
    assert header["changeOrigin"] == "com/salesforce/api/rest/59.0;client=billsync"
    assert header["commitUser"] == salesforce.credentials["user_id"]
    assert header["sequenceNumber"] == 1
    assert isinstance(header["commitTimestamp"], int)
    assert payload["Name"] == "Acme"
    assert payload["BillingAddress"] == {"City": "Lyon"}
    assert "Id" not in payload
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$", payload["CreatedDate"])
    update = events[1]["detail"]["payload"]
    assert set(update["ChangeEventHeader"]["changedFields"]) == {"Name", "Phone", "LastModifiedDate"}
    assert update["ChangeEventHeader"]["nulledFields"] == ["Phone"]
    assert update["Name"] == "Acme Ltd"
    assert update["Phone"] is None
    delete = events[2]["detail"]["payload"]
    assert set(delete) == {"ChangeEventHeader"}
    assert delete["ChangeEventHeader"]["changeOrigin"] == "com/salesforce/api/rest/59.0"
    assert events[3]["detail"]["payload"]["ChangeEventHeader"]["changeOrigin"] == ""


def test_one_transaction_key_per_request(api: Api, salesforce: SalesforceEmulator) -> None:
    enable(salesforce)
    records = [{"attributes": {"type": "Billing_Invoice__c"}, "Name": f"I{n}"} for n in range(3)]
    api.post("/composite/sobjects", {"records": records}, headers=CLIENT)
    api.post("/sobjects/Billing_Invoice__c", {"Name": "solo"})
    headers = [e["detail"]["payload"]["ChangeEventHeader"] for e in salesforce.control.events()]
    assert len({h["transactionKey"] for h in headers[:3]}) == 1
    assert [h["sequenceNumber"] for h in headers] == [1, 2, 3, 1]
    assert headers[3]["transactionKey"] != headers[0]["transactionKey"]
    assert {e["detail-type"] for e in salesforce.control.events()} == {"Billing_Invoice__ChangeEvent"}


def test_only_objects_with_a_channel_member_publish(api: Api, salesforce: SalesforceEmulator) -> None:
    enable(salesforce)
    api.create("Opportunity", {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2024-03-01"})
    api.create("Billing_Payment__c", {"Name": "P"})
    assert salesforce.control.events() == []


def test_epoch_encoding_bulk_origin_and_polling_by_number(api: Api, salesforce: SalesforceEmulator) -> None:
    enable(salesforce, "epoch_ms")
    api.create(
        "Billing_Invoice__c",
        {"Name": "I", "Due_Date__c": "2024-03-01", "Billing_Updated_At__c": "2024-03-01T10:00:00Z"},
    )
    response = api.http.get(f"{salesforce.base_url}/_emulator/events", params={"after": 0})
    body = response.json()
    assert body["last"] == 1
    payload = body["events"][0]["detail"]["payload"]
    assert payload["Billing_Updated_At__c"] == 1709287200000
    assert payload["Due_Date__c"] == 19783
    job = api.post(
        "/jobs/ingest", {"object": "Billing_Invoice__c", "operation": "insert"}, headers=CLIENT
    ).json()
    api.raw("PUT", f"/jobs/ingest/{job['id']}/batches", "Name\nBulk\n", "text/csv")
    api.patch(f"/jobs/ingest/{job['id']}", {"state": "UploadComplete"})
    assert salesforce.control.wait_for_bulk()
    later = api.http.get(f"{salesforce.base_url}/_emulator/events", params={"after": 1}).json()["events"]
    assert [e["detail"]["payload"]["ChangeEventHeader"]["changeOrigin"] for e in later] == [
        "com/salesforce/api/bulkapi/59.0;client=billsync"
    ]


def test_events_go_to_the_callback(local_ca: LocalCA) -> None:
    received: list[dict[str, Any]] = []
    settings = EmulatorSettings(cdc_enabled=True, on_change_event=received.append)
    with SalesforceEmulator(local_ca, settings=settings) as emulator:
        api = Api(emulator)
        api.create("Contact", {"LastName": "Lee"})
        assert [e["detail-type"] for e in received] == ["ContactChangeEvent"]
        assert received[0]["detail"]["payload"]["Name"] == {"LastName": "Lee"}
        assert emulator.control.events() == received
