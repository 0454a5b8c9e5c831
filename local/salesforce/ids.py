"""Salesforce record Ids: key prefixes, the 18-character checksum, and an Id factory.

An Id is 15 case-sensitive base-62 characters - a 3-character key prefix naming the object, a
2-character pod identifier, a reserved character and a 9-character record number - plus, in its
18-character form, a 3-character checksum that encodes the case of the first 15 characters so the
Id can be compared case-insensitively. APIs accept both forms and always return 18 characters.
"""

from __future__ import annotations

import threading

__all__ = ["BASE62", "IdFactory", "canonical_id", "is_id_shaped", "to18"]

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_CHARS = frozenset(BASE62)
_POD = "5f"


def to18(id15: str) -> str:
    """The 18-character form of a 15-character Id."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for position in range(5):
            if "A" <= id15[chunk * 5 + position] <= "Z":
                bits |= 1 << position
        suffix += _SUFFIX[bits]
    return id15 + suffix


def is_id_shaped(value: str) -> bool:
    """Whether ``value`` has the length and alphabet of an Id (its checksum is not checked)."""
    return len(value) in (15, 18) and all(ch in _ID_CHARS for ch in value)


def canonical_id(value: str) -> str | None:
    """The canonical 18-character Id for a 15-character Id or an 18-character Id in any case.

    Returns None when ``value`` is not a well-formed Id. The suffix of an 18-character Id encodes
    the case of its body, so ``001d000000iqhsliaz`` becomes ``001D000000IqhSLIAZ``.
    """
    if len(value) == 15:
        return to18(value) if all(ch in _ID_CHARS for ch in value) else None
    if len(value) != 18 or not all(ch in _ID_CHARS for ch in value):
        return None
    suffix = value[15:].upper()
    body: list[str] = []
    for chunk in range(3):
        bits = _SUFFIX.find(suffix[chunk])
        if bits < 0:
            return None
        for position in range(5):
            ch = value[chunk * 5 + position]
            upper = bool(bits & (1 << position))
            if ch.isdigit():
                if upper:
                    return None
                body.append(ch)
            else:
                body.append(ch.upper() if upper else ch.lower())
    return "".join(body) + suffix


def _base62(number: int, width: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
    return digits.rjust(width, "0")


class IdFactory:
    """Issues new 18-character Ids per key prefix, thread-safely.

    Record numbers are spread over the base-62 range so Ids mix digits and both cases the way
    real ones do; they never repeat within one factory.
    """

    _STRIDE = 7_919_104_729  # coprime with 62**9, so numbers never collide

    def __init__(self, pod: str = _POD, start: int = 1) -> None:
        if len(pod) != 2 or any(ch not in _ID_CHARS for ch in pod):
            raise ValueError(f"pod must be 2 base-62 characters, got {pod!r}")
        self._pod = pod
        self._counters: dict[str, int] = {}
        self._start = start
        self._lock = threading.Lock()

    def new_id(self, prefix: str) -> str:
        with self._lock:
            number = self._counters.get(prefix, self._start)
            self._counters[prefix] = number + 1
        return self.make(prefix, number)

    def make(self, prefix: str, number: int) -> str:
        """The Id with record number ``number`` (deterministic; does not consume a number)."""
        salt = sum(BASE62.index(ch) * 62**i for i, ch in enumerate(prefix) if ch in _ID_CHARS) * 104_729
        spread = (62**8 + salt + number * self._STRIDE) % (62**9)
        return to18(prefix + self._pod + "0" + _base62(spread, 9))
