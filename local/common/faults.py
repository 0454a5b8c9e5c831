"""Seeded, reproducible fault injection shared by the emulators.

A `FaultPlan` holds a latency model (a fixed cost per request plus a cost per record) and error
rates by kind. Each emulator names its own kinds (for Salesforce: SERVER_UNAVAILABLE,
UNABLE_TO_LOCK_ROW, ...) and asks the plan, once per request, which fault (if any) to inject.
The same seed and the same sequence of requests give the same faults.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FaultSettings:
    seed: int = 0
    latency_ms: float = 0.0
    latency_per_record_ms: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)  # kind -> probability in [0, 1]
    every: dict[str, int] = field(default_factory=dict)  # kind -> inject on every Nth eligible request
    bursts: dict[str, int] = field(default_factory=dict)  # kind -> inject on the next N eligible requests

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "latency_ms": self.latency_ms,
            "latency_per_record_ms": self.latency_per_record_ms,
            "rates": dict(self.rates),
            "every": dict(self.every),
            "bursts": dict(self.bursts),
        }


class FaultPlan:
    """Thread-safe decisions over `FaultSettings`; counts what it injected."""

    def __init__(self, settings: FaultSettings | None = None, kinds: tuple[str, ...] = ()) -> None:
        self._lock = threading.Lock()
        self.kinds = kinds
        self.configure(settings or FaultSettings())

    def configure(self, settings: FaultSettings) -> None:
        unknown = set(settings.rates) | set(settings.every) | set(settings.bursts)
        unknown -= set(self.kinds)
        if self.kinds and unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}; known: {list(self.kinds)}")
        for kind, rate in settings.rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate for {kind} must be between 0 and 1, got {rate}")
        with self._lock:
            self.settings = settings
            self._rng = random.Random(settings.seed)
            self._counters: dict[str, int] = {}
            self._bursts = dict(settings.bursts)
            self.injected: dict[str, int] = {}

    def update(self, changes: dict[str, Any]) -> FaultSettings:
        """Apply a partial update (the control API's PATCH) and return the new settings."""
        data = self.settings.to_json()
        for key, value in changes.items():
            if key not in data:
                raise ValueError(f"unknown fault setting: {key}")
            data[key] = value
        settings = FaultSettings(**data)
        self.configure(settings)
        return settings

    def latency_seconds(self, records: int = 1) -> float:
        s = self.settings
        return (s.latency_ms + s.latency_per_record_ms * max(records, 0)) / 1000.0

    def sleep(self, records: int = 1) -> None:
        delay = self.latency_seconds(records)
        if delay > 0:
            time.sleep(delay)

    def draw(self, eligible: tuple[str, ...]) -> str | None:
        """Pick at most one fault among `eligible` kinds for this request."""
        with self._lock:
            for kind in eligible:
                if self._bursts.get(kind, 0) > 0:
                    self._bursts[kind] -= 1
                    return self._count(kind)
            for kind in eligible:
                n = self.settings.every.get(kind)
                if n:
                    self._counters[kind] = self._counters.get(kind, 0) + 1
                    if self._counters[kind] % n == 0:
                        return self._count(kind)
            for kind in eligible:
                rate = self.settings.rates.get(kind, 0.0)
                if rate and self._rng.random() < rate:
                    return self._count(kind)
        return None

    def _count(self, kind: str) -> str:
        self.injected[kind] = self.injected.get(kind, 0) + 1
        return kind
