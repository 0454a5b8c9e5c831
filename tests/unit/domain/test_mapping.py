"""The mapping engine: loading and validating mapping files, and applying them to records."""

from __future__ import annotations

import ast
import pickle
import re
import textwrap
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from billsync.domain.mapping import (
    FieldMappingError,
    MappedChild,
    Mapping,
    MappingContext,
    MappingError,
    MappingProblem,
    apply_mapping,
    load_mapping,
    load_mapping_dict,
    relationship_id_field,
)
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "mapping.md"
PRESETS = sorted(ROOT.glob("shared/billsync/connectors/*/mappings/*.yaml"))
CTX = MappingContext(source_key="main", record_id="4401")


def to_salesforce(
    *fields: dict[str, Any], children: dict[str, Any] | None = None, **salesforce: Any
) -> Mapping:
    data: dict[str, Any] = {
        "object": "invoice",
        "direction": "to_salesforce",
        "salesforce": {"object": "Billing_Invoice__c", "external_id": "Billing_Id__c", **salesforce},
        "fields": list(fields),
    }
    if children is not None:
        data["children"] = children
    return load_mapping_dict(data)


def to_billing(*fields: dict[str, Any], children: dict[str, Any] | None = None, **salesforce: Any) -> Mapping:
    data: dict[str, Any] = {
        "object": "invoice",
        "direction": "to_billing",
        "salesforce": {"object": "Billing_Invoice__c", "external_id": "Billing_Id__c", **salesforce},
        "fields": list(fields),
    }
    if children is not None:
        data["children"] = children
    return load_mapping_dict(data)


