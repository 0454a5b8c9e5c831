"""Invoiced's error responses: `{"type", "message", "param"?}` with the status code."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error the API answers with; the type follows the status as Invoiced's server does."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param

    @property
    def type(self) -> str:
        if self.status >= 500:
            return "api_error"
        if self.status == 429:
            return "rate_limit_error"
        return "invalid_request"

    def body(self) -> dict[str, Any]:
        result: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.param:
            result["param"] = self.param
        return result

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.message!r}, param={self.param!r})"


def invalid(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param)


def not_found(model_name: str, object_id: object) -> ApiError:
    return ApiError(404, f"{model_name} was not found: {object_id}")


def humanize(field_name: str) -> str:
    """`payment_terms` -> `Payment terms`, the field name Invoiced puts in validation messages."""
    words = field_name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def missing(field_name: str) -> ApiError:
    return invalid(f"{humanize(field_name)} is missing", field_name)
