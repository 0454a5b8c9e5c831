"""billsync's own template.yaml on the local runtime: parsed, provisioned and wired, with no function invoked."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.runtime import LocalStack, StackOptions, TemplateError
from local.runtime.template import load_template

REPO_ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = REPO_ROOT / "template.yaml"
RUNTIME_SOURCES = REPO_ROOT / "local" / "runtime"


@pytest.fixture(scope="module")
def billsync(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    options = StackOptions(stack_name="billsync-test", logs_dir=tmp_path_factory.mktemp("billsync-logs"))
    with LocalStack(TEMPLATE, options) as stack:
        yield stack
        assert stack.invocations == []  # nothing of billsync ran


def declared_events(stack: LocalStack) -> set[tuple[str, str]]:
    return {
        (resource.logical_id, event_name)
        for resource in stack.template.of_type("AWS::Serverless::Function")
        for event_name in resource.properties.get("Events") or {}
    }


def test_every_resource_is_provisioned_or_reported_as_not_emulated(billsync: LocalStack) -> None:
    declared = set(billsync.template.document["Resources"])
    provisioned = set(billsync.resources)
    reported = {note.logical_id: note for note in billsync.not_emulated}
    assert declared <= provisioned | set(reported)
    assert billsync.inactive == {"AlarmEmailSubscription": "Condition HasAlarmEmail is false"}
    assert reported["AlarmEmailSubscription"].detail == "not created: Condition HasAlarmEmail is false"
    for logical_id, resource in billsync.resources.items():
        assert resource.physical_name, logical_id
        assert resource.ref, logical_id


def test_tables_and_queues_exist_in_moto_as_declared(billsync: LocalStack) -> None:
    template = billsync.template
    sqs = billsync.boto3_client("sqs")
    dynamodb = billsync.boto3_client("dynamodb")
    for resource in template.of_type("AWS::DynamoDB::Table"):
        table = dynamodb.describe_table(TableName=billsync.resources[resource.logical_id].physical_name)[
            "Table"
        ]
        assert table["KeySchema"] == resource.properties["KeySchema"]
    for resource in template.of_type("AWS::SQS::Queue"):
        attributes = sqs.get_queue_attributes(
            QueueUrl=billsync.resources[resource.logical_id].url, AttributeNames=["All"]
        )["Attributes"]
        assert (attributes.get("FifoQueue") == "true") == bool(resource.properties.get("FifoQueue"))
        if "RedrivePolicy" in resource.properties:
            policy = json.loads(attributes["RedrivePolicy"])
            assert policy["maxReceiveCount"] == int(template.parameters["MaxReceiveCount"])
            dead_letter = resource.properties["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            assert policy["deadLetterTargetArn"] == billsync.resources[dead_letter].arn


def test_every_function_environment_resolves_to_concrete_strings(billsync: LocalStack) -> None:
    globals_variables = billsync.template.document["Globals"]["Function"]["Environment"]["Variables"]
    for logical_id, plan in billsync.functions.items():
        assert plan.unavailable is None, logical_id
        assert plan.code_dir == REPO_ROOT / billsync.template.resources[logical_id].properties[
            "CodeUri"
        ].rstrip("/")
        own = billsync.template.document["Resources"][logical_id]["Properties"]["Environment"]["Variables"]
        assert set(globals_variables) | set(own) <= set(plan.environment)
        for name, value in plan.environment.items():
            assert isinstance(value, str), (logical_id, name)
            assert not re.search(r"Fn::|'Ref'|\$\{", value), (logical_id, name, value)
        assert plan.environment["AWS_ENDPOINT_URL"] == billsync.aws_endpoint
        assert plan.sys_path[1:] == (
            str(REPO_ROOT / "layers" / "dependencies"),
            str(REPO_ROOT / "shared"),
            str(REPO_ROOT),
        )
        assert plan.environment["LOCAL_LAYER_DIR_ConfigLayer"] == str(REPO_ROOT / "config")


def test_every_event_source_is_wired(billsync: LocalStack) -> None:
    wired = {(source["function"], source["event"]) for source in billsync.event_sources}
    assert declared_events(billsync) == wired
    for source in billsync.event_sources:
        if source["type"] == "SQS":
            assert source["queue_url"] == billsync.resources[source["queue"]].url
            assert source["report_batch_item_failures"] is True
    routes = {route.route_key: route for route in billsync.routes}
    assert set(routes) == {"POST /webhooks/{source}", "POST /ops/sync"}
    assert (routes["POST /webhooks/{source}"].iam_auth, routes["POST /ops/sync"].iam_auth) == (False, True)
    assert all(
        schedule.dead_letter_arn == billsync.resources["FailedRunsQueue"].arn
        for schedule in billsync.schedules
    )


def test_outputs_resolve(billsync: LocalStack) -> None:
    assert set(billsync.outputs) == set(billsync.template.outputs)
    assert all(isinstance(value, str) and "${" not in value for value in billsync.outputs.values())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"MaxReceiveCount": "1"}, "below MinValue"),
        ({"LogRetentionDays": "2"}, "must be one of"),
        ({"Stage": "Prod"}, "does not match"),
        ({"Tracing": "Sometimes"}, "must be one of"),
    ],
)
def test_parameter_validation_on_the_real_template(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        load_template(TEMPLATE, stack_name="s", region="us-east-1", parameter_overrides=overrides)


def test_conditions_on_the_real_template() -> None:
    template = load_template(
        TEMPLATE, stack_name="s", region="us-east-1", parameter_overrides={"Tracing": "Active"}
    )
    variables = template.resources["InvoiceFunction"].properties["Environment"]["Variables"]
    assert template.evaluator(None).resolve(variables["POWERTOOLS_TRACE_DISABLED"]) == "false"
    with_email = load_template(
        TEMPLATE, stack_name="s", region="us-east-1", parameter_overrides={"AlarmEmail": "a@b.c"}
    )
    assert "AlarmEmailSubscription" in with_email.resources


def test_the_runtime_names_none_of_the_templates_resources() -> None:
    logical_ids = set(load_template(TEMPLATE, stack_name="s", region="us-east-1").document["Resources"])
    for source in RUNTIME_SOURCES.glob("*.py"):
        text = source.read_text()
        named = sorted(logical_id for logical_id in logical_ids if re.search(rf"\b{logical_id}\b", text))
        assert named == [], f"{source.name} names {named}"
