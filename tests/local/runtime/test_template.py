"""Reading templates: short-form tags, parameters, conditions, SAM Globals and intrinsic functions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local.runtime.template import (
    IMPLICIT_HTTP_API,
    NO_VALUE,
    Intrinsics,
    TemplateError,
    load_template,
    load_template_file,
    merge_globals,
    references,
    resolve_parameters,
)

from .conftest import APP_TEMPLATE


class FakeRefs:
    def ref(self, logical_id: str) -> Any:
        return f"ref:{logical_id}"

    def get_att(self, logical_id: str, attribute: str) -> Any:
        return f"att:{logical_id}.{attribute}"


def evaluator(
    parameters: dict[str, Any] | None = None, conditions: dict[str, bool] | None = None
) -> Intrinsics:
    return Intrinsics(
        parameters=parameters or {"Stage": "dev", "Names": ["a", "b"]},
        pseudo={"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::NoValue": NO_VALUE},
        conditions=conditions or {"Always": True, "Never": False},
        mappings={"Map": {"dev": {"Size": "small"}}},
        refs=FakeRefs(),
        import_values={"shared-vpc": "vpc-123"},
        region="eu-west-1",
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(text)
    return path


def test_short_form_tags_become_long_form(tmp_path: Path) -> None:
    document = load_template_file(
        write(
            tmp_path,
            """
Resources:
  Thing:
    Type: Custom::Thing
    Properties:
      A: !Ref Stage
      B: !GetAtt Queue.Arn
      C: !Sub "x-${Stage}"
      D: !Sub ["${A}", {A: !Ref Stage}]
      E: !If [Always, !Join [",", [a, b]], !Select [0, !Split [",", "p,q"]]]
      F: !Equals [!Ref Stage, dev]
      G: !Not [!Condition Always]
      H: !And [!Condition Always, !Or [!Condition Never, !Condition Always]]
      I: !FindInMap [Map, dev, Size]
      J: !Base64 text
      K: !GetAZs ""
      L: !ImportValue shared-vpc
      M: 2024-01-01
