"""Salesforce's error shapes.

A REST error body is a JSON array of ``{"message", "errorCode", "fields"?}``; sObject Collections,
sObject Tree and other save results put the same error under ``statusCode`` instead. `SfError`
is one error; `ApiError` is a request-level failure with its HTTP status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NOT_FOUND_MESSAGE",
    "SESSION_INVALID_BODY",
    "ApiError",
    "SfError",
    "not_found",
]

NOT_FOUND_MESSAGE = "The requested resource does not exist"
#: The exact 401 body clients parse (simple-salesforce reads ``[0]['errorCode']``).
SESSION_INVALID_BODY = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


@dataclass(frozen=True, slots=True)
class SfError:
    """One error. ``fields`` is reported for record-level (save) errors."""

    code: str
    message: str
    fields: tuple[str, ...] = ()
    record_level: bool = True

    def rest(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.record_level:
            body["fields"] = list(self.fields)
        return body

    def collection(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields)}

    def bulk(self) -> str:
        """The ``sf__Error`` text of a Bulk API 2.0 failed-results row."""
        if self.fields:
            return f"{self.code}:{self.message}:{','.join(self.fields)} --"
        return f"{self.code}:{self.message} --"


class ApiError(Exception):
    """A request Salesforce refuses as a whole: HTTP ``status`` and an error-array body.

    ``body`` overrides the error array for the few resources whose errors have another shape.
    """

    def __init__(
        self,
        status: int,
        errors: SfError | Sequence[SfError],
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.errors = [errors] if isinstance(errors, SfError) else list(errors)
        self._body = body
        self.headers = headers or {}
        super().__init__(f"{status} " + "; ".join(f"{e.code}: {e.message}" for e in self.errors))

    @property
    def body(self) -> Any:
        if self._body is not None:
            return self._body
        return [e.rest() for e in self.errors]

    @classmethod
    def request(cls, status: int, code: str, message: str) -> ApiError:
        """A request-level error (no ``fields`` key)."""
        return cls(status, SfError(code, message, record_level=False))


def not_found(message: str = NOT_FOUND_MESSAGE) -> ApiError:
    return ApiError.request(404, "NOT_FOUND", message)
