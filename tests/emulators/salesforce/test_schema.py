"""The schema comes from billsync's metadata package: every field in the XML is described as deployed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from local.salesforce import SalesforceEmulator
from local.salesforce.emulator import DEFAULT_METADATA_DIR
from local.salesforce.schema import SchemaError, load_schema
from tests.emulators.salesforce.helpers import Api

NS = "{http://soap.sforce.com/2006/04/metadata}"
OBJECTS = DEFAULT_METADATA_DIR / "force-app" / "main" / "default" / "objects"
TYPES = {
    "Text": "string",
    "LongTextArea": "textarea",
    "Checkbox": "boolean",
    "Currency": "currency",
    "Number": "double",
    "Date": "date",
    "DateTime": "datetime",
    "Url": "url",
    "Picklist": "picklist",
    "Lookup": "reference",
    "MasterDetail": "reference",
    "EncryptedText": "encryptedstring",
}


def text(element: ET.Element, tag: str) -> str | None:
    child = element.find(NS + tag)
    return None if child is None or child.text is None else child.text.strip()


def package_fields() -> list[tuple[str, ET.Element]]:
    found = []
    for path in sorted(OBJECTS.glob("*/fields/*.field-meta.xml")):
        found.append((path.parent.parent.name, ET.parse(path).getroot()))  # noqa: S314 - the project's own package
    assert len(found) > 100
    return found


@pytest.fixture(scope="module")
def describes(salesforce_emulator: SalesforceEmulator) -> dict[str, dict[str, Any]]:
    api = Api(salesforce_emulator)
    names = {obj for obj, _ in package_fields()}
    names |= {text(xml, "referenceTo") or "" for _, xml in package_fields()} - {""}
    return {name: api.get(f"/sobjects/{name}/describe").json() for name in names}


@pytest.mark.parametrize(
    ("sobject", "xml"), package_fields(), ids=lambda v: v if isinstance(v, str) else text(v, "fullName")
)
def test_every_package_field_is_described_as_deployed(
    describes: dict[str, dict[str, Any]], sobject: str, xml: ET.Element
) -> None:
    name = text(xml, "fullName") or ""
    mtype = text(xml, "type") or ""
    fields = {f["name"]: f for f in describes[sobject]["fields"]}
    assert name in fields
    field = fields[name]
    assert field["type"] == TYPES[mtype]
    assert field["custom"] is True
    assert field["label"] == text(xml, "label")
    formula = text(xml, "formula")
    assert field["calculated"] is (formula is not None)
    assert field["calculatedFormula"] == formula
    if formula is not None:
        assert field["createable"] is False
        assert field["updateable"] is False
    required = text(xml, "required") == "true" or mtype == "MasterDetail"
    if mtype == "Checkbox":
        assert field["nillable"] is False
        assert field["defaultValue"] is (text(xml, "defaultValue") == "true")
    else:
        assert field["nillable"] is (not required)
    if mtype in ("Text", "LongTextArea", "EncryptedText"):
        assert field["length"] == int(text(xml, "length") or 0)
    if mtype == "Url":
        assert field["length"] == 255
    if mtype in ("Currency", "Number"):
        assert field["precision"] == int(text(xml, "precision") or 0)
        assert field["scale"] == int(text(xml, "scale") or 0)
    assert field["externalId"] is (text(xml, "externalId") == "true")
    assert field["unique"] is (text(xml, "unique") == "true")
    if text(xml, "caseSensitive") is not None:
        assert field["caseSensitive"] is (text(xml, "caseSensitive") == "true")
    if mtype in ("Lookup", "MasterDetail"):
        assert field["referenceTo"] == [text(xml, "referenceTo")]
        assert field["relationshipName"] == name[:-3] + "__r"
        assert field["cascadeDelete"] is (mtype == "MasterDetail")
        if mtype == "MasterDetail":
            assert field["updateable"] is (text(xml, "reparentableMasterDetail") == "true")
            assert field["relationshipOrder"] == int(text(xml, "relationshipOrder") or 0)
        parent = describes[text(xml, "referenceTo") or ""]
        children = {(c["childSObject"], c["field"]): c for c in parent["childRelationships"]}
        child = children[(sobject, name)]
        assert child["relationshipName"] == f"{text(xml, 'relationshipName')}__r"
        assert child["cascadeDelete"] is (mtype == "MasterDetail")
    else:
        assert field["referenceTo"] == []
        assert field["relationshipName"] is None
    if mtype == "Picklist":
        value_set = xml.find(NS + "valueSet")
        assert value_set is not None
        assert field["restrictedPicklist"] is (text(value_set, "restricted") == "true")
        expected = [
            {
                "value": text(v, "fullName"),
                "label": text(v, "label"),
                "defaultValue": text(v, "default") == "true",
            }
            for v in value_set.iter(NS + "value")
        ]
        got = [{k: p[k] for k in ("value", "label", "defaultValue")} for p in field["picklistValues"]]
        assert got == expected
    else:
        assert field["picklistValues"] == []


def test_custom_objects_and_their_standard_fields(describes: dict[str, dict[str, Any]]) -> None:
    invoice = describes["Billing_Invoice__c"]
    assert invoice["custom"] is True
    assert invoice["label"] == "Billing Invoice"
    assert invoice["labelPlural"] == "Billing Invoices"
    names = [f["name"] for f in invoice["fields"]]
    assert names[:4] == ["Id", "OwnerId", "IsDeleted", "Name"]
    name = next(f for f in invoice["fields"] if f["name"] == "Name")
    assert name["nameField"] is True
    assert name["nillable"] is False
    line = describes["Billing_Invoice_Line__c"]
    assert "OwnerId" not in [f["name"] for f in line["fields"]]
    note = next(f for f in describes["Billing_Note__c"]["fields"] if f["name"] == "Name")
    assert note["autoNumber"] is True
    assert note["createable"] is False


def test_standard_objects_carry_the_package_fields(api: Api) -> None:
    account = {f["name"]: f for f in api.get("/sobjects/Account/describe").json()["fields"]}
    assert {"Name", "BillingCity", "OwnerId", "Billing_Id__c", "Create_In_Billing__c"} <= set(account)
    assert account["Name"]["nillable"] is False
    contact = {f["name"]: f for f in api.get("/sobjects/Contact/describe").json()["fields"]}
    assert contact["AccountId"]["relationshipName"] == "Account"
    assert contact["Billing_Id__c"]["externalId"] is True
    global_names = {o["name"] for o in api.get("/sobjects").json()["sobjects"]}
    assert {
        "Account",
        "Contact",
        "Opportunity",
        "Product2",
        "Pricebook2",
        "PricebookEntry",
        "Note",
        "User",
    } <= global_names


def test_describe_honours_if_modified_since(api: Api) -> None:
    future = "Wed, 01 Jan 2100 00:00:00 GMT"
    assert api.get("/sobjects/Account/describe", headers={"If-Modified-Since": future}).status_code == 304
    assert (
        api.get("/sobjects", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code
        == 200
    )


def test_fields_without_permission_are_invisible(tmp_path: Path) -> None:
    copy = tmp_path / "salesforce"
    _copy_package(DEFAULT_METADATA_DIR, copy)
    permission_set = next(copy.glob("**/permissionsets/*.permissionset-meta.xml"))
    content = permission_set.read_text()
    start = content.index("<field>Billing_Invoice__c.Notes__c</field>")
    opening = content.rindex("<fieldPermissions>", 0, start)
    closing = content.index("</fieldPermissions>", start) + len("</fieldPermissions>")
    permission_set.write_text(content[:opening] + content[closing:])
    enforced = load_schema(copy).get_object("Billing_Invoice__c")
    assert enforced is not None
    assert enforced.get_field("Notes__c") is None
    everything = load_schema(copy, enforce_permission_sets=False).get_object("Billing_Invoice__c")
    assert everything is not None
    assert everything.get_field("Notes__c") is not None


def test_unsupported_metadata_is_refused_not_guessed(tmp_path: Path) -> None:
    copy = tmp_path / "salesforce"
    _copy_package(DEFAULT_METADATA_DIR, copy)
    formula = next(copy.glob("**/Amount_Paid__c.field-meta.xml"))
    formula.write_text(formula.read_text().replace("Total__c - Balance__c", "ROUND(Total__c, 0)"))
    with pytest.raises(SchemaError):
        load_schema(copy)


def _copy_package(source: Path, target: Path) -> None:
    for path in source.rglob("*"):
        if path.is_file():
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(path.read_bytes())
