"""Typed values at the edges: JSON and CSV in, JSON and CSV out, the way Salesforce formats them.

Records are stored with typed values (str, bool, int, Decimal, aware UTC datetime, date, time,
None); this module converts what clients send into those types and back. A value whose JSON type
does not fit the field is a request-level ``JSON_PARSER_ERROR`` (Salesforce fails to deserialize
the body); a value of the right type that breaks a field rule (too long, out of range, not in a
restricted picklist) is a record-level error raised by `check_value`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from local.salesforce.errors import SfError
from local.salesforce.schema import FieldDef

__all__ = [
    "ValueTypeError",
    "check_value",
    "coercer",
    "dumps",
    "format_datetime",
    "format_datetime_z",
    "from_csv",
    "from_json",
    "json_column",
    "parse_datetime",
    "to_csv",
    "to_json",
]


class ValueTypeError(Exception):
    """A JSON value of a type the field cannot take; becomes JSON_PARSER_ERROR."""

    def __init__(self, fdef: FieldDef, value: Any) -> None:
        self.fdef = fdef
        self.value = value
        super().__init__(f"{fdef.name}: cannot take {value!r}")

    def message(self, line: int, column: int) -> str:
        return (
            f"Cannot deserialize instance of {_type_word(self.fdef)} from {_token(self.value)} value "
            f"{_token_text(self.value)} or request may be missing a required field at [line:{line}, column:{column}]"
        )


def _type_word(fdef: FieldDef) -> str:
    return {"datetime": "datetime", "date": "date", "boolean": "boolean", "int": "int", "time": "time"}.get(
        fdef.type, fdef.type if fdef.type in ("double", "currency", "percent") else "string"
    )


def _token(value: Any) -> str:
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, int):
        return "VALUE_NUMBER_INT"
    if isinstance(value, float):
        return "VALUE_NUMBER_FLOAT"
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    return "VALUE_STRING"


def _token_text(value: Any) -> str:
    if isinstance(value, dict):
        return "{"
    if isinstance(value, list):
        return "["
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def json_column(raw: str, key: str, value: Any) -> tuple[int, int]:
    """Where ``"key": value`` starts in the raw body, as 1-based (line, column) of the value."""
    pattern = re.compile(r'"' + re.escape(key) + r'"\s*:\s*')
    for match in pattern.finditer(raw):
        start = match.end()
        text = json.dumps(value) if not isinstance(value, (dict, list)) else raw[start : start + 1]
        if raw.startswith(text, start) or isinstance(value, (dict, list)):
            line = raw.count("\n", 0, start) + 1
            column = start - (raw.rfind("\n", 0, start) + 1) + 1
            return line, column
    return 1, 1


# ------------------------------------------------------------------------------------------------
# Dates and times
# ------------------------------------------------------------------------------------------------

_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}:?\d{2})?$"
)
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_TIME = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|z)?$")


def parse_datetime(text: str) -> datetime:
    """An ISO-8601 datetime (``Z``, ``+00:00`` or ``+0000``, optional fraction) as aware UTC, ms precision."""
    m = _DATETIME.match(text.strip())
    if not m:
        raise ValueError(text)
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    value = datetime(
        int(year),
        int(month),
        int(day),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        micro // 1000 * 1000,
        tzinfo=UTC,
    )
    if offset and offset.upper() != "Z":
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        value -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return value


def parse_date(text: str) -> date:
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValueError(text) from None
    m = _DATE.match(text.strip())
    if not m:
        raise ValueError(text)
    return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))


def parse_time(text: str) -> time:
    m = _TIME.match(text.strip())
    if not m:
        raise ValueError(text)
    hour, minute, second, fraction, _ = m.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    return time(int(hour), int(minute), int(second or 0), micro // 1000 * 1000)


def format_datetime(value: datetime) -> str:
    """``2024-03-01T10:00:00.000+0000``: milliseconds, UTC, offset without a colon."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:"
        f"{value.second:02d}.{value.microsecond // 1000:03d}+0000"
    )


