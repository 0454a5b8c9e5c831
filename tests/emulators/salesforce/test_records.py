"""Single-record REST: CRUD, system fields, Ids, formats, and every validation error a sync can hit."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from local.salesforce import SalesforceEmulator
from local.salesforce.ids import canonical_id, to18
from tests.emulators.salesforce.helpers import Api, error

DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")
READ_ONLY = (
    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is "
    "read/write for your profile or permission set."
)


def test_create_get_update_delete(api: Api, salesforce: SalesforceEmulator) -> None:
    created = api.post(
        "/sobjects/Account/", {"Name": "Acme", "AnnualRevenue": 125000, "Billing_Id__c": "main:1"}
    )
    assert created.status_code == 201
    body = created.json()
    assert body == {"id": body["id"], "success": True, "errors": []}
    record_id = body["id"]
    assert created.headers["Location"] == f"/services/data/v59.0/sobjects/Account/{record_id}"
    record = api.get(f"/sobjects/Account/{record_id}").json()
    assert record["attributes"] == {
        "type": "Account",
        "url": f"/services/data/v59.0/sobjects/Account/{record_id}",
    }
    assert record["Name"] == "Acme"
    assert record["AnnualRevenue"] == 125000.0
    assert record["IsDeleted"] is False
    assert record["OwnerId"] == salesforce.credentials["user_id"]
    assert record["CreatedById"] == salesforce.credentials["user_id"]
    assert record["Create_In_Billing__c"] is False
    assert record["Billing_Origin__c"] == "Salesforce"
    assert record["Phone"] is None
    for name in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
        assert DATETIME.match(record[name]), record[name]
    salesforce.control.set_time(advance_seconds=5)
    updated = api.patch(f"/sobjects/Account/{record_id}", {"Phone": "555-0100", "AnnualRevenue": None})
    assert updated.status_code == 204
    assert updated.text == ""
    after = api.get(f"/sobjects/Account/{record_id}").json()
    assert after["Phone"] == "555-0100"
    assert after["AnnualRevenue"] is None
    assert after["CreatedDate"] == record["CreatedDate"]
    assert after["LastModifiedDate"] > record["LastModifiedDate"]
    assert after["SystemModstamp"] > record["SystemModstamp"]
    assert api.delete(f"/sobjects/Account/{record_id}").status_code == 204
    first = error(api.get(f"/sobjects/Account/{record_id}"), 404)
    assert first == {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}


def test_get_with_fields_and_bad_field(api: Api) -> None:
    record_id = api.create("Contact", {"LastName": "Lee", "Email": "lee@example.com"})
    body = api.get(f"/sobjects/Contact/{record_id}", params={"fields": "LastName,Email"}).json()
    assert list(body) == ["attributes", "LastName", "Email"]
    first = error(api.get(f"/sobjects/Contact/{record_id}", params={"fields": "LastName,Foo__c"}), 400)
    assert first["errorCode"] == "INVALID_FIELD"
    assert first["message"].startswith("No such column 'Foo__c' on entity 'Contact'.")


def test_ids_are_18_characters_with_a_valid_checksum_and_accept_15(api: Api) -> None:
    record_id = api.create("Billing_Invoice__c", {"Name": "INV-1"})
    assert len(record_id) == 18
    assert to18(record_id[:15]) == record_id
    assert record_id.startswith(api.get("/sobjects/Billing_Invoice__c/describe").json()["keyPrefix"])
    by15 = api.get(f"/sobjects/Billing_Invoice__c/{record_id[:15]}").json()
    assert by15["Id"] == record_id
    assert api.patch(f"/sobjects/Billing_Invoice__c/{record_id.lower()}", {"Total__c": 1}).status_code == 204
    assert canonical_id(record_id.lower()) == record_id


def test_standard_key_prefixes(api: Api) -> None:
    prefixes = {o["name"]: o["keyPrefix"] for o in api.get("/sobjects/").json()["sobjects"]}
    assert prefixes["Account"] == "001"
    assert prefixes["Contact"] == "003"
    assert prefixes["Opportunity"] == "006"
    assert prefixes["User"] == "005"
    assert prefixes["Note"] == "002"
    assert prefixes["Product2"] == "01t"
    assert prefixes["Pricebook2"] == "01s"
    assert prefixes["PricebookEntry"] == "01u"
    customs = sorted(v for k, v in prefixes.items() if k.endswith("__c"))
    assert customs[0] == "a00"
    assert all(re.match(r"^a0[0-9A-Za-z]$", p) for p in customs)


def test_datetimes_in_and_out(api: Api) -> None:
    record_id = api.create(
        "Billing_Invoice__c",
        {
            "Name": "INV-1",
            "Billing_Updated_At__c": "2024-03-01T12:00:00+02:00",
            "Billing_Last_Synced__c": "2024-03-01T10:00:00Z",
            "Invoice_Date__c": "2024-03-01",
        },
    )
    record = api.get(f"/sobjects/Billing_Invoice__c/{record_id}").json()
    assert record["Billing_Updated_At__c"] == "2024-03-01T10:00:00.000+0000"
    assert record["Billing_Last_Synced__c"] == "2024-03-01T10:00:00.000+0000"
    assert record["Invoice_Date__c"] == "2024-03-01"
    rows = api.query("SELECT Id FROM Billing_Invoice__c WHERE Billing_Updated_At__c = 2024-03-01T10:00:00Z")
    assert rows["totalSize"] == 1


def test_trailing_slashes_and_plus_in_query(api: Api) -> None:
    api.create("Account", {"Name": "Acme Ltd"})
    assert api.get("/limits/").status_code == 200
    assert api.get("/sobjects/Account/describe/").status_code == 200
    plus = api.get("/query/?q=SELECT+Name+FROM+Account+WHERE+Name+=+'Acme+Ltd'")
    assert plus.json()["totalSize"] == 1
    percent = api.get("/query?q=SELECT%20Name%20FROM%20Account")
    assert percent.json()["records"][0]["Name"] == "Acme Ltd"


def test_versions_and_unknown_version(api: Api) -> None:
    versions = api.http.get(f"{api.emulator.base_url}/services/data/").json()
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in versions
    assert versions == sorted(versions, key=lambda v: float(v["version"]))
    assert (
        error(api.get(api.emulator.base_url + "/services/data/v20.0/limits"), 404)["errorCode"] == "NOT_FOUND"
    )
    assert api.emulator.control.calls()["api_usage"]["used"] == 0


def test_unknown_object_and_method_not_allowed(api: Api) -> None:
    assert error(api.get("/sobjects/Nope__c/describe"), 404) == {
        "errorCode": "NOT_FOUND",
        "message": "The requested resource does not exist",
    }
    record_id = api.create("Account", {"Name": "Acme"})
    first = error(api.request("PUT", f"/sobjects/Account/{record_id}", json={}), 405)
    assert first == {
        "errorCode": "METHOD_NOT_ALLOWED",
        "message": "HTTP Method 'PUT' not allowed. Allowed are HEAD,DELETE,GET,PATCH",
    }


# -- validation --------------------------------------------------------------------------------


def test_required_fields(api: Api) -> None:
    assert error(api.post("/sobjects/Account/", {"Phone": "1"}), 400) == {
        "message": "Required fields are missing: [Name]",
        "errorCode": "REQUIRED_FIELD_MISSING",
        "fields": ["Name"],
    }
    assert error(api.post("/sobjects/Billing_Invoice_Line__c/", {"Name": "L1"}), 400) == {
        "message": "Required fields are missing: [Invoice__c]",
        "errorCode": "REQUIRED_FIELD_MISSING",
        "fields": ["Invoice__c"],
    }
    assert error(api.post("/sobjects/Billing_Note__c/", {}), 400)["fields"] == ["Body__c"]
    record_id = api.create("Account", {"Name": "Acme"})
    assert (
        error(api.patch(f"/sobjects/Account/{record_id}", {"Name": None}), 400)["errorCode"]
        == "REQUIRED_FIELD_MISSING"
    )


def test_string_too_long(api: Api) -> None:
    assert error(api.post("/sobjects/Billing_Invoice__c/", {"Name": "X", "Currency__c": "EURO"}), 400) == {
        "message": "Currency: data value too large: EURO (max length=3)",
        "errorCode": "STRING_TOO_LONG",
        "fields": ["Currency__c"],
    }


def test_unknown_field(api: Api) -> None:
    assert error(api.post("/sobjects/Account/", {"Name": "A", "Foo__c": 1}), 400) == {
        "message": "No such column 'Foo__c' on sobject of type Account",
        "errorCode": "INVALID_FIELD",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"Name": "A", "Total__c": "abc"}, "Total__c"),
        ({"Name": "A", "Issue__c": "yes"}, "Issue__c"),
        ({"Name": "A", "Due_Date__c": "2024-02-30"}, "Due_Date__c"),
        ({"Name": "A", "Billing_Updated_At__c": "yesterday"}, "Billing_Updated_At__c"),
        ({"Name": {"nested": 1}}, "Name"),
    ],
)
def test_values_of_the_wrong_type_are_json_parser_errors(
    api: Api, body: dict[str, object], field: str
) -> None:
    first = error(api.post("/sobjects/Billing_Invoice__c/", body), 400)
    assert first["errorCode"] == "JSON_PARSER_ERROR"
    assert first["message"].startswith("Cannot deserialize instance of ")
    assert re.search(r"at \[line:1, column:\d+\]$", first["message"])


def test_numbers_in_strings_and_rounding(api: Api) -> None:
    record_id = api.create("Billing_Invoice__c", {"Name": "A", "Total__c": "12.345", "Balance__c": 2})
    record = api.get(f"/sobjects/Billing_Invoice__c/{record_id}").json()
    assert record["Total__c"] == 12.35
    assert record["Amount_Paid__c"] == 10.35


def test_unparsable_body(api: Api) -> None:
    first = error(api.raw("POST", "/sobjects/Account/", '{"Name": "A",'), 400)
    assert first["errorCode"] == "JSON_PARSER_ERROR"
    first = error(api.raw("POST", "/sobjects/Account/", "[1, 2]"), 400)
    assert first["errorCode"] == "JSON_PARSER_ERROR"


@pytest.mark.parametrize(
    ("sobject", "body", "fields"),
    [
        ("Billing_Invoice__c", {"Name": "A", "Amount_Paid__c": 5}, ["Amount_Paid__c"]),
        ("Billing_Note__c", {"Body__c": "b", "Name": "NOTE-9"}, ["Name"]),
        (
            "Account",
            {"Name": "A", "CreatedDate": "2024-01-01T00:00:00Z", "IsDeleted": False},
            ["CreatedDate", "IsDeleted"],
        ),
    ],
)
def test_read_only_formula_and_auto_number_fields(
    api: Api, sobject: str, body: dict[str, object], fields: list[str]
) -> None:
    assert error(api.post(f"/sobjects/{sobject}/", body), 400) == {
        "message": READ_ONLY.format(", ".join(fields)),
        "errorCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
        "fields": fields,
    }


def test_restricted_picklist(api: Api) -> None:
    assert error(api.post("/sobjects/Billing_Invoice__c/", {"Name": "A", "Status__c": "Foo"}), 400) == {
        "message": "Status: bad value for restricted picklist field: Foo",
        "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "fields": ["Status__c"],
    }
    assert api.post("/sobjects/Account/", {"Name": "A", "Industry": "Anything goes"}).status_code == 201


def test_number_outside_valid_range_and_email(api: Api) -> None:
    first = error(api.post("/sobjects/Billing_Card__c/", {"Exp_Month__c": 123}), 400)
    assert first == {
        "message": "Exp Month: value outside of valid range on numeric field: 123",
        "errorCode": "NUMBER_OUTSIDE_VALID_RANGE",
        "fields": ["Exp_Month__c"],
    }
    assert error(api.post("/sobjects/Contact/", {"LastName": "L", "Email": "not-an-email"}), 400) == {
        "message": "Email: invalid email address: not-an-email",
        "errorCode": "INVALID_EMAIL_ADDRESS",
        "fields": ["Email"],
    }


def test_duplicate_value_on_unique_external_id(api: Api) -> None:
    first_id = api.create("Billing_Invoice__c", {"Name": "A", "Billing_Id__c": "main:1"})
    assert error(
        api.post("/sobjects/Billing_Invoice__c/", {"Name": "B", "Billing_Id__c": "MAIN:1"}), 400
    ) == {
        "message": f"duplicate value found: Billing_Id__c duplicates value on record with id: {first_id}",
        "errorCode": "DUPLICATE_VALUE",
        "fields": [],
    }
    assert api.delete(f"/sobjects/Billing_Invoice__c/{first_id}").status_code == 204
    assert (
        api.post("/sobjects/Billing_Invoice__c/", {"Name": "B", "Billing_Id__c": "MAIN:1"}).status_code == 201
    )


def test_cross_reference_errors(api: Api) -> None:
    account = api.create("Account", {"Name": "Acme"})
    contact = api.create("Contact", {"LastName": "Lee"})
    assert error(api.post("/sobjects/Contact/", {"LastName": "L", "AccountId": contact}), 400) == {
        "message": f"Account ID: id value of incorrect type: {contact}",
        "errorCode": "FIELD_INTEGRITY_EXCEPTION",
        "fields": ["AccountId"],
    }
    assert error(api.post("/sobjects/Contact/", {"LastName": "L", "AccountId": "garbage"}), 400) == {
        "message": "Account ID: id value of incorrect type: garbage",
        "errorCode": "MALFORMED_ID",
        "fields": ["AccountId"],
    }
    assert api.delete(f"/sobjects/Account/{account}").status_code == 204
    assert error(api.post("/sobjects/Contact/", {"LastName": "L", "AccountId": account}), 400) == {
        "message": "invalid cross reference id",
        "errorCode": "INVALID_CROSS_REFERENCE_KEY",
        "fields": [],
    }


def test_external_id_relationship_references(api: Api) -> None:
    account = api.create("Account", {"Name": "Acme", "Billing_Id__c": "main:3100"})
    contact = api.post("/sobjects/Contact/", {"LastName": "Lee", "Account": {"Billing_Id__c": "main:3100"}})
    assert contact.status_code == 201
    assert api.get(f"/sobjects/Contact/{contact.json()['id']}").json()["AccountId"] == account
    invoice = api.create("Billing_Invoice__c", {"Name": "INV", "Account__r": {"Billing_Id__c": "MAIN:3100"}})
    assert api.get(f"/sobjects/Billing_Invoice__c/{invoice}").json()["Account__c"] == account
    assert error(
        api.post("/sobjects/Billing_Invoice__c/", {"Name": "X", "Account__r": {"Billing_Id__c": "main:404"}}),
        400,
    ) == {
        "message": "Foreign key external ID: main:404 not found for field Billing_Id__c in entity Account",
        "errorCode": "INVALID_FIELD",
        "fields": [],
    }
    assert error(
        api.post(
            "/sobjects/Billing_Invoice__c/",
            {"Name": "X", "Account__r": {"Billing_Id__c": "main:3100", "Name": "Acme"}},
        ),
        400,
    ) == {
        "message": "More than 1 field provided in an external foreign key reference in entity: Account",
        "errorCode": "INVALID_FIELD",
    }
    both = error(
        api.post(
            "/sobjects/Billing_Invoice__c/",
            {"Account__c": account, "Account__r": {"Billing_Id__c": "main:3100"}},
        ),
        400,
    )
    assert (
        both["message"]
        == "Cannot specify both an external ID reference Account__r and a salesforce id, Account__c"
    )


def test_deleted_and_missing_records(api: Api) -> None:
    record_id = api.create("Account", {"Name": "Acme"})
    api.delete(f"/sobjects/Account/{record_id}")
    deleted = {"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}
    assert error(api.patch(f"/sobjects/Account/{record_id}", {"Name": "B"}), 404) == deleted
    assert error(api.delete(f"/sobjects/Account/{record_id}"), 404) == deleted
    missing = "001" + record_id[3:15]
    missing = to18(missing[:9] + "ZZZZZZ")
    assert error(api.patch(f"/sobjects/Account/{missing}", {"Name": "B"}), 404) == {
        "errorCode": "NOT_FOUND",
        "message": "The requested resource does not exist",
    }


def test_malformed_ids_in_paths(api: Api) -> None:
    contact = api.create("Contact", {"LastName": "Lee"})
    for bad in ("garbage", contact, contact[:15] + "AAA"):
        assert error(api.patch(f"/sobjects/Account/{bad}", {"Name": "x"}), 400) == {
            "message": f"Account ID: id value of incorrect type: {bad}",
            "errorCode": "MALFORMED_ID",
            "fields": ["Id"],
        }
    assert error(api.get(f"/sobjects/Account/{contact}"), 404) == {
        "errorCode": "NOT_FOUND",
        "message": f"Provided external ID field does not exist or is not accessible: {contact}",
    }


def test_id_in_create_body_is_refused(api: Api) -> None:
    record_id = api.create("Account", {"Name": "A"})
    assert error(api.post("/sobjects/Account/", {"Id": record_id, "Name": "B"}), 400) == {
        "message": "cannot specify Id in an insert call",
        "errorCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
        "fields": ["Id"],
    }


# -- upsert ------------------------------------------------------------------------------------


def test_upsert_status_matrix(api: Api, salesforce: SalesforceEmulator) -> None:
    created = api.patch("/sobjects/Billing_Invoice__c/Billing_Id__c/main:inv-1", {"Name": "INV-1"})
    assert created.status_code == 201
    body = created.json()
    assert body == {"id": body["id"], "success": True, "errors": [], "created": True}
    updated = api.patch("/sobjects/Billing_Invoice__c/Billing_Id__c/MAIN:INV-1", {"Name": "INV-1b"})
    assert updated.status_code == 200
    assert updated.json() == {"id": body["id"], "success": True, "errors": [], "created": False}
    old = Api(salesforce, version="45.0")
    assert (
        old.patch("/sobjects/Billing_Invoice__c/Billing_Id__c/main:inv-1", {"Name": "x"}).status_code == 404
    )
    assert error(api.patch("/sobjects/Billing_Invoice__c/Nope__c/1", {"Name": "x"}), 404) == {
        "errorCode": "NOT_FOUND",
        "message": "Provided external ID field does not exist or is not accessible: Nope__c",
    }
    assert error(api.patch("/sobjects/Billing_Invoice__c/Currency__c/USD", {"Name": "x"}), 400) == {
        "errorCode": "INVALID_FIELD",
        "message": "Invalid field for upsert, must be an External Id custom or standard indexed field: Currency__c",
    }


def test_upsert_ignores_deleted_records_and_several_matches_give_300(
    api: Api, salesforce: SalesforceEmulator
) -> None:
    first = api.patch("/sobjects/Account/Billing_Id__c/main:9", {"Name": "A"}).json()["id"]
    api.delete(f"/sobjects/Account/{first}")
    second = api.patch("/sobjects/Account/Billing_Id__c/main:9", {"Name": "B"})
    assert second.status_code == 201
    assert second.json()["id"] != first
    ids = salesforce.control.seed(
        "Product2", [{"Name": "P1", "ExternalId": "x"}, {"Name": "P2", "ExternalId": "X"}]
    )
    several = api.patch("/sobjects/Product2/ExternalId/x", {"Name": "P3"})
    assert several.status_code == 300
    assert sorted(several.json()) == sorted(f"/services/data/v59.0/sobjects/Product2/{i}" for i in ids)
    assert api.get("/sobjects/Product2/ExternalId/x").status_code == 300
    assert error(api.get("/sobjects/Product2/ExternalId/none"), 404)["errorCode"] == "NOT_FOUND"


def test_upsert_on_detail_keeps_its_master(api: Api) -> None:
    api.patch("/sobjects/Billing_Invoice__c/Billing_Id__c/main:1", {"Name": "INV"})
    api.patch("/sobjects/Billing_Invoice__c/Billing_Id__c/main:2", {"Name": "INV2"})
    line = {"Name": "L1", "Invoice__r": {"Billing_Id__c": "main:1"}, "Amount__c": 5}
    assert api.patch("/sobjects/Billing_Invoice_Line__c/Billing_Id__c/main:l1", line).status_code == 201
    assert api.patch("/sobjects/Billing_Invoice_Line__c/Billing_Id__c/main:l1", line).status_code == 200
    moved = {**line, "Invoice__r": {"Billing_Id__c": "main:2"}}
    first = error(api.patch("/sobjects/Billing_Invoice_Line__c/Billing_Id__c/main:l1", moved), 400)
    assert first["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert first["fields"] == ["Invoice__c"]


# -- relationships and derived fields ----------------------------------------------------------


def test_master_detail_cascade_and_lookup_set_null(api: Api, salesforce: SalesforceEmulator) -> None:
    account = api.create("Account", {"Name": "Acme"})
    invoice = api.create("Billing_Invoice__c", {"Name": "INV", "Account__c": account})
    line = api.create("Billing_Invoice_Line__c", {"Name": "L", "Invoice__c": invoice})
    note = api.create("Billing_Note__c", {"Body__c": "hello", "Invoice__c": invoice})
    assert api.delete(f"/sobjects/Billing_Invoice__c/{invoice}").status_code == 204
    assert api.get(f"/sobjects/Billing_Invoice_Line__c/{line}").status_code == 404
    assert api.get(f"/sobjects/Billing_Note__c/{note}").json()["Invoice__c"] is None
    all_lines = api.get(
        "/queryAll/", params={"q": "SELECT Id, IsDeleted FROM Billing_Invoice_Line__c"}
    ).json()
    assert all_lines["records"][0]["IsDeleted"] is True
    restored = salesforce.control.undelete(invoice)
    assert set(restored) == {invoice, line}
    assert api.get(f"/sobjects/Billing_Invoice_Line__c/{line}").status_code == 200
    assert api.get(f"/sobjects/Billing_Note__c/{note}").json()["Invoice__c"] == invoice
    assert api.delete(f"/sobjects/Account/{account}").status_code == 204
    assert api.get(f"/sobjects/Billing_Invoice__c/{invoice}").json()["Account__c"] is None


def test_formula_auto_number_compound_fields(api: Api) -> None:
    invoice = api.create("Billing_Invoice__c", {"Name": "INV", "Total__c": 100})
    record = api.get(f"/sobjects/Billing_Invoice__c/{invoice}").json()
    assert record["Amount_Paid__c"] == 100.0
    notes = [api.create("Billing_Note__c", {"Body__c": "b"}) for _ in range(2)]
    names = [api.get(f"/sobjects/Billing_Note__c/{n}").json()["Name"] for n in notes]
    assert names == ["NOTE-000001", "NOTE-000002"]
    account = api.create("Account", {"Name": "A", "BillingCity": "Lyon", "BillingCountry": "France"})
    address = api.get(f"/sobjects/Account/{account}").json()["BillingAddress"]
    assert address["city"] == "Lyon"
    assert address["country"] == "France"
    assert address["street"] is None


def test_opportunity_stage_rules(api: Api) -> None:
    opportunity = api.create(
        "Opportunity", {"Name": "Deal", "StageName": "Closed Won", "CloseDate": "2024-03-01", "Amount": 10}
    )
    record = api.get(f"/sobjects/Opportunity/{opportunity}").json()
    assert record["IsClosed"] is True
    assert record["IsWon"] is True
    assert record["Probability"] == 100.0
    assert record["ExpectedRevenue"] == 10.0


def test_pricebook_entries_need_a_standard_price_first(api: Api) -> None:
    standard = api.query("SELECT Id FROM Pricebook2 WHERE IsStandard = true")["records"][0]["Id"]
    product = api.create("Product2", {"Name": "Widget", "ProductCode": "W-1", "IsActive": True})
    custom = api.create("Pricebook2", {"Name": "EU", "IsActive": True})
    assert error(
        api.post(
            "/sobjects/PricebookEntry/", {"Pricebook2Id": custom, "Product2Id": product, "UnitPrice": 9}
        ),
        400,
    ) == {
        "message": "No standard price defined for this product",
        "errorCode": "STANDARD_PRICE_NOT_DEFINED",
        "fields": [],
    }
    entry = api.create(
        "PricebookEntry", {"Pricebook2Id": standard, "Product2Id": product, "UnitPrice": 10, "IsActive": True}
    )
    assert api.get(f"/sobjects/PricebookEntry/{entry}").json()["Name"] == "Widget"
    assert (
        api.post(
            "/sobjects/PricebookEntry/", {"Pricebook2Id": custom, "Product2Id": product, "UnitPrice": 9}
        ).status_code
        == 201
    )
    assert (
        error(
            api.post(
                "/sobjects/PricebookEntry/",
                {"Pricebook2Id": standard, "Product2Id": product, "UnitPrice": 11},
            ),
            400,
        )["errorCode"]
        == "DUPLICATE_VALUE"
    )


def test_seeded_standard_data(api: Api, salesforce: SalesforceEmulator) -> None:
    org = api.query("SELECT Id, IsSandbox, Name FROM Organization")
    assert org["records"][0]["Id"] == salesforce.credentials["org_id"]
    assert org["records"][0]["IsSandbox"] is True
    users = api.query("SELECT Username FROM User ORDER BY Username")["records"]
    assert {u["Username"] for u in users} == {
        salesforce.credentials["username"],
        salesforce.credentials["human_username"],
    }
    assert error(api.post("/sobjects/Organization/", {"Name": "x"}), 400) == {
        "message": "entity type cannot be inserted: Organization",
        "errorCode": "INVALID_TYPE_FOR_OPERATION",
        "fields": [],
    }


def test_getupdated_and_getdeleted_windows(api: Api, salesforce: SalesforceEmulator) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    kept = api.create("Account", {"Name": "Kept"})
    gone = api.create("Account", {"Name": "Gone"})
    api.delete(f"/sobjects/Account/{gone}")
    salesforce.control.set_time(advance_seconds=90)
    end = datetime.now(UTC) + timedelta(minutes=10)
    window = {"start": start.isoformat(), "end": end.isoformat()}
    updated = api.get("/sobjects/Account/updated/", params=window).json()
    assert updated["ids"] == [kept]
    assert DATETIME.match(updated["latestDateCovered"])
    deleted = api.get("/sobjects/Account/deleted/", params=window).json()
    assert [d["id"] for d in deleted["deletedRecords"]] == [gone]
    assert DATETIME.match(deleted["deletedRecords"][0]["deletedDate"])
    assert (
        error(api.get("/sobjects/Account/updated/", params={"start": "x", "end": "y"}), 400)["errorCode"]
        == "MALFORMED_QUERY"
    )
    old = {"start": (start - timedelta(days=31)).isoformat(), "end": end.isoformat()}
    assert (
        error(api.get("/sobjects/Account/updated/", params=old), 400)["errorCode"]
        == "INVALID_REPLICATION_DATE"
    )
    old_deleted = {"start": (start - timedelta(days=16)).isoformat(), "end": end.isoformat()}
    assert (
        error(api.get("/sobjects/Account/deleted/", params=old_deleted), 400)["errorCode"]
        == "INVALID_REPLICATION_DATE"
    )
    backwards = {"start": end.isoformat(), "end": start.isoformat()}
    assert (
        error(api.get("/sobjects/Account/updated/", params=backwards), 400)["errorCode"]
        == "INVALID_REPLICATION_DATE"
    )


def test_notes_attach_to_any_parent_and_go_with_it(api: Api) -> None:
    account = api.create("Account", {"Name": "Acme"})
    invoice = api.create("Billing_Invoice__c", {"Name": "INV"})
    note = api.create("Note", {"ParentId": account, "Title": "Call back", "Body": "Tuesday"})
    api.create("Note", {"ParentId": invoice, "Title": "On the invoice"})
    assert error(api.post("/sobjects/Note/", {"ParentId": account}), 400)["fields"] == ["Title"]
    rows = api.query("SELECT Title, Parent.Name FROM Note ORDER BY Title")["records"]
    assert [(r["Title"], r["Parent"]["attributes"]["type"], r["Parent"]["Name"]) for r in rows] == [
        ("Call back", "Account", "Acme"),
        ("On the invoice", "Billing_Invoice__c", "INV"),
    ]
    children = api.query("SELECT Name, (SELECT Title FROM Notes) FROM Account")["records"][0]["Notes"]
    assert children["totalSize"] == 1
    assert api.delete(f"/sobjects/Account/{account}").status_code == 204
    assert api.get(f"/sobjects/Note/{note}").status_code == 404
