"""API routes bound to function events, API Gateway's route matching, and its throttling token bucket."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Literal


class TokenBucket:
    """API Gateway's throttling: ``burst`` requests at once, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False

    def reset(self) -> None:
        with self._lock:
            self._tokens = float(self.burst)
            self._updated = time.monotonic()


@dataclass
class Route:
    """One route of one API, bound to a function event."""

    api_logical_id: str
    api_id: str
    kind: Literal["http", "rest"]
    function_id: str
    event_name: str
    method: str
    path: str
    payload_version: Literal["1.0", "2.0"]
    iam_auth: bool
    stage: str
    throttle: TokenBucket | None = None
    binary_media_types: tuple[str, ...] = ()
    _pattern: re.Pattern[str] = field(init=False, repr=False)
    _names: list[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        if self.method in ("*", "X-AMAZON-APIGATEWAY-ANY-METHOD"):
            self.method = "ANY"
        self._names = []
        parts = []
        segments = [] if self.is_default else self.path.strip("/").split("/")
        for index, segment in enumerate(segments):
            variable = re.fullmatch(r"\{([^{}]+?)(\+?)\}", segment)
            if variable is None:
                parts.append(re.escape(segment))
                continue
            if variable.group(2) and index != len(segments) - 1:
                raise ValueError(f"greedy path variable must be last: {self.path}")
            self._names.append(variable.group(1))
            group = f"(?P<v{len(self._names) - 1}>{'.+' if variable.group(2) else '[^/]+'})"
            parts.append(group)
        self._pattern = re.compile("/" + "/".join(parts) + "/?" if parts else "/?")

    @property
    def is_default(self) -> bool:
        return self.path == "$default"

    @property
    def route_key(self) -> str:
        return "$default" if self.is_default else f"{self.method} {self.path}"

    @property
    def greedy(self) -> bool:
        return self.path.endswith("+}")

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in ("ANY", method):
            return None
        if self.is_default:
            return {}
        found = self._pattern.fullmatch(path)
        if found is None:
            return None
        return {name: found.group(f"v{index}") for index, name in enumerate(self._names)}

    def rank(self) -> tuple[int, int, int, int]:
        """Lower ranks win: exact paths before greedy ones, specific methods before ANY."""
        literals = sum(1 for segment in self.path.split("/") if segment and not segment.startswith("{"))
        return (int(self.is_default), int(self.greedy), -literals, int(self.method == "ANY"))
