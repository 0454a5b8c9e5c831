"""Card numbers never leave billsync in an error, a dead letter or the sync log.

Salesforce and billing APIs echo the refused value in some error messages (`data value too large:
<value>`); a customer may have typed a card number into a free-text field. Every digit run that
could be a payment card number (13 to 19 digits, spaces or dashes allowed between them, passing
the Luhn check) is replaced before such a message is kept anywhere.
"""

from __future__ import annotations

import re

CARD_NUMBER_REMOVED = "[card number removed]"
_CANDIDATE = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def redact_card_numbers(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", match.group(0))
        return CARD_NUMBER_REMOVED if luhn_valid(digits) else match.group(0)

    return _CANDIDATE.sub(replace, text)
