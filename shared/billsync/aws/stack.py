"""A deployed billsync stack as the operator command line reaches it: its resources from the
CloudFormation stack's outputs (by stack name, with an AWS profile and region), or from the state file a
running local stack writes (`billsync local up`), whose AWS stand-in answers the same APIs.

The outputs name every object's resources (`<Object>QueueUrl`, `<Object>DLQUrl`, `<Object>FunctionName`,
with the object's name in PascalCase), so nothing here lists the objects: a new object's block in the
template is found by its outputs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from billsync.aws.dlq import SqsDeadLetters
from billsync.aws.functions import LambdaFunctions
from billsync.aws.queues import SqsQueues
from billsync.aws.state import DynamoState

LOCAL_ACCESS_KEY = "testing"  # the AWS stand-in's fixed credentials, not a secret
LOCAL_STATE_FILE = Path(".billsync/local/stack.json")


class StackError(RuntimeError):
    """The stack cannot be reached or read; the message says why and what to do."""


def pascal(object_name: str) -> str:
    """`bank_account` → `BankAccount`, as the template names an object's resources."""
    return "".join(part.capitalize() for part in object_name.split("_"))


@dataclass
class Stack:
    """One deployment's resources and the AWS clients that reach them."""

    name: str
    outputs: dict[str, str]
    session: Any  # boto3.session.Session
    endpoint: str | None = None  # the local AWS stand-in; None on AWS
    lambda_endpoint: str | None = None
    config_path: str | None = None  # the local stack's configuration file
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def local(self) -> bool:
        return self.endpoint is not None

    def client(self, service: str) -> Any:
        if service not in self._clients:
            from botocore.config import Config

            endpoint = self.lambda_endpoint if service == "lambda" else self.endpoint
            config = Config(retries={"mode": "standard", "max_attempts": 3})
            if service == "lambda":
                # A run may last as long as its function's timeout; a shorter read timeout would make
                # the SDK retry, and run it twice.
                config = Config(read_timeout=960, retries={"total_max_attempts": 1})
            self._clients[service] = self.session.client(service, endpoint_url=endpoint, config=config)
        return self._clients[service]

    def deployed(self, object_names: Iterable[str]) -> list[str]:
        """The objects (of those given) whose resources the stack has."""
        return [name for name in object_names if f"{pascal(name)}FunctionName" in self.outputs]

    def resource_names(self, object_names: Iterable[str]) -> dict[str, str]:
        """The names the adapters find queues and functions under (as the functions' environment)."""
        names: dict[str, str] = {}
        for name in self.deployed(object_names):
            prefix, key = pascal(name), name.upper()
            names[f"QUEUE_URL_{key}"] = self.outputs.get(f"{prefix}QueueUrl", "")
            names[f"DLQ_URL_{key}"] = self.outputs.get(f"{prefix}DLQUrl", "")
            names[f"FUNCTION_NAME_{key}"] = self.outputs[f"{prefix}FunctionName"]
        if "FailedRunsQueueUrl" in self.outputs:
            names["FAILED_RUNS_QUEUE_URL"] = self.outputs["FailedRunsQueueUrl"]
        return names

    def output(self, key: str) -> str:
        value = self.outputs.get(key)
        if not value:
            raise StackError(f"the stack {self.name} has no output {key}; is it a billsync stack?")
        return value

    # ------------------------------------------------------------------------------ adapters

    def state(self, *, log_ttl_days: int = 30) -> DynamoState:
        return DynamoState(
            self.output("StateTableName"), client=self.client("dynamodb"), log_ttl_days=log_ttl_days
        )

    def queues(self, object_names: Iterable[str]) -> SqsQueues:
        return SqsQueues(client=self.client("sqs"), env=self.resource_names(object_names))

    def dead_letters(self, object_names: Iterable[str]) -> SqsDeadLetters:
        return SqsDeadLetters(self.client("sqs"), self.resource_names(object_names))

    def functions(self, object_names: Iterable[str]) -> LambdaFunctions:
        return LambdaFunctions(self.client("lambda"), self.resource_names(object_names))


def open_stack(name: str, *, profile: str | None = None, region: str | None = None) -> Stack:
    """A deployed stack, by name, through CloudFormation."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except ProfileNotFound:
        raise StackError(f"no AWS profile named {profile!r} (see ~/.aws/config)") from None
    if session.region_name is None:
        raise StackError("no AWS region: give --region, or set one in the profile or AWS_REGION")
    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    except NoCredentialsError:
        raise StackError(
            "no AWS credentials found: give --profile, or set AWS_PROFILE or the AWS_ACCESS_KEY_ID variables"
        ) from None
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if "does not exist" in message:
            raise StackError(f"no stack named {name!r} in {session.region_name}: {message}") from None
        raise StackError(f"cannot read the stack {name!r}: {message}") from None
    except BotoCoreError as exc:
        raise StackError(f"cannot reach CloudFormation in {session.region_name}: {exc}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return Stack(name=name, outputs=outputs, session=session)


def open_local_stack(state_file: Path = LOCAL_STATE_FILE) -> Stack:
    """The running local stack, from the state file `billsync local up` writes."""
    import boto3

    try:
        state: Mapping[str, Any] = json.loads(state_file.read_text())
    except FileNotFoundError:
        raise StackError(
            f"no local stack: {state_file} does not exist (start one with `billsync local up`)"
        ) from None
    except (OSError, ValueError) as exc:
        raise StackError(f"cannot read the local stack's state file {state_file}: {exc}") from None
    session = boto3.session.Session(
        aws_access_key_id=LOCAL_ACCESS_KEY,
        aws_secret_access_key=LOCAL_ACCESS_KEY,
        region_name=str(state.get("region") or "us-east-1"),
    )
    return Stack(
        name=str(state.get("stack_name") or "billsync-local"),
        outputs={k: str(v) for k, v in (state.get("outputs") or {}).items()},
        session=session,
        endpoint=str(state["aws_endpoint"]),
        lambda_endpoint=f"{state['api_url']}/_local/lambda",
        config_path=state.get("config"),
    )
