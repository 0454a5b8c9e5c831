"""Card data: refuse anything that looks like a card number, and stand in for the payment gateway's tokens.

Invoiced stores payment sources only through tokens (`invoiced_token` from Invoiced.js, or a
`gateway_token`); the API never sees a card number. The emulator holds billsync to that: a request
carrying a 13-19 digit number that passes the Luhn check, in any field, is refused before anything is
stored or logged, and the refusal never repeats the number.
"""

from __future__ import annotations

import re
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from local.invoiced.errors import ApiError

_DIGIT_RUN = re.compile(r"\d+(?:[ -]+\d+)*")
_SEPARATOR = re.compile(r"[ -]+")

PAN_MESSAGE = (
    "Card numbers cannot be sent to the Invoiced API. Tokenize the card with Invoiced.js or your "
    "payment gateway and send the token instead."
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def contains_card_number(text: str) -> bool:
    """True when `text` holds 13-19 digits (spaces or dashes allowed between groups) passing Luhn.

    Separated groups are combined only whole and in sequence, so a card number inside a longer run
    of groups is still found, while an unseparated run longer than 19 digits is not a card number.
    """
    for match in _DIGIT_RUN.finditer(text):
        groups = _SEPARATOR.split(match.group(0))
        for start in range(len(groups)):
            digits = ""
            for group in groups[start:]:
                digits += group
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and luhn_valid(digits):
                    return True
    return False


def find_card_number(value: Any, path: str = "") -> str | None:
    """The path of the first field (or key) holding a card number, else None."""
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}[{key}]" if path else str(key)
            if isinstance(key, str) and contains_card_number(key):
                return child
            found = find_card_number(item, child)
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = find_card_number(item, f"{path}[{index}]")
            if found:
                return found
        return None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int) and contains_card_number(str(value)):
        return path or "request"
    return None


def refuse_card_numbers(value: Any, where: str = "") -> None:
    path = find_card_number(value, where)
    if path is not None:
        raise ApiError(400, PAN_MESSAGE, path)


@dataclass(frozen=True)
class CardDetails:
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    funding: str


@dataclass(frozen=True)
class BankDetails:
    bank_name: str
    last4: str
    routing_number: str
    verified: bool
    currency: str


@dataclass(frozen=True)
class Token:
    value: str
    details: CardDetails | BankDetails | None  # None: the gateway declines it
    reusable: bool


def _preset_tokens() -> dict[str, Token]:
    cards = {
        "tok_visa": CardDetails("Visa", "4242", 12, 2034, "credit"),
        "tok_visa_debit": CardDetails("Visa", "5556", 12, 2034, "debit"),
        "tok_mastercard": CardDetails("MasterCard", "4444", 12, 2034, "credit"),
        "tok_amex": CardDetails("American Express", "8431", 12, 2034, "credit"),
        "tok_discover": CardDetails("Discover", "1117", 12, 2034, "credit"),
        "tok_prepaid": CardDetails("Visa", "5100", 12, 2034, "prepaid"),
    }
    banks = {
        "btok_us": BankDetails("STRIPE TEST BANK", "6789", "110000000", False, "usd"),
        "btok_us_verified": BankDetails("STRIPE TEST BANK", "6789", "110000000", True, "usd"),
    }
    details: dict[str, CardDetails | BankDetails] = {**cards, **banks}
    tokens = {k: Token(k, v, True) for k, v in details.items()}
    tokens["tok_chargeDeclined"] = Token("tok_chargeDeclined", None, True)
    return tokens


class TokenVault:
    """The gateway side of tokenisation: preset test tokens plus single-use tokens minted by tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens = _preset_tokens()

    def reset(self) -> None:
        with self._lock:
            self._tokens = _preset_tokens()

    def mint(self, details: CardDetails | BankDetails) -> str:
        prefix = "tok" if isinstance(details, CardDetails) else "btok"
        value = f"{prefix}_{secrets.token_hex(12)}"
        with self._lock:
            self._tokens[value] = Token(value, details, reusable=False)
        return value

    def redeem(self, value: str) -> Token | None:
        with self._lock:
            token = self._tokens.get(value)
            if token is not None and not token.reusable:
                del self._tokens[value]
            return token

    def peek(self, value: str) -> Token | None:
        with self._lock:
            return self._tokens.get(value)


def card_details(
    brand: str = "Visa",
    last4: str = "4242",
    exp_month: int = 12,
    exp_year: int = 2034,
    funding: str = "credit",
) -> CardDetails:
    if not (isinstance(last4, str) and len(last4) == 4 and last4.isdigit()):
        raise ValueError("last4 must be exactly four digits")
    if not 1 <= int(exp_month) <= 12:
        raise ValueError("exp_month must be between 1 and 12")
    if funding not in ("credit", "debit", "prepaid", "unknown"):
        raise ValueError("funding must be credit, debit, prepaid or unknown")
    return CardDetails(str(brand), last4, int(exp_month), int(exp_year), funding)


def bank_details(
    bank_name: str = "STRIPE TEST BANK",
    last4: str = "6789",
    routing_number: str = "110000000",
    verified: bool = True,
    currency: str = "usd",
) -> BankDetails:
    if not (isinstance(last4, str) and len(last4) == 4 and last4.isdigit()):
        raise ValueError("last4 must be exactly four digits")
    if not (isinstance(routing_number, str) and len(routing_number) == 9 and routing_number.isdigit()):
        raise ValueError("routing_number must be nine digits")
    return BankDetails(str(bank_name), last4, routing_number, bool(verified), currency.lower())
