"""Fingerprints of mapped values, for recognising the sync's own changes when they come back (echoes).

billsync remembers the fingerprint of what it wrote to a record. When the record changes, the
fingerprint of the same fields as the other system now returns them is compared with it: equal means
the change is the sync's own echo. For that, a value billsync sends and the value Salesforce returns
for it must look the same, although Salesforce writes them differently:

* numbers compare by value: Decimal("45.00"), 45 and 45.0 are alike; booleans are never numbers;
* datetimes compare as instants in UTC to the millisecond, whether aware datetimes or Salesforce text
  ("2024-03-01T10:00:00.000+0000", "...Z", "...+00:00"); dates compare as "YYYY-MM-DD";
* a parent link `{"Billing_Id__c": "main:1"}` compares equal to the parent record Salesforce returns
  for it (its "attributes" block is ignored);
* null, a missing field, empty text (Salesforce stores "" as null), an empty list and an empty link
  are alike;
* a value and its canonical text are alike (45 and "45", True and "true"), since a Salesforce text
  field returns the text of the number or checkbox billsync wrote into it;
* any other text compares exactly.

The representation is built from text only (no hash(), no float repr), so fingerprints are stable
across processes, machines and Python versions.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from typing import Any

__all__ = ["canonical_value", "fingerprint"]

_MAX_EXPONENT = 1000
_WIDE = Context(prec=_MAX_EXPONENT, Emax=MAX_EMAX, Emin=MIN_EMIN)
_DATETIME_TEXT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2}):?(\d{2}))",
    re.ASCII,
)


def _number(value: Decimal) -> str:
    """The value without exponent or trailing zeros ("45", "0.1"); beyond 1e1000, in exponent form."""
    if value.is_zero():
        return "0"
    if abs(value.adjusted()) > _MAX_EXPONENT:
        return str(value.normalize(_WIDE))
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _instant(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: billsync only compares aware times")
    moment = value.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond // 1000:03d}Z"


def _datetime_text(text: str) -> str | None:
    """Salesforce-style datetime text → the canonical instant, or None when the text is not one."""
    match = _DATETIME_TEXT.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
    offset = timedelta(0)
    if match.group(9):
        offset = timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
        offset = -offset if match.group(9) == "-" else offset
    try:
        return _instant(datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone(offset)))
    except ValueError:
        return None


def _is_attributes(key: Any, value: Any) -> bool:
    """The "attributes" block Salesforce adds to every record it returns ({"type": ..., "url": ...})."""
    return key == "attributes" and isinstance(value, Mapping) and "type" in value


def canonical_value(value: Any) -> str | None:
    """A value as text that is equal for equal meanings on both sides; None for null and empty values."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        number = Decimal(str(value)) if isinstance(value, float) else value
        return _number(number) if number.is_finite() else str(number)
    if isinstance(value, datetime):
        return _instant(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M:%S") + f".{value.microsecond // 1000:03d}Z"
    if isinstance(value, str):
        if not value:
            return None
        return _datetime_text(value) or value
    if isinstance(value, Mapping):
        items = {
            str(key): canonical_value(item) for key, item in value.items() if not _is_attributes(key, item)
        }
        kept = {key: item for key, item in items.items() if item is not None}
        return _dumps(kept) if kept else None
    if isinstance(value, list | tuple):
        return _dumps([canonical_value(item) for item in value]) if value else None
    raise TypeError(f"cannot fingerprint a {type(value).__name__}")


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def fingerprint(fields: Mapping[str, Any]) -> str:
    """The sha256 (hex) of the fields' canonical values, keys sorted, null and missing fields alike.

    A Salesforce record can be given as returned: its "attributes" block is ignored.
    """
    canonical = {
        str(key): canonical_value(value) for key, value in fields.items() if not _is_attributes(key, value)
    }
    kept = {key: value for key, value in canonical.items() if value is not None}
    return hashlib.sha256(_dumps(kept).encode("ascii")).hexdigest()
