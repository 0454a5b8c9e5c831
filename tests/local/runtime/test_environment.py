"""What a function sees: resolved environment, Globals, overrides, sys.path, context; and the stack's view."""

from __future__ import annotations

from typing import Any

import pytest

from local.runtime import LocalStack


@pytest.fixture(scope="module")
def environment(app_stack: LocalStack) -> dict[str, Any]:
    result = app_stack.invoke("EchoFunction", {"action": "env"})
    assert result.ok, result.error
    payload: dict[str, Any] = result.payload
    return payload


def test_intrinsics_in_the_environment_resolve_like_cloudformation(
    app_stack: LocalStack, environment: dict[str, Any]
) -> None:
    env = environment["environ"]
    resources = app_stack.resources
    assert env["TABLE_NAME"] == "fixture-Table"
    assert env["TABLE_ARN"] == "arn:aws:dynamodb:us-east-1:123456789012:table/fixture-Table"
    assert env["TABLE_STREAM"].startswith(env["TABLE_ARN"] + "/stream/")
    assert (
        env["QUEUE_URL"]
        == resources["WorkQueue"].url
        == f"{app_stack.aws_endpoint}/123456789012/fixture-WorkQueue"
    )
    assert env["QUEUE_NAME"] == "fixture-WorkQueue"
    assert env["DLQ_ARN"] == "arn:aws:sqs:us-east-1:123456789012:fixture-WorkDLQ"
    assert env["TOPIC_ARN"] == "arn:aws:sns:us-east-1:123456789012:fixture-Topic"
    assert env["TOPIC_NAME"] == "fixture-Topic"
    assert env["API_ID"] == resources["Api"].ref
    assert len(env["API_ID"]) == 10
    assert env["LAYER_ARN"] == "arn:aws:lambda:us-east-1:123456789012:layer:fixture-PyLayer:1"
    assert env["SUBBED"] == (
        "us-east-1/123456789012/aws/fixture/fixture-Table/arn:aws:sqs:us-east-1:123456789012:fixture-WorkQueue"
        "/${Literal}"
    )
    assert env["SUB_WITH_VARIABLES"] == "us-east-1-test"
    assert env["IF_VALUE"] == "other-value"
    assert env["NOT_VALUE"] == "not-prod"
    assert env["OR_VALUE"] == "test-or-prod"
    assert "NO_VALUE" not in env
    assert env["JOINED"] == "a+test+y"
    assert env["MAPPED"] == "green"
    assert env["ENCODED"] == "aGVsbG8="
    assert env["ZONE"] == "us-east-1a"
    assert (env["NUMBER"], env["FLAG"], env["RECEIVES"]) == ("42", "true", "2")


def test_globals_merge_and_overrides(environment: dict[str, Any], record_dir: Any) -> None:
    env = environment["environ"]
    assert env["STAGE"] == "test"  # parameter override
    assert env["GLOBAL_ONLY"] == "from-globals"  # map merged
    assert env["SHARED"] == "function"  # the function's entry wins
    assert env["OVERRIDDEN"] == "caller"  # env_overrides for this function
    assert env["RECORD_DIR"] == str(record_dir)  # env_overrides for every function
    assert env["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "6"  # scalar replaced
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"  # scalar inherited
    # Lists are additive, global entries first: both global layers and the function's own.
    assert {"LOCAL_LAYER_DIR_ConfLayer", "LOCAL_LAYER_DIR_ExtraLayer"} <= set(env)


def test_runtime_variables_point_the_function_at_the_local_stack(
    app_stack: LocalStack, environment: dict[str, Any]
) -> None:
    env = environment["environ"]
    fixture_root = app_stack.template.root
    assert env["AWS_ENDPOINT_URL"] == app_stack.aws_endpoint
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("testing", "testing")
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "fixture-EchoFunction"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/fixture-EchoFunction"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert env["_HANDLER"] == "app.lambda_handler"
    assert env["LAMBDA_TASK_ROOT"] == str(fixture_root / "functions" / "echo")
    assert env["LOCAL_LAYER_DIR_ConfLayer"] == str(fixture_root / "conf")
    assert env["LOCAL_LAYER_DIR_ExtraLayer"] == str(fixture_root / "extra")
    assert "LOCAL_LAYER_DIR_PyLayer" not in env
    assert not [name for name in env if name.startswith("AWS_PROFILE")]


def test_sys_path_working_directory_and_python_layers(
    app_stack: LocalStack, environment: dict[str, Any]
) -> None:
    root = app_stack.template.root
    assert environment["sys_path"][:3] == [str(root / "functions" / "echo"), str(root / "layer"), str(root)]
    assert environment["cwd"] == str(root / "functions" / "echo")
    assert environment["layer_greeting"] == "hello from the layer"


def test_lambda_context(environment: dict[str, Any]) -> None:
    context = environment["context"]
    assert context["function_name"] == "fixture-EchoFunction"
    assert context["function_version"] == "$LATEST"
    assert (
        context["invoked_function_arn"]
        == "arn:aws:lambda:us-east-1:123456789012:function:fixture-EchoFunction"
    )
    assert context["memory_limit_in_mb"] == "256"
    assert context["log_group_name"] == "/aws/lambda/fixture-EchoFunction"
    assert "[$LATEST]" in context["log_stream_name"]
    assert 0 < context["remaining_ms"] <= 6000
    assert len(context["aws_request_id"]) == 36


def test_context_overrides_reach_the_handler(app_stack: LocalStack) -> None:
    result = app_stack.invoke(
        "EchoFunction", {"action": "env"}, context_overrides={"aws_request_id": "fixed-id"}
    )
    assert result.payload["context"]["aws_request_id"] == "fixed-id"


def test_resources_outputs_and_what_is_not_emulated(app_stack: LocalStack) -> None:
    resources = app_stack.resources
    assert resources["OrderedQueue"].physical_name == "fixture-OrderedQueue.fifo"
    assert resources["EchoLogGroup"].physical_name == "/aws/lambda/fixture-EchoFunction"
    assert (
        resources["EchoFunction"].arn == "arn:aws:lambda:us-east-1:123456789012:function:fixture-EchoFunction"
    )
    assert "ProdOnlyQueue" not in resources
    assert app_stack.inactive == {"ProdOnlyQueue": "Condition IsProd is false"}

    sqs = app_stack.boto3_client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=resources["OrderedQueue"].url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["FifoQueue"] == "true"
    assert attributes["ContentBasedDeduplication"] == "true"
    assert '"maxReceiveCount": 5' in attributes["RedrivePolicy"]
    table = app_stack.boto3_client("dynamodb").describe_table(TableName="fixture-Table")["Table"]
    assert table["GlobalSecondaryIndexes"][0]["IndexName"] == "gsi1"
    ttl = app_stack.boto3_client("dynamodb").describe_time_to_live(TableName="fixture-Table")
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"

    assert app_stack.outputs == {
        "ApiUrl": f"https://{resources['Api'].ref}.execute-api.us-east-1.amazonaws.com/",
        "WorkQueueUrl": resources["WorkQueue"].url,
    }
    reported = {(note.logical_id, note.type) for note in app_stack.not_emulated}
    assert ("Bucket", "AWS::S3::Bucket") in reported
    assert ("QueueAlarm", "AWS::CloudWatch::Alarm") in reported
    assert ("EchoFunction.Events.Uploads", "S3") in reported
    assert any(
        note.logical_id == "Api" and "AccessLogSettings" in note.detail for note in app_stack.not_emulated
    )
    covered = set(resources) | {note.logical_id for note in app_stack.not_emulated}
    assert set(app_stack.template.document["Resources"]) <= covered
