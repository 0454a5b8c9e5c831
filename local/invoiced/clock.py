"""The account's clocks: Invoiced's wall clock and the compressed clock webhook retries run on.

`now()` is real time plus any offset added with `advance()`; it stamps objects and events.
`webhook_now()` runs `scale` times faster than real time (plus the same offset), so the hourly retry
schedule of a failing webhook can be played out in fractions of a second.
"""

from __future__ import annotations

import threading
import time


class Clock:
    def __init__(self, scale: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._scale = scale
        self._anchor_real = time.monotonic()
        self._anchor_webhook = time.time()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def webhook_now(self) -> float:
        with self._lock:
            return self._webhook_now_locked()

    def _webhook_now_locked(self) -> float:
        elapsed = time.monotonic() - self._anchor_real
        return self._anchor_webhook + elapsed * self._scale + self._offset

    @property
    def scale(self) -> float:
        return self._scale

    @property
    def offset(self) -> float:
        return self._offset

    def set_scale(self, scale: float) -> None:
        """Change the compression without a jump: webhook time continues from where it is."""
        with self._lock:
            current = self._webhook_now_locked() - self._offset
            self._anchor_real = time.monotonic()
            self._anchor_webhook = current
            self._scale = scale

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds

    def real_seconds_until(self, webhook_time: float) -> float:
        """Real seconds until the webhook clock reaches `webhook_time` (0 when already there)."""
        with self._lock:
            return max(0.0, (webhook_time - self._webhook_now_locked()) / self._scale)

    def reset(self, scale: float) -> None:
        with self._lock:
            self._offset = 0.0
            self._scale = scale
            self._anchor_real = time.monotonic()
            self._anchor_webhook = time.time()
