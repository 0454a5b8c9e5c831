"""What travels on the wire: JSON with exact money values, and PHP-style bracket parameters.

Invoiced runs on PHP, so query strings and form bodies use bracket notation
(`filter[customer]=12`, `items[0][name]=Paper`, `tags[]=a`) and numbers in them arrive as strings.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

_KEY_PART = re.compile(r"\[([^\[\]]*)\]")
_LEADING_INT = re.compile(r"^\s*([+-]?\d+)")


def plain(value: Any) -> Any:
    """Replace Decimals by JSON numbers: whole amounts as integers, others as their exact decimal."""
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return int(value)
        # Amounts are kept at currency precision, so the shortest float repr is the decimal itself.
        return float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def dumps(value: Any) -> bytes:
    return json.dumps(plain(value), separators=(",", ":"), ensure_ascii=False).encode()


def php_int(value: Any) -> int:
    """PHP's `(int)` cast of a request value: leading digits, else 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        match = _LEADING_INT.match(value)
        return int(match.group(1)) if match else 0
    return 0


def parse_pairs(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Build nested parameters from `key[sub][]=value` pairs, as PHP's parse_str does."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        bracket = raw_key.find("[")
        if bracket <= 0:
            root[raw_key] = value
            continue
        parts = [raw_key[:bracket], *_KEY_PART.findall(raw_key[bracket:])]
        node: dict[str, Any] = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            key = part if part != "" else str(_next_index(node))
            if last:
                node[key] = value
            else:
                child = node.get(key)
                if not isinstance(child, dict):
                    child = {}
                    node[key] = child
                node = child
    result: dict[str, Any] = _listify(root)
    return result


def parse_query(query_string: str) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    pairs = parse_qsl(query_string, keep_blank_values=True)
    return pairs, parse_pairs(pairs)


def parse_form(body: str) -> dict[str, Any]:
    return parse_pairs(parse_qsl(body, keep_blank_values=True))


def _next_index(node: dict[str, Any]) -> int:
    numeric = [int(k) for k in node if k.isdigit()]
    return max(numeric) + 1 if numeric else 0


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        converted = {k: _listify(v) for k, v in value.items()}
        if converted and all(k.isdigit() for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    return value
