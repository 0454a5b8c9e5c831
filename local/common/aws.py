"""The AWS stand-in: moto's server behind one lock, on the keep-alive local server.

Two adjustments make moto usable under the local stack's load, without changing what AWS does:

* moto's in-memory backends are not safe under concurrent requests (several function workers writing
  transactions at once corrupt a table mid-copy and answer 500), so requests run one at a time; each
  is short, and connections stay open, so the stand-in stays fast;
* moto's TransactWriteItems deep-copies the whole table once per item for its rollback, which makes a
  100-item transaction on a table of a few thousand items take seconds. DynamoDB evaluates every
  condition against the state before the transaction and then applies all writes or none; with
  requests serialized, that is done here directly: check everything, then write.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

from local.common.server import LocalServer


class SerializedApp:
    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """DynamoDB's TransactWriteItems: all conditions against the prior state, then all writes or none."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen: set[tuple[str, str]] = set()
    plans: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        table = self.get_table(op["TableName"])
        if op_type == "Put":
            attrs = op["Item"]
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs[table.range_key_attr]
        else:
            key = op["Key"]
        identity = (str(op["TableName"]), str(dict(sorted(key.items()))))
        if identity in seen:
            raise MultipleTransactionsException()
        seen.add(identity)
        plans.append((op_type, op, key))
        condition = op.get("ConditionExpression")
        current = self.get_item(op["TableName"], key)
        if condition is not None:
            check = get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            )
            if not check.expr(current):
                old = (
                    current.to_json()["Attributes"]
                    if current and op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
                    else None
                )
                errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
                continue
        errors.append((None, None, None))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    for op_type, op, key in plans:
        names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        if op_type == "Put":
            self.put_item(
                op["TableName"],
                op["Item"],
                expression_attribute_names=names,
                expression_attribute_values=values,
            )
        elif op_type == "Delete":
            self.delete_item(
                op["TableName"], key, expression_attribute_names=names, expression_attribute_values=values
            )
        elif op_type == "Update":
            self.update_item(
                op["TableName"],
                key,
                update_expression=op["UpdateExpression"],
                expression_attribute_names=names,
                expression_attribute_values=values,
            )


class LocalAws:
    """moto in server mode on 127.0.0.1 (port 0 picks one); `endpoint` is its URL."""

    def __init__(self, port: int = 0) -> None:
        # Queues are emptied between tests; AWS allows one PurgeQueue a minute per queue, which the
        # stand-in need not enforce for itself.
        os.environ.setdefault("MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR", "false")
        from moto.dynamodb.models import DynamoDBBackend
        from moto.server import DomainDispatcherApplication, create_backend_app

        DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
        self._server = LocalServer(SerializedApp(DomainDispatcherApplication(create_backend_app)), port=port)
        self.endpoint = self._server.base_url

    def start(self) -> LocalAws:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
