"""The org's clock: UTC with millisecond precision, movable at run time for tests."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

__all__ = ["Clock"]


class Clock:
    """``now()`` is wall-clock UTC shifted by an offset, or a frozen instant.

    Moving the clock lets tests expire tokens and query locators, or age records into and out of
    the getUpdated / getDeleted windows, without sleeping.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._frozen: datetime | None = None

    def now(self) -> datetime:
        frozen = self._frozen
        moment = frozen if frozen is not None else datetime.now(UTC) + self._offset
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)

    def timestamp(self) -> float:
        return self.now().timestamp()

    def set(
        self, *, now: datetime | None = None, advance_seconds: float = 0.0, frozen: bool | None = None
    ) -> None:
        """Jump to ``now``, move by ``advance_seconds``, and/or freeze or release the clock."""
        with self._lock:
            if now is not None:
                if now.tzinfo is None:
                    raise ValueError("the clock needs an aware datetime")
                if self._frozen is not None:
                    self._frozen = now.astimezone(UTC)
                else:
                    self._offset = now.astimezone(UTC) - datetime.now(UTC)
            if advance_seconds:
                if self._frozen is not None:
                    self._frozen += timedelta(seconds=advance_seconds)
                else:
                    self._offset += timedelta(seconds=advance_seconds)
            if frozen is True and self._frozen is None:
                self._frozen = datetime.now(UTC) + self._offset
            elif frozen is False and self._frozen is not None:
                self._offset = self._frozen - datetime.now(UTC)
                self._frozen = None

    def reset(self) -> None:
        with self._lock:
            self._offset = timedelta(0)
            self._frozen = None

    def describe(self) -> dict[str, object]:
        return {
            "now": self.now().isoformat().replace("+00:00", "Z"),
            "frozen": self._frozen is not None,
            "offset_seconds": self._offset.total_seconds(),
        }