def format_datetime_z(value: datetime) -> str:
    """``2024-03-01T10:00:00.000Z`` (Bulk API CSV and CDC's JSON form)."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def format_time(value: time) -> str:
    return value.strftime("%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


# ------------------------------------------------------------------------------------------------
# JSON in
# ------------------------------------------------------------------------------------------------

_TEXT = frozenset(
    {
        "string",
        "textarea",
        "email",
        "phone",
        "url",
        "picklist",
        "multipicklist",
        "encryptedstring",
        "combobox",
    }
)


def _text_from_json(fdef: FieldDef, value: Any) -> Any:
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    raise ValueTypeError(fdef, value)


def _id_from_json(fdef: FieldDef, value: Any) -> Any:
    if isinstance(value, str):
        return value if value != "" else None
    raise ValueTypeError(fdef, value)


def _number_from_json(fdef: FieldDef, value: Any) -> Any:
    if isinstance(value, (bool, dict, list)):
        raise ValueTypeError(fdef, value)
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        if value.strip() == "":
            return None
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueTypeError(fdef, value) from None
        if not number.is_finite():
            raise ValueTypeError(fdef, value)
    else:
        raise ValueTypeError(fdef, value)
    if fdef.type == "int":
        if number != number.to_integral_value():
            raise ValueTypeError(fdef, value)
        return int(number)
    return number


def _bool_from_json(fdef: FieldDef, value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueTypeError(fdef, value)


def _date_from_json(fdef: FieldDef, value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueTypeError(fdef, value)
    if value == "":
        return None
    try:
        return parse_date(value)
    except ValueError:
        raise ValueTypeError(fdef, value) from None


def _datetime_from_json(fdef: FieldDef, value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueTypeError(fdef, value)
    if value == "":
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        raise ValueTypeError(fdef, value) from None


def _time_from_json(fdef: FieldDef, value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueTypeError(fdef, value)
    try:
        return parse_time(value)
    except ValueError:
        raise ValueTypeError(fdef, value) from None


def _reject(fdef: FieldDef, value: Any) -> Any:
    raise ValueTypeError(fdef, value)


_FROM_JSON: dict[str, Callable[[FieldDef, Any], Any]] = {
    **dict.fromkeys(_TEXT, _text_from_json),
    "id": _id_from_json,
    "reference": _id_from_json,
    "int": _number_from_json,
    "double": _number_from_json,
    "currency": _number_from_json,
    "percent": _number_from_json,
    "boolean": _bool_from_json,
    "date": _date_from_json,
    "datetime": _datetime_from_json,
    "time": _time_from_json,
    "address": _reject,
}


def from_json(fdef: FieldDef, value: Any) -> Any:
    """The typed value of a JSON value for ``fdef``; raises `ValueTypeError`."""
    if value is None:
        return False if fdef.type == "boolean" else None
    return _FROM_JSON[fdef.type](fdef, value)


# ------------------------------------------------------------------------------------------------
# CSV in (Bulk API 2.0)
# ------------------------------------------------------------------------------------------------

_TRUE = frozenset({"true", "1", "yes", "y"})
_FALSE = frozenset({"false", "0", "no", "n"})


def from_csv(fdef: FieldDef, text: str) -> Any:
    """The typed value of a CSV cell (``#N/A`` is handled by the caller); raises ValueError."""
    ftype = fdef.type
    if ftype in _TEXT or ftype in ("id", "reference"):
        return text
    if ftype == "boolean":
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(text)
    if ftype in ("int", "double", "currency", "percent"):
        try:
            number = Decimal(text.strip())
        except InvalidOperation:
            raise ValueError(text) from None
        if not number.is_finite():
            raise ValueError(text)
        if ftype == "int":
            if number != number.to_integral_value():
                raise ValueError(text)
            return int(number)
        return number
    if ftype == "date":
        stripped = text.strip()
        if "T" in stripped:
            return parse_datetime(stripped).date()
        return parse_date(stripped)
    if ftype == "datetime":
        return parse_datetime(text)
    if ftype == "time":
        return parse_time(text)
    raise ValueError(text)


# ------------------------------------------------------------------------------------------------
# Field rules (record-level errors)
# ------------------------------------------------------------------------------------------------

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def check_value(fdef: FieldDef, value: Any) -> tuple[Any, SfError | None]:
    """Apply the field's rules to a typed, non-null value: (normalised value, error or None)."""
    ftype = fdef.type
    if ftype in _TEXT:
        if ftype == "multipicklist":
            parts = [p.strip() for p in value.split(";") if p.strip()]
            value = ";".join(dict.fromkeys(parts))
            if fdef.restricted_picklist:
                for part in parts:
                    if part not in fdef.picklist_set:
                        return value, SfError(
                            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                            f"{fdef.label}: bad value for restricted picklist field: {part}",
                            (fdef.name,),
                        )
        elif ftype == "picklist" and fdef.restricted_picklist and value not in fdef.picklist_set:
            return value, SfError(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{fdef.label}: bad value for restricted picklist field: {value}",
                (fdef.name,),
            )
        if fdef.length and len(value) > fdef.length:
            return value, SfError(
                "STRING_TOO_LONG",
                f"{fdef.label}: data value too large: {value} (max length={fdef.length})",
                (fdef.name,),
            )
        if ftype == "email" and not _EMAIL.match(value):
            return value, SfError(
                "INVALID_EMAIL_ADDRESS", f"{fdef.label}: invalid email address: {value}", (fdef.name,)
            )
        return value, None
    if ftype in ("double", "currency", "percent"):
        if fdef.precision:
            value = value.quantize(Decimal(1).scaleb(-fdef.scale), rounding=ROUND_HALF_UP)
        if _integer_digits(value) > fdef.max_integer_digits:
            return value, SfError(
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{fdef.label}: value outside of valid range on numeric field: {_plain(value)}",
                (fdef.name,),
            )
        return value, None
    if ftype == "int" and len(str(abs(value))) > fdef.max_integer_digits:
        return value, SfError(
            "NUMBER_OUTSIDE_VALID_RANGE",
            f"{fdef.label}: value outside of valid range on numeric field: {value}",
            (fdef.name,),
        )
    if ftype == "datetime" and not (1700 <= value.year <= 4000):
        return value, SfError(
            "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{fdef.label}: invalid date: {value}", (fdef.name,)
        )
    if ftype == "date" and not (1700 <= value.year <= 4000):
        return value, SfError(
            "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{fdef.label}: invalid date: {value}", (fdef.name,)
        )
    return value, None


Coerce = Callable[[Any], tuple[Any, "SfError | None"]]


def coercer(fdef: FieldDef) -> Coerce:
    """One function per field doing `from_json` then `check_value`, with fast paths for the common types.

    Raises `ValueTypeError` for a value of the wrong JSON type, like `from_json`.
    """
    ftype = fdef.type
    if ftype in ("string", "textarea", "phone", "url", "encryptedstring", "combobox", "email"):
        length = fdef.length
        email = ftype == "email"

        def text(value: Any) -> tuple[Any, SfError | None]:
            if value.__class__ is not str:
                if value is None:
                    return None, None
                value = _text_from_json(fdef, value)
            if not value:
                return None, None
            if length and len(value) > length:
                return value, SfError(
                    "STRING_TOO_LONG",
                    f"{fdef.label}: data value too large: {value} (max length={length})",
                    (fdef.name,),
                )
            if email and not _EMAIL.match(value):
                return value, SfError(
                    "INVALID_EMAIL_ADDRESS", f"{fdef.label}: invalid email address: {value}", (fdef.name,)
                )
            return value, None

        return text
    if ftype in ("id", "reference"):

        def reference(value: Any) -> tuple[Any, SfError | None]:
            if value is None or value.__class__ is str:
                return value or None, None
            raise ValueTypeError(fdef, value)

        return reference
    if ftype in ("double", "currency", "percent") and fdef.precision:
        quantum = Decimal(1).scaleb(-fdef.scale)
        limit = Decimal(10) ** fdef.max_integer_digits

        def number(value: Any) -> tuple[Any, SfError | None]:
            if value is None:
                return None, None
            cls = value.__class__
            if cls is int:
                typed = Decimal(value)
            elif cls is float:
                typed = Decimal(repr(value))
            else:
                typed = _number_from_json(fdef, value)
                if typed is None:
                    return None, None
            typed = typed.quantize(quantum, rounding=ROUND_HALF_UP)
            if -limit < typed < limit:
                return typed, None
            return typed, SfError(
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{fdef.label}: value outside of valid range on numeric field: {_plain(typed)}",
                (fdef.name,),
            )

        return number
    if ftype == "picklist":
        restricted = fdef.restricted_picklist
        allowed = fdef.picklist_set
        plength = fdef.length

        def picklist(value: Any) -> tuple[Any, SfError | None]:
            if value.__class__ is not str:
                if value is None:
                    return None, None
                value = _text_from_json(fdef, value)
            if not value:
                return None, None
            if restricted and value not in allowed:
                return value, SfError(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{fdef.label}: bad value for restricted picklist field: {value}",
                    (fdef.name,),
                )
            if plength and len(value) > plength:
                return value, SfError(
                    "STRING_TOO_LONG",
                    f"{fdef.label}: data value too large: {value} (max length={plength})",
                    (fdef.name,),
                )
            return value, None

        return picklist
    if ftype == "date":

        def day(value: Any) -> tuple[Any, SfError | None]:
            if value is None or value == "":
                return None, None
            typed = _date_from_json(fdef, value)
            return check_value(fdef, typed)

        return day
    if ftype == "boolean":

        def boolean(value: Any) -> tuple[Any, SfError | None]:
            if value is True or value is False:
                return value, None
            if value is None:
                return False, None
            return _bool_from_json(fdef, value), None

        return boolean

    def generic(value: Any) -> tuple[Any, SfError | None]:
        typed = from_json(fdef, value)
        if typed is None:
            return None, None
        return check_value(fdef, typed)

    return generic


def _integer_digits(value: Decimal) -> int:
    integral = abs(value).to_integral_value(rounding="ROUND_DOWN")
    return 0 if integral == 0 else len(str(integral))


def _plain(value: Decimal) -> str:
    return format(value, "f")


# ------------------------------------------------------------------------------------------------
# JSON out
# ------------------------------------------------------------------------------------------------


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return format_time(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_default)


def dumps(value: Any) -> bytes:
    """Compact JSON the way the REST API writes it (UTF-8)."""
    return _ENCODER.encode(value).encode("utf-8")


def to_json(value: Any) -> Any:
    """A typed value as its JSON-ready form."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    return _default(value)


# ------------------------------------------------------------------------------------------------
# CSV out (Bulk API 2.0 query results)
# ------------------------------------------------------------------------------------------------


def to_csv(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return repr(float(value))
    if isinstance(value, datetime):
        return format_datetime_z(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return format_time(value)
    return str(value)
