"""Masking secrets and payment data before anything is shown to a person or written outside billsync.

`redact(value)` returns a copy of a JSON-like value (dicts, lists, strings, numbers) in which
* the value of every key that names a secret (token, secret, password, api key, authorization,
  signature, session id, private key, card verification code, account number …) is replaced by
  `[masked]`, whatever its type;
* every run of 13 to 19 digits — with or without spaces or dashes between them — that passes the
  Luhn check (a payment card number) is replaced by `[card …1234]`, keeping its last four digits;
* a bearer token, and `key=value` pairs whose key names a secret, inside free text are masked too
  (error messages sometimes quote a request).
Keys are compared without case, `_` or `-`, so `gateway_token`, `X-Api-Key` and `apiKey` all match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "[masked]"

# Parts of a key name (lower case, letters and digits only) that mark its value as secret.
_SENSITIVE_NAME_PARTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "apikey",
    "authorization",
    "credential",
    "signature",
    "sessionid",
    "privatekey",
    "accesskey",
    "cvv",
    "cvc",
    "securitycode",
    "cardnumber",
    "accountnumber",
    "iban",
)
_SENSITIVE_NAMES_EXACT = frozenset({"pan", "auth", "pin", "cookie", "setcookie"})

_CARD_CANDIDATE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
# Key names are bounded (64 characters each side): unbounded runs would backtrack quadratically over
# a long word (an error message quoting a 40,000-character field).
_SENSITIVE_NAME = (
    r"(?i)(\"?[A-Za-z0-9_-]{0,64}(?:token|secret|password|passwd|api[_-]?key|signature|session[_-]?id)"
    r"[A-Za-z0-9_-]{0,64}\"?\s*[:=]\s*"
)
# A quoted value is masked whatever it is; an unquoted one when it looks like a secret: six characters
# or more with a digit, '_' or '-', or sixteen or more ("gateway_token: looks like a card number" is an
# error message about a field, not a secret).
_QUOTED_VALUE = re.compile(_SENSITIVE_NAME + r"\")([^\"]*)\"")
_BARE_VALUE = re.compile(_SENSITIVE_NAME + r")((?=[^\"&\s,;}]*[\d_-])[^\"&\s,;}<\[]{6,}|[^\"&\s,;}<\[]{16,})")


def _normal(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def is_secret_key(key: str) -> bool:
    """True when a key's name says its value is a secret or payment data."""
    normal = _normal(key)
    return normal in _SENSITIVE_NAMES_EXACT or any(part in normal for part in _SENSITIVE_NAME_PARTS)


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        number = int(char)
        if position % 2 == 1:
            number *= 2
            if number > 9:
                number -= 9
        total += number
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    if not 13 <= len(digits) <= 19 or not luhn_valid(digits):
        return text
    return f"[card …{digits[-4:]}]"


def redact_card_numbers(text: str) -> str:
    """Free text with every card number masked, and nothing else changed."""
    return _CARD_CANDIDATE.sub(_mask_card, text)


def redact_text(text: str) -> str:
    """Free text with card numbers, bearer tokens and `secret=value` pairs masked."""
    text = redact_card_numbers(text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _QUOTED_VALUE.sub(lambda m: f'{m.group(1)}{MASK}"', text)
    return _BARE_VALUE.sub(lambda m: f"{m.group(1)}{MASK}", text)


def redact(value: Any) -> Any:
    """A copy of `value` with secrets and payment data masked (see the module's description)."""
    if isinstance(value, Mapping):
        return {
            key: (
                MASK
                if isinstance(key, str) and is_secret_key(key) and item not in (None, "")
                else redact(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        masked = redact_text(str(value))
        return value if masked == str(value) else masked
    return value
