"""Run-time settings of the local Invoiced account."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from local.common.faults import FaultSettings

# Faults the emulator can inject into API calls (never into the control API).
FAULT_KINDS: tuple[str, ...] = (
    "rate_limited",  # 429 rate_limit_error, on top of the real concurrency limiter
    "server_error",  # 500 api_error with a correlation id, nothing is written
    "bad_gateway_html",  # 502 with a proxy's HTML page, nothing is written
    "bad_gateway_empty",  # 502 with an empty body, nothing is written
    "unavailable_html",  # 503 with a proxy's HTML page, nothing is written
    "unavailable_empty",  # 503 with an empty body, nothing is written
    "connection_drop",  # the request is processed, then the connection is closed without a response
)

DeliveryMode = Literal["background", "manual"]


@dataclass
class InvoicedSettings:
    """What a test or the local stack may tune; the defaults are Invoiced's own values.

    `webhook_clock_scale` compresses Invoiced's webhook clock: 36000 makes the hourly retry
    interval pass in 0.1 s of real time. The clock can also be moved by hand (`advance_clock`).
    """

    concurrency_limit: int = 20
    webhook_clock_scale: float = 1.0
    webhook_delivery: DeliveryMode = "background"
    webhook_timeout_s: float = 30.0
    webhook_connect_timeout_s: float = 10.0
    duplicate_delivery_rate: float = 0.0
    out_of_order_rate: float = 0.0
    webhook_seed: int = 0
    faults: FaultSettings = field(default_factory=FaultSettings)
    api_key: str | None = None
    sandbox_api_key: str | None = None
    currency: str = "usd"

    def validate(self) -> None:
        if self.concurrency_limit < 1:
            raise ValueError("concurrency_limit must be at least 1")
        if self.webhook_clock_scale <= 0:
            raise ValueError("webhook_clock_scale must be positive")
        if self.webhook_delivery not in ("background", "manual"):
            raise ValueError("webhook_delivery must be 'background' or 'manual'")
        if self.webhook_timeout_s <= 0 or self.webhook_connect_timeout_s <= 0:
            raise ValueError("webhook timeouts must be positive")
        for name in ("duplicate_delivery_rate", "out_of_order_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["faults"] = self.faults.to_json()
        data.pop("api_key")
        data.pop("sandbox_api_key")
        return data

    def updated(self, changes: dict[str, Any]) -> InvoicedSettings:
        """A copy with `changes` applied (the control API's PATCH); keys and faults cannot change here."""
        allowed = {f.name for f in fields(self)} - {"faults", "api_key", "sandbox_api_key", "currency"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}; known: {sorted(allowed)}")
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(changes)
        result = InvoicedSettings(**data)
        result.validate()
        return result
