"""Field validation with Invoiced's messages (`Name is missing`, `Email must be a valid email address`, ...).

Values may come from JSON (typed) or from a form body (all strings), so every reader accepts both,
the way Invoiced's ORM casts request values to the property's type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from local.invoiced.errors import ApiError, humanize, invalid, missing
from local.invoiced.money import parse_decimal

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

METADATA_MAX_KEYS = 10
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 255


def refuse_blocked(data: Mapping[str, Any], blocked: Iterable[str], model_name: str) -> None:
    for key in blocked:
        if key in data:
            raise invalid(f"Mass assignment of {key} on {model_name} is not allowed", key)


def text(
    value: Any, key: str, *, min_len: int = 0, max_len: int | None = None, nullable: bool = True
) -> str | None:
    if value is None:
        if nullable:
            return None
        raise missing(key)
    if isinstance(value, bool | dict | list):
        raise invalid(f"{humanize(key)} must be a string of the proper length", key)
    result = value if isinstance(value, str) else str(value)
    if result == "" and nullable and min_len == 0:
        return None
    if len(result) < min_len or (max_len is not None and len(result) > max_len):
        raise invalid(f"{humanize(key)} must be a string of the proper length", key)
    return result


def required_text(data: Mapping[str, Any], key: str, *, max_len: int = 255) -> str:
    value = data.get(key)
    if value is None or value == "":
        raise missing(key)
    result = text(value, key, min_len=1, max_len=max_len, nullable=False)
    assert result is not None
    return result


def boolean(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise invalid(f"{humanize(key)} must be yes or no", key)


def integer(value: Any, key: str, *, nullable: bool = True, minimum: int | None = None) -> int | None:
    if value is None or value == "":
        if nullable:
            return None
        raise missing(key)
    if isinstance(value, bool):
        raise invalid(f"{humanize(key)} only allows numbers", key)
    integral_float = isinstance(value, float) and value.is_integer()
    digits = isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value) is not None
    if isinstance(value, int):
        result = value
    elif integral_float or digits:
        result = int(value)
    else:
        raise invalid(f"{humanize(key)} only allows numbers", key)
    if minimum is not None and result < minimum:
        raise invalid(f"{humanize(key)} must be within the allowed range", key)
    return result


def timestamp(value: Any, key: str, *, nullable: bool = True) -> int | None:
    if value is None or value == "":
        if nullable:
            return None
        raise missing(key)
    if isinstance(value, bool):
        raise invalid(f"{humanize(key)} only allows timestamps", key)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    raise invalid(f"{humanize(key)} only allows timestamps", key)


def decimal(value: Any, key: str, *, nullable: bool = False) -> Decimal | None:
    if value is None or value == "":
        if nullable:
            return None
        raise missing(key)
    return parse_decimal(value, key)


def email(value: Any, key: str = "email") -> str | None:
    result = text(value, key)
    if result is not None and not _EMAIL.match(result):
        raise invalid(f"{humanize(key)} must be a valid email address", key)
    return result


def choice(value: Any, key: str, choices: Iterable[str], *, nullable: bool = False) -> str | None:
    if value is None or value == "":
        if nullable:
            return None
        raise missing(key)
    if not isinstance(value, str) or value not in set(choices):
        raise invalid(f"{humanize(key)} must be one of the allowed values", key)
    return value


def currency(value: Any, key: str = "currency", *, nullable: bool = True) -> str | None:
    if value is None or value == "":
        if nullable:
            return None
        raise missing(key)
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise invalid(f"{humanize(key)} is invalid", key)
    return value.lower()


def country(value: Any, key: str = "country") -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _COUNTRY.match(value):
        raise invalid(f"{humanize(key)} is invalid", key)
    return value.upper()


def metadata(value: Any) -> dict[str, Any]:
    """Metadata replaces the stored map; at most 10 keys of 40 characters and values of 255."""
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid("Metadata must be an object", "metadata")
    if len(value) > METADATA_MAX_KEYS:
        raise invalid(
            f"There can only be up to {METADATA_MAX_KEYS} metadata values. {len(value)} values were provided.",
            "metadata",
        )
    result: dict[str, Any] = {}
    for key, item in value.items():
        key_text = str(key)
        if len(key_text) > METADATA_MAX_KEY_LENGTH:
            raise invalid(
                f"The `{key_text}` metadata key exceeds the {METADATA_MAX_KEY_LENGTH} character limit.",
                "metadata",
            )
        encoded = json.dumps(item) if isinstance(item, dict | list) else item
        if item is None or not isinstance(encoded, str | int | float | bool):
            raise invalid(
                f"The provided value for metadata.{key_text} is an invalid type. Valid types are string, "
                "boolean, number, object, and array.",
                "metadata",
            )
        if len(str(encoded)) > METADATA_MAX_VALUE_LENGTH:
            raise invalid(
                f"The provided value for metadata.{key_text} exceeds the {METADATA_MAX_VALUE_LENGTH} character limit.",
                "metadata",
            )
        result[key_text] = item
    return result


def expect_object(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"{humanize(key)} must be an object", key)
    return value


def expect_list(value: Any, key: str) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, dict) and not value:
        return []
    if not isinstance(value, list):
        raise invalid(f"{humanize(key)} must be an array", key)
    return value


def reference_id(value: Any, key: str) -> int | None:
    """An integer object id in a request (`customer: 12` or `customer=12`)."""
    if value is None or value == "":
        return None
    try:
        return integer(value, key)
    except ApiError:
        raise invalid(f"No such {key.replace('_', ' ')}: {value}", key) from None
