"""Row locks, the way Salesforce takes them.

A write locks the rows it writes and the parent rows its records point to (lookups and
master-detail) for as long as it runs - including any latency the fault plan injects. A second
write that needs a locked row waits up to ``lock_wait_ms`` and then the records that needed it
fail with UNABLE_TO_LOCK_ROW. Salesforce waits about 10 seconds; the local org's wait is short and
configurable so tests run fast.

Keys are strings: an 18-character record Id, or ``Object|Field|value`` for an external-ID value
being upserted (so two upserts of the same new key serialise).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

__all__ = ["RowLocks", "ext_key"]


def ext_key(sobject: str, field: str, value: object) -> str:
    text = value.lower() if isinstance(value, str) else str(value)
    return f"{sobject}|{field}|{text}"


class RowLocks:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owners: dict[str, object] = {}

    def acquire(self, owner: object, keys: Iterable[str], wait_seconds: float) -> tuple[set[str], set[str]]:
        """Take ``keys`` for ``owner``: (acquired, failed). Waits at most ``wait_seconds`` in all."""
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        acquired: set[str] = set()
        failed: set[str] = set()
        with self._cond:
            for key in sorted(set(keys)):
                holder = self._owners.get(key)
                while holder is not None and holder is not owner:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                    holder = self._owners.get(key)
                if holder is None:
                    self._owners[key] = owner
                    acquired.add(key)
                elif holder is owner:
                    continue
                else:
                    failed.add(key)
        return acquired, failed

    def release(self, owner: object, keys: Iterable[str]) -> None:
        with self._cond:
            for key in keys:
                if self._owners.get(key) is owner:
                    del self._owners[key]
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._owners.clear()
            self._cond.notify_all()