def lines(*fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A to_salesforce child collection over `items`."""
    return {
        "lines": {
            "from": "items",
            "id": "id",
            "salesforce": {
                "object": "Billing_Invoice_Line__c",
                "external_id": "Billing_Id__c",
                "parent_field": "Invoice__r",
            },
            "fields": list(fields),
            **extra,
        }
    }


def billing_lines(*fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A to_billing child collection over `Lines__r`."""
    return {
        "lines": {
            "from": "Lines__r",
            "to": "items",
            "salesforce": {"object": "Billing_Invoice_Line__c", "external_id": "Billing_Id__c"},
            "fields": list(fields),
            **extra,
        }
    }


def fields_of(mapping: Mapping, record: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return apply_mapping(mapping, record, CTX, **kwargs).fields


def refused(data: dict[str, Any]) -> MappingError:
    with pytest.raises(MappingError) as caught:
        load_mapping_dict(data)
    return caught.value


def yaml_blocks(text: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)


def full_mappings_in_docs() -> list[str]:
    blocks = yaml_blocks(DOCS.read_text(encoding="utf-8"))
    return [block for block in blocks if re.search(r"^object:", block, flags=re.MULTILINE)]


# --- the documented example and the presets -------------------------------------------------------

INVOICE = {
    "id": 4401,
    "object": "invoice",
    "customer": 3100,
    "name": "Acme",
    "number": "INV-0042",
    "currency": "usd",
    "status": "paid",
    "total": 51.15,
    "date": 1717000000,
    "purchase_order": None,
    "items": [
        {"id": 17, "name": "Widget", "quantity": 2, "unit_cost": 25.0, "amount": 50.0},
        {"id": 18, "name": "Shipping", "quantity": 1, "unit_cost": "1.15", "amount": 1.15},
    ],
}


def test_docs_example_maps_an_invoiced_invoice_as_documented() -> None:
    mapping = load_mapping(full_mappings_in_docs()[0], name="docs example")

    mapped = apply_mapping(mapping, INVOICE, CTX)

    assert mapped.fields == {
        "Name": "INV-0042",
        "Status__c": "Paid",
        "Total__c": Decimal("51.15"),
        "Invoice_Date__c": date(2024, 5, 29),
        "Currency__c": "USD",
        "Account__r": {"Billing_Id__c": "main:3100"},
        "Payment_Terms__c": "NET 30",
        "Purchase_Order__c": None,
        "Description__c": "Acme (INV-0042)",
        "Type__c": "Invoice",
    }
    assert mapped.children == {
        "lines": [
            MappedChild(
                "17",
                {
                    "Name": "Widget",
                    "Quantity__c": Decimal(2),
                    "Unit_Cost__c": Decimal("25.0"),
                    "Amount__c": Decimal("50.0"),
                    "Line_Number__c": 1,
                },
            ),
            MappedChild(
                "18",
                {
                    "Name": "Shipping",
                    "Quantity__c": Decimal(1),
                    "Unit_Cost__c": Decimal("1.15"),
                    "Amount__c": Decimal("1.15"),
                    "Line_Number__c": 2,
                },
            ),
        ]
    }


def test_every_complete_mapping_in_the_docs_loads() -> None:
    blocks = full_mappings_in_docs()
    assert len(blocks) >= 3
    for index, block in enumerate(blocks):
        load_mapping(block, name=f"docs block {index}")


@pytest.mark.parametrize("path", PRESETS, ids=lambda path: f"{path.parts[-3]}/{path.name}")
def test_connector_preset_loads_and_maps_an_empty_record(path: Path) -> None:
    mapping = load_mapping(path)

    assert path.name == f"{mapping.object}.{mapping.direction}.yaml"
    mapped = apply_mapping(mapping, {}, CTX)
    assert set(mapped.fields) <= {target.split(".")[0] for target in mapping.target_fields()}
    assert mapped.children == {}  # no lists in the record: existing children are left alone


# --- loading --------------------------------------------------------------------------------------

SMALL = """\
object: invoice
direction: to_salesforce
salesforce: {object: Billing_Invoice__c, external_id: Billing_Id__c}
fields:
  - {to: Name, from: number}
"""


def test_load_mapping_reads_a_path_a_file_name_or_text(tmp_path: Path) -> None:
    file = tmp_path / "invoice.to_salesforce.yaml"
    file.write_text(SMALL, encoding="utf-8")

    from_path = load_mapping(file)
    from_name = load_mapping(str(file))
    from_text = load_mapping(SMALL)

    assert from_path == from_name == from_text
    assert fields_of(from_text, {"number": "INV-1"}) == {"Name": "INV-1"}


def test_errors_name_the_file_by_default_or_by_the_name_given(tmp_path: Path) -> None:
    file = tmp_path / "invoice.yaml"
    file.write_text(SMALL.replace("from: number", "from: number, frm: x"), encoding="utf-8")

    with pytest.raises(MappingError) as by_path:
        load_mapping(file)
    with pytest.raises(MappingError) as by_name:
        load_mapping(file, name="invoiced preset invoice.yaml")

    assert str(by_path.value) == f"{file}:5:30: fields[0].frm: unknown key 'frm': did you mean 'from'?"
    assert str(by_name.value).startswith("invoiced preset invoice.yaml:5:30: ")


def test_a_missing_or_unreadable_file_is_a_mapping_error(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"missing\.yaml: cannot read the file"):
        load_mapping(tmp_path / "missing.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(MappingError, match="not UTF-8"):
        load_mapping(binary)


def test_problems_carry_file_line_column_and_key_path() -> None:
    text = textwrap.dedent(
        """\
        object: invoice
        direction: to_salesforce
        salesforce:
          object: Billing_Invoice__c
          external_id: Billing_Id__c
        fields:
          - to: Name
            from: number
          - to: Status__c
            from: status
            transform:
              - upper
              - picklist: {}
          - to: Total__c
            from: total
            transform: [upper, {round: 2}]
        """
    )

    with pytest.raises(MappingError) as caught:
        load_mapping(text, name="invoice.yaml")

    error = caught.value
    assert error.problems == (
        MappingProblem("fields[1].transform[1].picklist.map", "the map is empty", 13, 9),
        MappingProblem(
            "fields[2].transform[1]",
            "round takes an integer or a decimal number, but the value is text here after upper",
            16,
            24,
        ),
    )
    assert (error.path, error.line, error.column) == ("fields[1].transform[1].picklist.map", 13, 9)
    assert str(error).splitlines() == [
        "invoice.yaml:13:9: fields[1].transform[1].picklist.map: the map is empty",
        "invoice.yaml:16:24: fields[2].transform[1]: round takes an integer or a decimal number, "
        "but the value is text here after upper",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("object: invoice\nfields: [a, b\n", "<string>:3:1: not valid YAML: while parsing a flow sequence"),
        (
            "object: invoice\n  direction: x\n",
            "<string>:2:12: not valid YAML: mapping values are not allowed here",
        ),
        ("object: invoice\nobject: payment\n", "<string>:2:1: object: 'object' is written twice"),
        ("", "<string>: the mapping is empty"),
        ("# only a comment\n", "<string>: the mapping is empty"),
        ("- a\n- b\n", "<string>: expected a mapping at the top level, got a list of 2"),
        ("just text\n", "<string>: expected a mapping at the top level, got 'just text'"),
        ("a: &x [*x]\n", "<string>:1:4: recursive aliases are not supported"),
        ("a: .inf\n", "<string>:1:4: not valid YAML: infinite and NaN numbers are not supported"),
        ("a: 1\n---\nb: 2\n", "<string>:2:1: not valid YAML: expected a single document"),
        (
            "a: !!python/object:os.system x\n",
            "<string>:1:4: not valid YAML: could not determine a constructor",
        ),
        ("a: !!int abc\n", "<string>:1:4: not valid YAML: 'abc' is not an integer"),
        ("a: !!float abc\n", "<string>:1:4: not valid YAML: 'abc' is not a number"),
        ("a: !!float Infinity\n", "<string>:1:4: not valid YAML: infinite and NaN numbers are not supported"),
        ("a: " + "[" * 1000 + "]" * 1000 + "\n", "<string>: the document is nested too deeply"),
    ],
)
def test_yaml_that_is_not_a_mapping_file_is_refused(text: str, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        load_mapping(text)
    assert str(caught.value).startswith(message)


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    started = time.perf_counter()

    with pytest.raises(MappingError, match="more than 50000 nodes once its aliases are expanded"):
        load_mapping("\n".join(levels) + "\n")

    assert time.perf_counter() - started < 1


def test_yaml_values_are_read_the_yaml_1_2_way() -> None:
    mapping = load_mapping(
        textwrap.dedent(
            """\
            object: invoice
            direction: to_salesforce
            salesforce: {object: Billing_Invoice__c, external_id: Billing_Id__c}
            fields:
              - {to: A__c, constant: yes}
              - {to: B__c, constant: off}
              - {to: C__c, constant: 010}
              - {to: D__c, constant: 19.90}
              - {to: E__c, constant: 2024-05-01}
              - {to: F__c, constant: true}
              - {to: G__c, constant: 0x1F}
              - {to: H__c, constant: 1e3}
              - {to: I__c, from: answer, transform: [{picklist: {yes: Oui, no: Non, 1: Un}}]}
            """
        )
    )

    mapped = fields_of(mapping, {"answer": 1})

    assert mapped == {
        "A__c": "yes",
        "B__c": "off",
        "C__c": 10,
        "D__c": Decimal("19.90"),
        "E__c": "2024-05-01",
        "F__c": True,
        "G__c": 31,
        "H__c": Decimal("1e3"),
        "I__c": "Un",
    }
    assert fields_of(mapping, {"answer": "yes"})["I__c"] == "Oui"


def test_anchors_and_merge_keys_work_and_an_override_is_not_a_duplicate() -> None:
    mapping = load_mapping(
        textwrap.dedent(
            """\
            object: invoice
            direction: to_salesforce
            salesforce: {object: Billing_Invoice__c, external_id: Billing_Id__c}
            fields:
              - &money {to: Total__c, from: total, transform: [decimal]}
              - {<<: *money, to: Balance__c, from: balance}
            """
        )
    )

    assert fields_of(mapping, {"total": "10", "balance": "2.5"}) == {
        "Total__c": Decimal(10),
        "Balance__c": Decimal("2.5"),
    }


def test_load_mapping_dict_converts_floats_to_exact_decimals() -> None:
    mapping = to_salesforce(
        {"to": "Fee__c", "constant": 0.1}, {"to": "Rate__c", "from": "rate", "default": 1.5}
    )
    assert fields_of(mapping, {}) == {"Fee__c": Decimal("0.1"), "Rate__c": Decimal("1.5")}


def test_a_loaded_mapping_dumps_back_to_what_loads_it_again() -> None:
    mapping = load_mapping(full_mappings_in_docs()[0])

    dumped = mapping.model_dump(by_alias=True, exclude_unset=True)

    assert dumped["fields"][1]["transform"] == [
        {
            "picklist": {
                "draft": "Draft",
                "not_sent": "Not Sent",
                "sent": "Sent",
                "paid": "Paid",
                "voided": "Voided",
            }
        }
    ]
    assert load_mapping_dict(dumped) == mapping


def test_a_mapping_is_frozen() -> None:
    mapping = to_salesforce({"to": "Name", "from": "number"})
    with pytest.raises(ValidationError):
        mapping.object = "payment"  # type: ignore[misc]


# --- what is refused when a mapping is loaded -----------------------------------------------------

BASE: dict[str, Any] = {
    "object": "invoice",
    "direction": "to_salesforce",
    "salesforce": {"object": "Billing_Invoice__c", "external_id": "Billing_Id__c"},
    "fields": [{"to": "Name", "from": "number"}],
}


def with_(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def with_fields(*fields: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**BASE, "fields": list(fields), **changes}


def billing(*fields: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**BASE, "direction": "to_billing", "fields": list(fields), **changes}


PARENT = {"parent": {"object": "Account", "external_id": "Billing_Id__c"}}
SF_CHILD = lines({"to": "Quantity__c", "from": "quantity"})["lines"]
BILLING_CHILD = billing_lines({"to": "quantity", "from": "Quantity__c"})["lines"]

REFUSED = [
    # structure
    (with_(fieldz=[]), "fieldz", "unknown key 'fieldz': did you mean 'fields'?"),
    ({k: v for k, v in BASE.items() if k != "direction"}, "direction", "'direction' is required"),
    (with_(direction="both"), "direction", "should be 'to_salesforce' or 'to_billing'"),
    (with_(object="Invoice"), "object", "'Invoice' is not a snake_case name"),
    (with_(object=5), "object", "should be a valid string (got 5)"),
    (
        with_(salesforce={"object": "Billing Invoice", "external_id": "X__c"}),
        "salesforce.object",
        "is not a Salesforce API name",
    ),
    (with_(salesforce={"object": "A__c"}), "salesforce.external_id", "'external_id' is required"),
    (with_(salesforce="Account"), "salesforce", "should be a mapping of keys to values (got 'Account')"),
    (with_fields(), "fields", "give at least one field"),
    (with_(fields={"to": "Name"}), "fields", "should be a valid tuple"),
    # one field
    (with_fields({"to": "Name"}), "fields[0]", "give exactly one of from, constant, template (found none)"),
    (with_fields({"to": "Name", "from": "a", "constant": "b"}), "fields[0]", "(found from and constant)"),
    (
        with_fields({"to": "Name", "constant": None, "template": "x"}),
        "fields[0]",
        "(found constant and template)",
    ),
    (with_fields({"to": "Name", "from": "a..b"}), "fields[0].from[0]", "'a..b' is not a path"),
    (with_fields({"to": "Name", "from": "items[x]"}), "fields[0].from[0]", "is not a path"),
    (with_fields({"to": "Name", "from": "$foo"}), "fields[0].from[0]", "unknown special path '$foo'"),
    (with_fields({"to": "Name", "from": []}), "fields[0].from", "give at least one path"),
    (with_fields({"to": "Name", "from": 5}), "fields[0].from", "should be a valid tuple"),
    (
        with_fields({"to": "Name", "template": "{total:.2f}"}),
        "fields[0].template",
        "format specs are not supported",
    ),
    (
        with_fields({"to": "Name", "template": "{name!r}"}),
        "fields[0].template",
        "format specs are not supported",
    ),
    (with_fields({"to": "Name", "template": "{}"}), "fields[0].template", "an empty placeholder"),
    (
        with_fields({"to": "Name", "template": "{name"}),
        "fields[0].template",
        "expected '}' before end of string",
    ),
    (with_fields({"to": "Name", "template": "{a b}"}), "fields[0].template", "is not a path"),
    (with_fields({"to": "Name", "constant": ["a"]}), "fields[0].constant", "expected a single value"),
    (
        with_fields({"to": "Name", "from": "a", "default": {"x": 1}}),
        "fields[0].default",
        "expected a single value",
    ),
    (with_fields({"to": "Name", "constant": Decimal("NaN")}), "fields[0].constant", "infinite and NaN"),
    (
        with_fields({"to": "Name", "from": "a", "sensitive": "yes"}),
        "fields[0].sensitive",
        "should be a valid boolean",
    ),
    (
        with_fields({"to": "Name", "from": "a", "owner": "salesforce"}),
        "fields[0].owner",
        "should be 'origin' or 'billing'",
    ),
    (
        with_fields({"to": "Name", "from": "a", "transform": ["upper", "uper"]}),
        "fields[0].transform[1]",
        "did you mean 'upper'?",
    ),
    (
        with_fields({"to": "Name", "from": "a", "transform": [{"picklist": {"map": {}}}]}),
        "fields[0].transform[0].picklist.map",
        "the map is empty",
    ),
    (
        with_fields({"to": "Name", "from": "a", "transform": [{"truncate": -1}]}),
        "fields[0].transform[0].truncate",
        "should be greater than or equal to 1",
    ),
    (
        with_fields({"to": "Name", "from": "a", "transform": ["unix_date", "upper"]}),
        "fields[0].transform[1]",
        "upper takes text, but the value is a date",
    ),
    (
        with_fields({"to": "Name", "template": "{a}", "transform": [{"round": 2}]}),
        "fields[0].transform[0]",
        "round takes an integer or a decimal number, but the value is text",
    ),
    (
        with_fields({"to": "Name", "constant": "abc", "transform": ["decimal"]}),
        "fields[0].constant",
        "the transforms refuse this constant: 'abc' is not a number",
    ),
    (
        with_fields({"to": "Name", "constant": 5, "transform": ["upper"]}),
        "fields[0].transform[0]",
        "upper takes text, but the value is an integer",
    ),
    (
        with_fields({"to": "T__c", "from": "a", "transform": ["decimal"], "default": "zero"}),
        "fields[0].default",
        "the value is a decimal number but the default is text",
    ),
    (
        with_fields({"to": "T__c", "from": "a", "transform": ["upper"], "default": 30}),
        "fields[0].default",
        "(quote it to make it text)",
    ),
    (
        with_fields({"to": "T__c", "from": "a", "transform": ["boolean"], "default": 0}),
        "fields[0].default",
        "the value is a boolean but the default is an integer",
    ),
    # targets (to_salesforce)
    (
        with_fields({"to": "Total Amount", "from": "a"}),
        "fields[0].to",
        "'Total Amount' is not a Salesforce field API name",
    ),
    (
        with_fields({"to": "Name", "from": "a"}, {"to": "Name", "from": "b"}),
        "fields[1].to",
        "Name is already mapped by fields[0]",
    ),
    (
        with_fields({"to": "Billing_Id__c", "from": "id"}),
        "fields[0].to",
        "Billing_Id__c is filled by billsync itself",
    ),
    (
        with_fields(
            {"to": "Sync__c", "from": "x"}, salesforce={**BASE["salesforce"], "synced_at_field": "Sync__c"}
        ),
        "fields[0].to",
        "Sync__c is filled by billsync itself",
    ),
    (
        with_fields({"to": "Account__c", "from": "c", "transform": [PARENT]}),
        "fields[0].to",
        "written to the relationship (Account__r), not to Account__c",
    ),
    (
        with_fields({"to": "AccountId", "from": "c", "transform": [PARENT]}),
        "fields[0].to",
        "written to the relationship (Account), not to AccountId",
    ),
    (
        with_fields({"to": "Account__r", "from": "c"}),
        "fields[0].to",
        "Account__r is a relationship: end the transform list with parent",
    ),
    (
        with_fields(
            {"to": "Account__r", "from": "c", "transform": [PARENT]}, {"to": "Account__c", "from": "d"}
        ),
        "fields[0].to",
        "Account__r and Account__c (fields[1]) set the same lookup",
    ),
    (
        with_fields({"to": "Account__r", "from": "c", "transform": [PARENT, "upper"]}),
        "fields[0].transform[1]",
        "the value is a parent link here",
    ),
    (
        with_fields({"to": "Name", "from": "$index"}),
        "fields[0].from",
        "$index is only available inside children",
    ),
    (
        with_fields({"to": "Name", "template": "{$parent.name}"}),
        "fields[0].template",
        "$parent is only available inside children",
    ),
    (
        with_(salesforce={**BASE["salesforce"], "where": "Issue__c = true"}),
        "salesforce.where",
        "where selects the Salesforce records of to_billing mappings",
    ),
    (
        with_(salesforce={**BASE["salesforce"], "source_field": "Billing_Source__c"}),
        "salesforce.source_field",
        "source_field is for to_billing",
    ),
    # to_billing
    (
        billing({"to": "metadata", "from": "Id"}, {"to": "metadata.salesforce_id", "from": "Id"}),
        "fields[1].to",
        "metadata.salesforce_id is inside metadata",
    ),
    (billing({"to": "items[0]", "from": "Id"}), "fields[0].to", "'items[0]' is not a billing field path"),
    (
        billing({"to": "name", "from": "Lines__r[0].Name"}),
        "fields[0].from",
        "Salesforce paths are field names joined by dots",
    ),
    (
        billing({"to": "name", "template": "{Account__r.x-y}"}),
        "fields[0].template",
        "Salesforce paths are field names joined by dots",
    ),
    (
        billing({"to": "name", "from": "Name", "owner": "billing"}),
        "fields[0].owner",
        "owner: billing is for to_salesforce mappings",
    ),
    (
        billing({"to": "customer", "from": "AccountId", "transform": [PARENT]}),
        "fields[0].transform",
        "parent links are written to Salesforce",
    ),
    (
        billing(
            {"to": "name", "from": "Name"}, salesforce={**BASE["salesforce"], "source_field": "Account__r[0]"}
        ),
        "salesforce.source_field",
        "name a field or a relationship path",
    ),
    # to_salesforce children
    (with_(children={"Lines": SF_CHILD}), "children.Lines", "'Lines': name child collections in snake_case"),
    (with_(children={"lines": {**SF_CHILD, "id": None}}), "children.lines", "'id' is required"),
    (
        with_(children={"lines": {**SF_CHILD, "id": "$id"}}),
        "children.lines.id",
        "id is a path inside each child",
    ),
    (
        with_(children={"lines": {**SF_CHILD, "from": "$source"}}),
        "children.lines.from",
        "from is the path of the list",
    ),
    (
        with_(children={"lines": {**SF_CHILD, "to": "items"}}),
        "children.lines.to",
        "to is for to_billing children",
    ),
    (
        with_(children={"lines": {**SF_CHILD, "fields": []}}),
        "children.lines.fields",
        "give at least one field",
    ),
    (
        with_(children={"lines": {**SF_CHILD, "salesforce": {"object": "L__c", "external_id": "B__c"}}}),
        "children.lines.salesforce",
        "'parent_field' is required",
    ),
    (
        with_(
            children={
                "lines": {
                    **SF_CHILD,
                    "salesforce": {"object": "L__c", "external_id": "B__c", "parent_field": "Invoice__c"},
                }
            }
        ),
        "children.lines.salesforce.parent_field",
        "'Invoice__c' is a lookup field; name the relationship (Invoice__r)",
    ),
    (
        with_(
            children={"lines": {**SF_CHILD, "salesforce": {**SF_CHILD["salesforce"], "order_by": "Line__c"}}}
        ),
        "children.lines.salesforce.order_by",
        "order_by is for to_billing children",
    ),
    (
        with_(children=lines({"to": "Billing_Id__c", "from": "id"})),
        "children.lines.fields[0].to",
        "Billing_Id__c is filled by billsync itself",
    ),
    (
        with_(children=lines({"to": "Invoice__c", "from": "x"})),
        "children.lines.fields[0].to",
        "Invoice__c is filled by billsync itself",
    ),
    (
        with_(children=lines({"to": "Q__c", "from": "q", "owner": "billing"})),
        "children.lines.fields[0].owner",
        "set owner on the child collection",
    ),
    (with_(children={"lines": {**SF_CHILD, "sort": "x"}}), "children.lines.sort", "unknown key 'sort'"),
    # to_billing children
    (
        billing({"to": "n", "from": "Name"}, children={"lines": {**BILLING_CHILD, "to": None}}),
        "children.lines",
        "'to' is required",
    ),
    (
        billing({"to": "n", "from": "Name"}, children={"lines": {**BILLING_CHILD, "to": "items.0"}}),
        "children.lines.to",
        "is not a billing field path",
    ),
    (
        billing({"to": "n", "from": "Name"}, children={"lines": {**BILLING_CHILD, "owner": "billing"}}),
        "children.lines.owner",
        "owner: billing is for to_salesforce",
    ),
    (
        billing(
            {"to": "n", "from": "Name"}, children={"lines": {**BILLING_CHILD, "from": "Lines__r.records"}}
        ),
        "children.lines.from",
        "name the child relationship",
    ),
    (
        billing(
            {"to": "n", "from": "Name"},
            children={
                "lines": {
                    **BILLING_CHILD,
                    "salesforce": {**BILLING_CHILD["salesforce"], "relationship": "Items__r"},
                }
            },
        ),
        "children.lines.salesforce.relationship",
        "the two must agree",
    ),
    (
        billing(
            {"to": "n", "from": "Name"},
            children={
                "lines": {
                    **BILLING_CHILD,
                    "salesforce": {**BILLING_CHILD["salesforce"], "parent_field": "Invoice__r"},
                }
            },
        ),
        "children.lines.salesforce.parent_field",
        "parent_field is for to_salesforce children",
    ),
    (
        billing(
            {"to": "n", "from": "Name"},
            children={
                "lines": {
                    **BILLING_CHILD,
                    "salesforce": {**BILLING_CHILD["salesforce"], "order_by": "Line__c; DELETE"},
                }
            },
        ),
        "children.lines.salesforce.order_by",
        "is not a field to order by",
    ),
    (
        billing({"to": "items", "from": "Name"}, children=billing_lines({"to": "q", "from": "Q__c"})),
        "children.lines.to",
        "items is already",
    ),
]


@pytest.mark.parametrize(
    ("data", "path", "message"), REFUSED, ids=lambda value: value if isinstance(value, str) else ""
)
def test_a_configuration_mistake_is_refused_with_its_path(
    data: dict[str, Any], path: str, message: str
) -> None:
    error = refused(data)
    assert any(problem.path == path and message in problem.message for problem in error.problems), str(error)
    assert str(error).startswith("<dict>: ")


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    error = refused(
        with_fields(
            {"to": "Billing_Id__c", "from": "id"},
            {"to": "Name", "from": "number"},
            {"to": "Name", "from": "name"},
            {"to": "X__c", "from": "$index"},
        )
    )
    assert [problem.path for problem in error.problems] == ["fields[0].to", "fields[2].to", "fields[3].from"]


def test_mapping_errors_can_be_raised_with_a_plain_message_and_survive_pickling() -> None:
    plain = MappingError("no mapping for invoiced invoice to_billing")
    assert str(plain) == "no mapping for invoiced invoice to_billing"
    assert plain.path == ""
    loaded = refused(with_fields({"to": "Name"}))
    copy = pickle.loads(pickle.dumps(loaded))  # noqa: S301 - our own object
    assert str(copy) == str(loaded)
    assert copy.problems == loaded.problems


# --- reading values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("number", "INV-1"),
        ("customer.address.city", "Lyon"),
        ("customer.address.zip", None),
        ("customer.nothing.deeper", None),
        ("items[0].name", "a"),
        ("items[1].name", "b"),
        ("items[-1].name", "b"),
        ("items[2].name", None),
        ("items[-3].name", None),
        ("matrix[1][0]", 3),
        ("items.name", None),  # a key on a list
        ("customer[0]", None),  # an index on an object
        ("number[0]", None),  # text is not a list
        ("number.x", None),
        ("$source", "main"),
        ("$id", "4401"),
        ("odd-key", "dash"),
        ("Account__r.Billing_Id__c", "main:1"),
    ],
)
def test_paths_read_nested_keys_and_list_items_and_missing_is_null(path: str, expected: Any) -> None:
    record = {
        "number": "INV-1",
        "customer": {"address": {"city": "Lyon"}},
        "items": [{"name": "a"}, {"name": "b"}],
        "matrix": [[1, 2], [3, 4]],
        "odd-key": "dash",
        "Account__r": {"attributes": {"type": "Account"}, "Billing_Id__c": "main:1"},
    }
    assert fields_of(to_salesforce({"to": "X__c", "from": path}), record) == {"X__c": expected}


def test_a_list_of_paths_takes_the_first_value_that_is_not_null() -> None:
    mapping = to_salesforce({"to": "Name", "from": ["number", "name", "id"], "default": "?"})

    assert fields_of(mapping, {"number": None, "name": "Acme", "id": 1}) == {"Name": "Acme"}
    assert fields_of(mapping, {"number": "", "name": "Acme"}) == {"Name": ""}  # empty text is a value
    assert fields_of(mapping, {}) == {"Name": "?"}


def test_default_applies_when_the_value_is_missing_null_or_nulled_by_a_transform() -> None:
    mapping = to_salesforce(
        {"to": "Terms__c", "from": "terms", "transform": [{"null_if": ""}, "upper"], "default": "NET 30"}
    )

    assert fields_of(mapping, {}) == {"Terms__c": "NET 30"}
    assert fields_of(mapping, {"terms": None}) == {"Terms__c": "NET 30"}
    assert fields_of(mapping, {"terms": ""}) == {"Terms__c": "NET 30"}
    assert fields_of(mapping, {"terms": "net 15"}) == {"Terms__c": "NET 15"}


def test_a_field_without_value_or_default_is_written_as_null() -> None:
    mapping = to_salesforce({"to": "Due__c", "from": "due_date", "transform": ["unix_date"]})
    assert fields_of(mapping, {"due_date": None}) == {"Due__c": None}


def test_an_explicit_null_default_or_constant_is_kept() -> None:
    mapping = to_salesforce({"to": "A__c", "constant": None}, {"to": "B__c", "from": "b", "default": None})
    assert fields_of(mapping, {}) == {"A__c": None, "B__c": None}


def test_constants_run_through_their_transforms() -> None:
    mapping = to_salesforce({"to": "Type__c", "constant": "invoice", "transform": ["upper"]})
    assert fields_of(mapping, {}) == {"Type__c": "INVOICE"}


@pytest.mark.parametrize(
    ("template", "record", "expected"),
    [
        ("{name} ({number})", {"name": "Acme", "number": "INV-1"}, "Acme (INV-1)"),
        ("{name} ({number})", {"name": "Acme"}, "Acme ()"),
        ("{name} ({number})", {}, "fallback"),
        ("{{{number}}}", {"number": 7}, "{7}"),
        (
            "{total} {paid} {day}",
            {"total": Decimal("5.10"), "paid": False, "day": date(2024, 1, 2)},
            "5.10 false 2024-01-02",
        ),
        ("{$source}-{items[0].sku}", {"items": [{"sku": "W1"}]}, "main-W1"),
        ("fixed text", {}, "fixed text"),
    ],
)
def test_templates_fill_placeholders_from_source_paths(
    template: str, record: dict[str, Any], expected: str
) -> None:
    mapping = to_salesforce({"to": "Description__c", "template": template, "default": "fallback"})
    assert fields_of(mapping, record) == {"Description__c": expected}


def test_a_template_placeholder_that_is_not_a_single_value_is_a_field_error() -> None:
    mapping = to_salesforce({"to": "Description__c", "template": "{customer}"})
    with pytest.raises(
        FieldMappingError, match=r"Description__c: the template placeholder \{customer\} is an object"
    ):
        apply_mapping(mapping, {"customer": {"id": 1}}, CTX)


# --- field errors ---------------------------------------------------------------------------------


def test_every_field_error_of_a_record_is_collected_before_raising() -> None:
    mapping = to_salesforce(
        {
            "to": "Status__c",
            "from": "status",
            "transform": [{"picklist": {"draft": "Draft", "paid": "Paid"}}],
        },
        {"to": "Name", "from": "number"},
        {"to": "Total__c", "from": "total", "transform": ["decimal"]},
        children=lines({"to": "Quantity__c", "from": "quantity", "transform": ["decimal"]}),
    )
    record = {
        "status": "x",
        "number": "INV-1",
        "total": "abc",
        "items": [{"id": 1, "quantity": 1}, {"id": 2, "quantity": "many"}],
    }

    with pytest.raises(FieldMappingError) as caught:
        apply_mapping(mapping, record, CTX)

    error = caught.value
    assert error.errors == [
        ("Status__c", "unknown value 'x' for picklist (known: draft, paid)"),
        ("Total__c", "'abc' is not a number"),
        ("lines[1].Quantity__c", "'many' is not a number"),
    ]
    assert (error.field, error.reason) == error.errors[0]
    assert str(error) == (
        "3 fields cannot be mapped: Status__c: unknown value 'x' for picklist (known: draft, paid); "
        "Total__c: 'abc' is not a number; lines[1].Quantity__c: 'many' is not a number"
    )


def test_a_single_field_error_reads_as_field_and_reason() -> None:
    error = FieldMappingError("Total__c", "'abc' is not a number")
    assert str(error) == "Total__c: 'abc' is not a number"
    assert pickle.loads(pickle.dumps(error)).errors == error.errors  # noqa: S301 - our own object


def test_values_of_sensitive_fields_never_appear_in_field_errors() -> None:
    mapping = to_salesforce(
        {"to": "Token__c", "from": "token", "sensitive": True, "transform": ["decimal"]},
        {"to": "Kind__c", "from": "kind", "sensitive": True, "transform": [{"picklist": {"a": "A"}}]},
    )

    with pytest.raises(FieldMappingError) as caught:
        apply_mapping(mapping, {"token": "tok_live_secret", "kind": "secret-kind"}, CTX)

    assert "secret" not in str(caught.value)
    assert caught.value.errors == [
        ("Token__c", "<redacted> is not a number"),
        ("Kind__c", "unknown value <redacted> for picklist (known: a)"),
    ]


def test_a_card_number_in_any_field_never_appears_in_field_errors() -> None:
    mapping = to_salesforce(
        {"to": "Notes__c", "from": "notes", "transform": ["card_safe"]},
        {"to": "Reference__c", "from": "reference", "transform": ["decimal"]},
    )

    with pytest.raises(FieldMappingError) as caught:
        apply_mapping(mapping, {"notes": "4111 1111 1111 1111", "reference": "4111-1111-1111-1111"}, CTX)

    assert "1111" not in str(caught.value)
    assert caught.value.errors == [
        ("Notes__c", "looks like a full card number"),
        ("Reference__c", "<redacted> is not a number"),
    ]


# --- children -------------------------------------------------------------------------------------


def test_children_map_in_order_with_their_ids_index_and_parent_values() -> None:
    mapping = to_salesforce(
        {"to": "Name", "from": "number"},
        children=lines(
            {"to": "Name", "from": "name"},
            {"to": "Line_Number__c", "from": "$index"},
            {"to": "Line_Key__c", "template": "{$source}:{$parent.number}:{$id}"},
            {"to": "Currency__c", "from": "$parent.currency", "transform": ["upper"]},
        ),
    )
    record = {
        "number": "INV-1",
        "currency": "usd",
        "items": [{"id": 17, "name": "a"}, {"id": "li_2", "name": "b"}],
    }

    mapped = apply_mapping(mapping, record, CTX)

    assert mapped.fields == {"Name": "INV-1"}
    assert mapped.children == {
        "lines": [
            MappedChild(
                "17", {"Name": "a", "Line_Number__c": 1, "Line_Key__c": "main:INV-1:17", "Currency__c": "USD"}
            ),
            MappedChild(
                "li_2",
                {"Name": "b", "Line_Number__c": 2, "Line_Key__c": "main:INV-1:li_2", "Currency__c": "USD"},
            ),
        ]
    }


def test_a_missing_list_leaves_children_alone_and_an_empty_one_means_none() -> None:
    mapping = to_salesforce({"to": "Name", "from": "number"}, children=lines({"to": "Name", "from": "name"}))

    assert apply_mapping(mapping, {"number": "1"}, CTX).children == {}
    assert apply_mapping(mapping, {"number": "1", "items": None}, CTX).children == {}
    assert apply_mapping(mapping, {"number": "1", "items": []}, CTX).children == {"lines": []}


def test_children_can_be_identified_by_position() -> None:
    mapping = to_salesforce(
        {"to": "Name", "from": "number"}, children=lines({"to": "Name", "from": "name"}, id="$index")
    )
    mapped = apply_mapping(mapping, {"items": [{"name": "a"}, {"name": "b"}]}, CTX)
    assert [child.id for child in mapped.children["lines"]] == ["1", "2"]


@pytest.mark.parametrize(
    ("items", "errors"),
    [
        ([{"name": "a"}], [("lines[0]", "has no id at 'id'")]),
        ([{"id": " ", "name": "a"}], [("lines[0]", "has no id at 'id'")]),
        ([{"id": True, "name": "a"}], [("lines[0]", "the id at 'id' is true, not text or an integer")]),
        ([{"id": 1, "name": "a"}, "oops"], [("lines[1]", "'oops' is not an object")]),
        ({"id": 1}, [("lines", "expected a list at 'items', got an object")]),
    ],
)
def test_children_that_cannot_be_mapped_are_field_errors(items: Any, errors: list[tuple[str, str]]) -> None:
    mapping = to_salesforce({"to": "Name", "from": "number"}, children=lines({"to": "Name", "from": "name"}))
    with pytest.raises(FieldMappingError) as caught:
        apply_mapping(mapping, {"number": "1", "items": items}, CTX)
    assert caught.value.errors == errors


# --- to_billing -----------------------------------------------------------------------------------


def test_to_billing_targets_nest_and_children_become_a_list() -> None:
    mapping = to_billing(
        {"to": "customer", "from": "Account__r.Billing_Id__c", "transform": ["source_id", "integer"]},
        {"to": "name", "from": "Name"},
        {"to": "date", "from": "Invoice_Date__c", "transform": ["to_unix"]},
        {"to": "ship_to.address1", "from": "Ship_Street__c"},
        {"to": "ship_to.city", "from": "Ship_City__c"},
        {"to": "metadata.salesforce_id", "from": "$id"},
        children=billing_lines(
            {"to": "name", "from": "Name"},
            {"to": "quantity", "from": "Quantity__c", "transform": ["decimal"]},
            {"to": "metadata.position", "from": "$index"},
            id="Billing_Id__c",
        ),
        where="Issue__c = true",
        source_field="Account__r.Billing_Source__c",
    )
    record = {
        "attributes": {"type": "Billing_Invoice__c"},
        "Id": "a0B5f000001",
        "Name": "Consulting",
        "Account__r": {"attributes": {"type": "Account"}, "Billing_Id__c": "main:3100"},
        "Invoice_Date__c": "2024-05-29",
        "Ship_Street__c": "1 Rue",
        "Ship_City__c": "Lyon",
        "Lines__r": {
            "totalSize": 2,
            "done": True,
            "records": [
                {"Billing_Id__c": "main:17", "Name": "Design", "Quantity__c": 2.0},
                {"Billing_Id__c": None, "Name": "Build", "Quantity__c": 1.5},
            ],
        },
    }

    mapped = apply_mapping(mapping, record, MappingContext("main", "a0B5f000001"))

    assert mapped.fields == {
        "customer": 3100,
        "name": "Consulting",
        "date": 1716940800,
        "ship_to": {"address1": "1 Rue", "city": "Lyon"},
        "metadata": {"salesforce_id": "a0B5f000001"},
        "items": [
            {"name": "Design", "quantity": Decimal("2.0"), "metadata": {"position": 1}},
            {"name": "Build", "quantity": Decimal("1.5"), "metadata": {"position": 2}},
        ],
    }
    assert [child.id for child in mapped.children["lines"]] == ["17", None]
    assert mapping.children["lines"].relationship == "Lines__r"


def test_a_salesforce_record_without_children_maps_to_an_empty_list() -> None:
    mapping = to_billing(
        {"to": "name", "from": "Name"}, children=billing_lines({"to": "name", "from": "Name"})
    )

    assert apply_mapping(mapping, {"Name": "x", "Lines__r": None}, CTX).fields == {"name": "x", "items": []}
    assert apply_mapping(mapping, {"Name": "x"}, CTX).fields == {"name": "x"}  # not queried: left alone


def test_a_to_billing_child_of_another_source_is_refused() -> None:
    mapping = to_billing(
        {"to": "name", "from": "Name"},
        children=billing_lines({"to": "name", "from": "Name"}, id="Billing_Id__c"),
    )
    record = {"Name": "x", "Lines__r": {"records": [{"Billing_Id__c": "other:17", "Name": "a"}]}}

    with pytest.raises(FieldMappingError) as caught:
        apply_mapping(mapping, record, CTX)

    assert caught.value.errors == [("lines[0]", "the id 'other:17' belongs to another billing source")]


# --- owners ---------------------------------------------------------------------------------------


def test_owners_billing_maps_only_billing_owned_fields_and_collections() -> None:
    mapping = to_salesforce(
        {"to": "Name", "from": "number"},
        {"to": "Status__c", "from": "status", "owner": "billing"},
        {"to": "Balance__c", "from": "balance", "owner": "billing", "transform": ["decimal"]},
        children={
            **lines({"to": "Name", "from": "name"}),
            "payments": {
                "from": "payments",
                "id": "id",
                "owner": "billing",
                "salesforce": {
                    "object": "P__c",
                    "external_id": "Billing_Id__c",
                    "parent_field": "Invoice__r",
                },
                "fields": [{"to": "Amount__c", "from": "amount", "transform": ["decimal"]}],
            },
        },
    )
    record = {
        "number": "INV-1",
        "status": "paid",
        "balance": 0,
        "items": [{"id": 1, "name": "a"}],
        "payments": [{"id": 9, "amount": 5}],
    }

    everything = apply_mapping(mapping, record, CTX)
    billing_only = apply_mapping(mapping, record, CTX, owners="billing")

    assert set(everything.fields) == {"Name", "Status__c", "Balance__c"}
    assert set(everything.children) == {"lines", "payments"}
    assert billing_only.fields == {"Status__c": "paid", "Balance__c": Decimal(0)}
    assert billing_only.children == {"payments": [MappedChild("9", {"Amount__c": Decimal(5)})]}
    assert mapping.target_fields() == ["Name", "Status__c", "Balance__c"]
    assert mapping.target_fields("billing") == ["Status__c", "Balance__c"]


def test_owners_billing_skips_the_errors_of_fields_it_does_not_map() -> None:
    mapping = to_salesforce(
        {"to": "Total__c", "from": "total", "transform": ["decimal"]},
        {"to": "Status__c", "from": "status", "owner": "billing"},
    )
    assert fields_of(mapping, {"total": "abc", "status": "paid"}, owners="billing") == {"Status__c": "paid"}


def test_owners_must_be_all_or_billing() -> None:
    mapping = to_salesforce({"to": "Name", "from": "number"})
    with pytest.raises(ValueError, match="owners must be"):
        apply_mapping(mapping, {}, CTX, owners="salesforce")  # type: ignore[arg-type]


# --- what a mapping reads and writes --------------------------------------------------------------


def test_source_paths_list_every_path_read_once_children_with_brackets() -> None:
    mapping = to_salesforce(
        {"to": "Name", "from": ["number", "name"]},
        {"to": "Description__c", "template": "{name} {customer.name} {$source}"},
        {"to": "Source__c", "from": "$source"},
        {"to": "Type__c", "constant": "x"},
        children=lines(
            {"to": "Name", "from": "name"},
            {"to": "Line__c", "from": "$index"},
            {"to": "Currency__c", "from": "$parent.currency"},
        ),
    )

    assert mapping.source_paths() == [
        "number",
        "name",
        "customer.name",
        "items[].id",
        "items[].name",
        "currency",
    ]
    assert mapping.children["lines"].source_paths() == ["id", "name"]
    assert mapping.children["lines"].parent_paths() == ["currency"]
    assert mapping.children["lines"].target_fields() == ["Name", "Line__c", "Currency__c"]


def test_to_billing_source_paths_are_salesforce_fields_and_targets_include_the_child_list() -> None:
    mapping = to_billing(
        {"to": "customer", "from": "Account__r.Billing_Id__c"},
        {"to": "metadata.salesforce_id", "from": "Id"},
        children=billing_lines({"to": "quantity", "from": "Quantity__c"}, id="Billing_Id__c"),
    )

    assert mapping.source_paths() == [
        "Account__r.Billing_Id__c",
        "Id",
        "Lines__r[].Billing_Id__c",
        "Lines__r[].Quantity__c",
    ]
    assert mapping.target_fields() == ["customer", "metadata.salesforce_id", "items"]


@pytest.mark.parametrize(
    ("relationship", "lookup"),
    [
        ("Account__r", "Account__c"),
        ("ns__Invoice__r", "ns__Invoice__c"),
        ("Account", "AccountId"),
        ("Parent", "ParentId"),
    ],
)
def test_relationship_id_field(relationship: str, lookup: str) -> None:
    assert relationship_id_field(relationship) == lookup


@pytest.mark.parametrize("name", ["Account__c", "AccountId", "Billing Id", "ns__Thing", ""])
def test_relationship_id_field_refuses_what_is_not_a_relationship(name: str) -> None:
    with pytest.raises(ValueError, match="is not a relationship name"):
        relationship_id_field(name)


@pytest.mark.parametrize("source_key", ["", "main:eu"])
def test_mapping_context_refuses_a_bad_source_key(source_key: str) -> None:
    with pytest.raises(ValueError, match="is not a source key"):
        MappingContext(source_key, None)


@pytest.mark.parametrize("module", ["mapping.py", "transforms.py", "fingerprint.py"])
def test_the_mapping_engine_imports_only_pure_libraries_and_its_siblings(module: str) -> None:
    tree = ast.parse((ROOT / "shared" / "billsync" / "domain" / module).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    allowed_roots = {
        "__future__",
        "collections",
        "dataclasses",
        "datetime",
        "decimal",
        "difflib",
        "functools",
    }
    allowed_roots |= {"hashlib", "json", "pathlib", "re", "string", "typing", "unicodedata", "zoneinfo"}
    allowed_roots |= {"pydantic", "pydantic_core", "yaml"}
    outside = {name for name in imported if name.split(".")[0] not in allowed_roots}
    assert outside <= {"billsync.domain.transforms"}
