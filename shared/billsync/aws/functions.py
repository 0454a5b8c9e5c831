"""The objects' functions, invoked by the ops function and the operator command line (AWS Lambda)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from billsync.usecases.ops_ports import InvocationResult

# A synchronous run may last as long as the function's timeout (15 minutes at most); a read timeout
# shorter than that would make the SDK retry, and run the invocation twice.
INVOKE_READ_TIMEOUT = 960


class FunctionUnknown(LookupError):
    pass


class LambdaFunctions:
    def __init__(self, client: Any, names: Mapping[str, str]) -> None:
        """`names`: `FUNCTION_NAME_<OBJECT>` → the function's name or ARN."""
        self._client = client
        self._names = names

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "lambda", config=Config(read_timeout=INVOKE_READ_TIMEOUT, retries={"total_max_attempts": 1})
            )
        return self._client

    def name(self, object_name: str) -> str:
        key = f"FUNCTION_NAME_{object_name.upper()}"
        name = self._names.get(key)
        if not name:
            raise FunctionUnknown(f"no function for {object_name!r} ({key} is not set)")
        return name

    def invoke(self, object_name: str, event: Mapping[str, Any]) -> InvocationResult:
        response = self.client.invoke(
            FunctionName=self.name(object_name),
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
        raw = response["Payload"].read()
        payload = json.loads(raw) if raw else None
        if response.get("FunctionError"):
            message = payload.get("errorMessage") if isinstance(payload, dict) else None
            return InvocationResult(
                ok=False, payload=payload, error=str(message or response["FunctionError"])
            )
        return InvocationResult(ok=True, payload=payload)

    def invoke_async(self, object_name: str, event: Mapping[str, Any]) -> None:
        self.client.invoke(
            FunctionName=self.name(object_name), InvocationType="Event", Payload=json.dumps(event).encode()
        )
