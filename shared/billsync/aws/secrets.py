"""Secrets Manager, read by name, cached briefly in the process.

A caller that sees a credential fail (a webhook signature that matches no known secret, a login
refused) can force a fresh read, so a rotated secret takes effect without a redeploy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any


class SecretUnavailable(RuntimeError):
    pass


class SecretsReader:
    def __init__(self, *, client: Any = None, max_age_seconds: float = 300.0) -> None:
        self._client = client
        self._max_age = max_age_seconds
        self._cache: dict[str, tuple[float, Mapping[str, Any]]] = {}

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("secretsmanager")
        return self._client

    def get_json(self, name: str, *, refresh: bool = False) -> Mapping[str, Any]:
        cached = self._cache.get(name)
        if cached and not refresh and time.monotonic() - cached[0] < self._max_age:
            return cached[1]
        from botocore.exceptions import ClientError

        try:
            value = self.client.get_secret_value(SecretId=name)["SecretString"]
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            raise SecretUnavailable(f"cannot read the secret {name!r}: {code}") from None
        try:
            parsed = json.loads(value)
        except ValueError:
            raise SecretUnavailable(f"the secret {name!r} is not a JSON object") from None
        if not isinstance(parsed, dict):
            raise SecretUnavailable(f"the secret {name!r} is not a JSON object")
        self._cache[name] = (time.monotonic(), parsed)
        return parsed