""",
        )
    )
    properties = document["Resources"]["Thing"]["Properties"]
    assert properties["A"] == {"Ref": "Stage"}
    assert properties["B"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert properties["D"] == {"Fn::Sub": ["${A}", {"A": {"Ref": "Stage"}}]}
    assert properties["G"] == {"Fn::Not": [{"Condition": "Always"}]}
    assert properties["M"] == "2024-01-01"
    resolved = evaluator().resolve(properties)
    assert resolved == {
        "A": "dev",
        "B": "att:Queue.Arn",
        "C": "x-dev",
        "D": "dev",
        "E": "a,b",
        "F": True,
        "G": False,
        "H": True,
        "I": "small",
        "J": "dGV4dA==",
        "K": ["eu-west-1a", "eu-west-1b", "eu-west-1c"],
        "L": "vpc-123",
        "M": "2024-01-01",
    }


def test_sub_resolves_parameters_pseudo_parameters_resources_attributes_and_escapes() -> None:
    value = {
        "Fn::Sub": "${AWS::Region}:${AWS::AccountId}:${Stage}:${Queue}:${Queue.Arn}:${!Literal}:${Names}"
    }
    assert evaluator().resolve(value) == "eu-west-1:123456789012:dev:ref:Queue:att:Queue.Arn:${Literal}:a,b"


def test_no_value_removes_properties_and_list_items() -> None:
    value = {
        "Keep": 1,
        "Drop": {"Fn::If": ["Never", "x", {"Ref": "AWS::NoValue"}]},
        "List": [1, {"Ref": "AWS::NoValue"}],
    }
    assert evaluator().resolve(value) == {"Keep": 1, "List": [1]}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"Fn::Cidr": ["10.0.0.0/16", 2, 8]}, "Fn::Cidr is not supported"),
        ({"Fn::ImportValue": "unknown-export"}, "import_values"),
        ({"Fn::FindInMap": ["Map", "prod", "Size"]}, "not in the Mappings"),
        ({"Fn::If": ["Unknown", 1, 2]}, "unknown condition Unknown"),
        ({"Fn::Select": [5, ["a"]]}, "out of range"),
    ],
)
def test_unresolvable_values_are_refused_with_a_reason(value: dict[str, Any], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        evaluator().resolve(value)


def test_globals_merge_follows_sam_rules() -> None:
    global_function = {
        "Timeout": 60,
        "Layers": ["global-layer"],
        "Environment": {"Variables": {"A": "global", "B": "global"}},
        "Tracing": {"Ref": "Tracing"},
    }
    local_function = {
        "Timeout": 10,
        "Layers": ["own-layer"],
        "Environment": {"Variables": {"B": "local", "C": "local"}},
        "Tracing": "Active",
    }
    assert merge_globals(global_function, local_function) == {
        "Timeout": 10,
        "Layers": ["global-layer", "own-layer"],
        "Environment": {"Variables": {"A": "global", "B": "local", "C": "local"}},
        "Tracing": "Active",
    }
    # An intrinsic counts as a primitive: the resource's value replaces it, even a map.
    assert merge_globals({"Fn::If": ["c", {"A": 1}, {}]}, {"B": 2}) == {"B": 2}


def test_parameters_take_defaults_and_overrides_and_are_validated() -> None:
    declared = {
        "Stage": {"Type": "String", "Default": "dev", "AllowedValues": ["dev", "prod"]},
        "Count": {"Type": "Number", "Default": 5, "MinValue": 2, "MaxValue": 10},
        "Days": {"Type": "Number", "Default": 30, "AllowedValues": [7, 30]},
        "Names": {"Type": "CommaDelimitedList", "Default": "a, b"},
        "Code": {"Type": "String", "Default": "ab", "AllowedPattern": "^[a-z]+$", "MaxLength": 3},
    }
    assert resolve_parameters(declared, {"Count": "7"}) == {
        "Stage": "dev",
        "Count": "7",
        "Days": "30",
        "Names": ["a", "b"],
        "Code": "ab",
    }
    for overrides, message in [
        ({"Stage": "qa"}, "must be one of"),
        ({"Count": "1"}, "below MinValue"),
        ({"Count": "eleven"}, "must be a number"),
        ({"Days": "8"}, "must be one of"),
        ({"Code": "AB"}, "does not match"),
        ({"Code": "abcd"}, "longer than MaxLength"),
        ({"Unknown": "x"}, "undeclared parameters: Unknown"),
    ]:
        with pytest.raises(TemplateError, match=message):
            resolve_parameters(declared, overrides)
    with pytest.raises(TemplateError, match="has no default"):
        resolve_parameters({"Required": {"Type": "String"}}, {})


def test_fixture_template_loads_with_conditions_globals_and_implicit_api() -> None:
    template = load_template(
        APP_TEMPLATE, stack_name="s", region="us-east-1", parameter_overrides={"Stage": "prod"}
    )
    assert template.conditions == {"IsProd": True, "IsNotProd": False, "TestOrProd": True}
    assert "ProdOnlyQueue" in template.resources
    echo = template.resources["EchoFunction"].properties
    assert echo["Timeout"] == 6
    assert echo["MemorySize"] == 256
    assert echo["Layers"] == [{"Ref": "PyLayer"}, {"Ref": "ConfLayer"}, {"Ref": "ExtraLayer"}]
    assert echo["Environment"]["Variables"]["SHARED"] == "function"
    assert echo["Environment"]["Variables"]["GLOBAL_ONLY"] == "from-globals"
    implicit = template.resources[IMPLICIT_HTTP_API]
    assert implicit.type == "AWS::Serverless::HttpApi"
    assert implicit.properties["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 1000

    default = load_template(APP_TEMPLATE, stack_name="s", region="us-east-1")
    assert "ProdOnlyQueue" not in default.resources
    assert default.inactive == {"ProdOnlyQueue": "Condition IsProd is false"}


def test_references_finds_resources_named_by_ref_getatt_and_sub() -> None:
    value = {
        "A": {"Ref": "Queue"},
        "B": [{"Fn::GetAtt": ["Table", "Arn"]}],
        "C": {"Fn::Sub": "${Topic.TopicName}-${AWS::Region}-${Local}-${!Escaped}"},
        "D": {"Fn::Sub": ["${Local}", {"Local": {"Ref": "Bucket"}}]},
    }
    assert references(value) == {"Queue", "Table", "Topic", "Local", "Bucket"}


def test_a_template_without_resources_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="Resources"):
        load_template_file(write(tmp_path, "Parameters: {}\n"))


def test_json_templates_and_the_string_form_of_getatt(tmp_path: Path) -> None:
    path = tmp_path / "template.json"
    path.write_text(
        json.dumps(
            {
                "Parameters": {"Stage": {"Type": "String", "Default": "dev"}},
                "Resources": {
                    "Thing": {
                        "Type": "Custom::Thing",
                        "Properties": {"Arn": {"Fn::GetAtt": "Queue.Arn"}, "Stage": {"Ref": "Stage"}},
                    }
                },
            }
        )
    )
    template = load_template(path, stack_name="s", region="us-east-1")
    properties = template.resources["Thing"].properties
    assert references(properties) == {"Queue", "Stage"}
    assert evaluator({"Stage": "dev"}).resolve(properties) == {"Arn": "att:Queue.Arn", "Stage": "dev"}
