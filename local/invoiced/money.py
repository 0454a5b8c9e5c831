"""Money as Invoiced keeps it: decimals in major units, rounded to the currency's precision."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from local.invoiced.errors import ApiError, humanize, invalid

CENT = Decimal("0.01")
ZERO = Decimal("0")
_ZERO_DECIMAL_CURRENCIES = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "pyg", "rwf", "vnd", "xaf"}
)


def parse_decimal(value: Any, field_name: str, param: str | None = None) -> Decimal:
    """A number from JSON or a form field; anything else is a 400 naming the field."""
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        raise _not_a_number(field_name, param)
    try:
        number = Decimal(str(value).strip()) if isinstance(value, str) else Decimal(str(value))
    except InvalidOperation:
        raise _not_a_number(field_name, param) from None
    if not number.is_finite():
        raise _not_a_number(field_name, param)
    return number


def _not_a_number(field_name: str, param: str | None) -> ApiError:
    return invalid(f"{humanize(field_name)} only allows numbers", param or field_name)


def quantum(currency: str) -> Decimal:
    return Decimal("1") if currency.lower() in _ZERO_DECIMAL_CURRENCIES else CENT


def round_money(amount: Decimal, currency: str = "usd") -> Decimal:
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


def format_money(amount: Decimal, currency: str) -> str:
    """`$1,234.50` for dollars, `1,234.50 EUR` otherwise (Invoiced's money formatter in messages)."""
    rounded = round_money(amount, currency)
    sign = "-" if rounded < 0 else ""
    digits = f"{abs(rounded):,}"
    if currency.lower() == "usd":
        return f"{sign}${digits}"
    return f"{sign}{digits} {currency.upper()}"
