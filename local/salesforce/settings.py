"""Settings of the local org: limits, token lifetime, paging, faults, row locks, change events."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from local.common.faults import FaultSettings

__all__ = ["FAULT_KINDS", "RUNTIME_SETTINGS", "EmulatorSettings"]

#: Fault kinds the local org can inject (see ``local.common.faults``).
FAULT_KINDS = (
    "SERVER_UNAVAILABLE",
    "UNABLE_TO_LOCK_ROW",
    "REQUEST_LIMIT_EXCEEDED",
    "INVALID_SESSION_ID",
    "DROPPED_CONNECTION",
)

#: Settings the control API may change while the org runs.
RUNTIME_SETTINGS = (
    "daily_api_limit",
    "token_lifetime_seconds",
    "default_query_batch_size",
    "query_locator_ttl_seconds",
    "max_open_query_locators",
    "lock_wait_ms",
    "cdc_enabled",
    "cdc_date_encoding",
    "bulk_chunk_size",
    "bulk_lock_retries",
)


@dataclass
class EmulatorSettings:
    """Everything tunable about the local org. Defaults suit tests: a budget that never runs out."""

    daily_api_limit: int = 5_000_000
    token_lifetime_seconds: float = 7200.0
    default_query_batch_size: int = 2000
    query_locator_ttl_seconds: float = 900.0
    max_open_query_locators: int = 10
    faults: FaultSettings = field(default_factory=FaultSettings)
    lock_wait_ms: float = 200.0
    cdc_enabled: bool = False
    cdc_date_encoding: Literal["iso", "epoch_ms"] = "iso"
    cdc_buffer_size: int = 10_000
    on_change_event: Callable[[dict[str, Any]], None] | None = None
    api_versions: tuple[str, ...] = tuple(f"{v}.0" for v in range(52, 63))
    bulk_chunk_size: int = 200
    bulk_lock_retries: int = 3
    enforce_permission_sets: bool = True
    is_sandbox: bool = True
    aws_account_id: str = "123456789012"
    aws_region: str = "us-east-1"
    # credentials of the local org (fixed so a standalone org keeps them across restarts)
    consumer_key: str = "3MVG9billsync.local.connected.app.consumer.key.0000000000000000000000000000"
    consumer_secret: str = "B1LLSYNC0L0CAL0SECRET00000000000000000000000000000000000000000000"
    username: str = "integration@billsync.local"
    password: str = "local-Passw0rd"
    security_token: str = "L0calSecur1tyT0ken00"
    human_username: str = "sam.sales@billsync.local"
    human_password: str = "human-Passw0rd"
    human_security_token: str = "HumanSecur1tyT0ken00"

    def __post_init__(self) -> None:
        if self.cdc_date_encoding not in ("iso", "epoch_ms"):
            raise ValueError("cdc_date_encoding must be 'iso' or 'epoch_ms'")
        if not 200 <= self.default_query_batch_size <= 2000:
            raise ValueError("default_query_batch_size must be between 200 and 2000")

    def copy(self) -> EmulatorSettings:
        faults = FaultSettings(**self.faults.to_json())
        return dataclasses.replace(self, faults=faults)

    def runtime_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in RUNTIME_SETTINGS}

    def apply(self, changes: dict[str, Any]) -> None:
        """Change runtime settings (the control API's PATCH); unknown or invalid values raise ValueError."""
        unknown = set(changes) - set(RUNTIME_SETTINGS)
        if unknown:
            raise ValueError(
                f"unknown or fixed settings: {sorted(unknown)}; changeable: {list(RUNTIME_SETTINGS)}"
            )
        coerced: dict[str, Any] = {}
        for name, value in changes.items():
            current = getattr(self, name)
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false")
                coerced[name] = value
            elif isinstance(current, (int, float)):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"{name} must be a non-negative number")
                coerced[name] = type(current)(value)
            else:
                coerced[name] = value
        candidate = dataclasses.replace(self, **coerced)
        for name in RUNTIME_SETTINGS:
            setattr(self, name, getattr(candidate, name))
