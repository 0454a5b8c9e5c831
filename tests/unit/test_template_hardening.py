"""The template's security and reliability rules, checked on every build (checkov runs in `make template`).

* no IAM statement grants every resource (`*`) or every action of a service;
* every table and queue is encrypted at rest;
* the webhook API throttles;
* every schedule retries and has a dead-letter queue; every asynchronous invocation ends in the
  failed-runs queue; every object queue redrives to its DLQ;
* every skipped checkov check says why, where it stands.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local.runtime.template import load_template_file
from local.stack import TEMPLATE

DOCUMENT = load_template_file(TEMPLATE)
RESOURCES: dict[str, dict[str, Any]] = DOCUMENT["Resources"]


def of_type(*types: str) -> list[tuple[str, dict[str, Any]]]:
    return [(name, r) for name, r in RESOURCES.items() if r["Type"] in types]


def statements() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM statement of the template: function policies, queue and topic policies, IAM resources."""
    for name, resource in RESOURCES.items():
        properties = resource.get("Properties", {})
        for policy in properties.get("Policies") or []:
            if isinstance(policy, str):
                yield name, {"ManagedPolicy": policy}
            elif "Statement" in policy:
                yield from ((name, s) for s in policy["Statement"])
            elif "PolicyDocument" in policy:
                yield from ((name, s) for s in policy["PolicyDocument"]["Statement"])
            else:
                yield name, {"PolicyTemplate": policy}
        document = properties.get("PolicyDocument") or properties.get("AssumeRolePolicyDocument")
        if document and resource["Type"] != "AWS::IAM::Role":
            yield from ((name, s) for s in document["Statement"])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_statements_are_found() -> None:
    assert len(list(statements())) >= 3 * len(of_type("AWS::Serverless::Function"))


@pytest.mark.parametrize(("owner", "statement"), list(statements()))
def test_no_policy_grants_everything(owner: str, statement: dict[str, Any]) -> None:
    assert "ManagedPolicy" not in statement, f"{owner}: managed policies are too broad to review here"
    assert "PolicyTemplate" not in statement, f"{owner}: write the statement out, with its resources"
    assert statement.get("Effect") == "Allow"
    for resource in as_list(statement.get("Resource")):
        text = resource.get("Fn::Sub") if isinstance(resource, dict) else resource
        if isinstance(text, str):  # an ARN may end in a path wildcard (secret:billsync/<stage>/*), never ':*'
            assert text != "*" and not text.endswith(":*"), f"{owner} {statement.get('Sid')}: {text}"
    for action in as_list(statement.get("Action")):
        assert action != "*" and not action.endswith(":*"), f"{owner} {statement.get('Sid')}: {action}"
    assert "NotAction" not in statement and "NotResource" not in statement


def test_tables_and_queues_are_encrypted_at_rest() -> None:
    for name, table in of_type("AWS::DynamoDB::Table"):
        assert table["Properties"]["SSESpecification"]["SSEEnabled"] is True, name
        assert table["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], name
    queues = of_type("AWS::SQS::Queue")
    assert queues
    for name, queue in queues:
        properties = queue["Properties"]
        assert properties.get("SqsManagedSseEnabled") is True or properties.get("KmsMasterKeyId"), name
    for name, topic in of_type("AWS::SNS::Topic"):
        assert topic["Properties"].get("KmsMasterKeyId"), name


def test_every_http_api_throttles() -> None:
    apis = of_type("AWS::Serverless::HttpApi")
    assert len(apis) >= 2  # the webhook API and the operators' API
    for name, api in apis:
        route = api["Properties"].get("DefaultRouteSettings", {})
        assert 0 < route.get("ThrottlingRateLimit", 0) <= route.get("ThrottlingBurstLimit", 0), name


def test_every_schedule_retries_and_dead_letters_and_every_async_path_ends_in_a_queue() -> None:
    schedules = 0
    for name, function in of_type("AWS::Serverless::Function"):
        for event_name, event in function["Properties"].get("Events", {}).items():
            assert event["Type"] not in {"Schedule", "CloudWatchEvent", "EventBridgeRule"}, (
                f"{name}.{event_name}: use ScheduleV2, which retries and dead-letters"
            )
            if event["Type"] == "ScheduleV2":
                schedules += 1
                properties = event["Properties"]
                assert properties["RetryPolicy"]["MaximumRetryAttempts"] >= 1, f"{name}.{event_name}"
                assert properties["DeadLetterConfig"]["Arn"], f"{name}.{event_name}"
            if event["Type"] == "SQS":
                queue = RESOURCES[event["Properties"]["Queue"]["Fn::GetAtt"][0]]
                assert queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"], name
                assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name
    assert schedules > 0
    on_failure = DOCUMENT["Globals"]["Function"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS" and on_failure["Destination"]
    for name, function in of_type("AWS::Serverless::Function"):
        assert (
            "EventInvokeConfig" not in function["Properties"]
            or function["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
        ), name


def test_every_skipped_check_says_why() -> None:
    skips = 0
    for name, resource in RESOURCES.items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            skips += 1
            assert skip["id"].startswith("CKV"), name
            assert len(skip.get("comment", "").split()) >= 8, f"{name}: {skip['id']} needs its reason"
    assert skips > 0
