"""Pure rules: who owns a record, whether a change is stale or an echo, what an error means, window math."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from billsync.domain.models import ErrorInfo, Side

Owners = Literal["all", "billing"]


class Ownership(StrEnum):
    """Which system decides a record's content.

    ORIGIN: the system where the record was created wins; the other side only receives it (Invoiced).
    BILLING: the billing system is the system of record whatever the origin (Maxio, NetSuite).
    SALESFORCE: Salesforce is the system of record (payment sources entered in Salesforce).
    """

    ORIGIN = "origin"
    BILLING = "billing"
    SALESFORCE = "salesforce"


def owner_of(ownership: Ownership, origin: Side) -> Side:
    if ownership is Ownership.BILLING:
        return Side.BILLING
    if ownership is Ownership.SALESFORCE:
        return Side.SALESFORCE
    return origin


def fields_from_billing(ownership: Ownership, origin: Side) -> Owners:
    """Which mapped fields a billing change may write to Salesforce.

    All of them when billing owns the record; otherwise only the billing-computed facts (ids, numbers,
    status, balances), which flow to Salesforce whoever owns the content.
    """
    return "all" if owner_of(ownership, origin) is Side.BILLING else "billing"


def infer_origin(
    seen_on: Side,
    *,
    billing_remembers_salesforce_id: bool = False,
    salesforce_says_billing: bool = False,
    linked: bool = False,
) -> Side:
    """The origin of a record billsync has no cross-reference for, from the side it was seen on.

    A billing record belongs to billing unless it carries the Salesforce id it was created from. A
    Salesforce record belongs to Salesforce unless it is marked as created from billing, or was linked
    to an existing billing record by typing that record's id into it.
    """
    if seen_on is Side.BILLING:
        return Side.SALESFORCE if billing_remembers_salesforce_id else Side.BILLING
    return Side.BILLING if salesforce_says_billing or linked else Side.SALESFORCE


def is_stale(incoming: datetime | None, applied: datetime | None) -> bool:
    """An incoming version strictly older than the one already applied never overwrites it."""
    return incoming is not None and applied is not None and incoming < applied


# ------------------------------------------------------------------------------------------- errors

# Salesforce's way of saying a parent named by external id does not exist (yet).
_MISSING_PARENT = re.compile(
    r"Foreign key external ID: (?P<value>.*) not found for field (?P<field>\w+) in entity (?P<entity>\w+)"
)

RETRYABLE_SALESFORCE_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "SERVER_UNAVAILABLE",
        "UNKNOWN_EXCEPTION",
        "QUERY_TIMEOUT",
        "INVALID_QUERY_LOCATOR",
        "REQUEST_LIMIT_EXCEEDED",
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "PROCESSING_HALTED",
        "CONNECTION_ERROR",
        "TIMEOUT",
        "INVALID_SESSION_ID",
    }
)

PARENT_NOT_FOUND = "PARENT_NOT_FOUND"


def classify_salesforce_error(code: str, message: str, fields: tuple[str, ...] = ()) -> ErrorInfo:
    """Turn a Salesforce error into billsync's terms: retryable, waiting for a parent, or permanent."""
    missing = _MISSING_PARENT.search(message)
    if code == "INVALID_FIELD" and missing:
        parent = f"{missing['entity']} with {missing['field']} = {missing['value']}"
        return ErrorInfo(
            code=PARENT_NOT_FOUND,
            message=f"the parent {parent} is not in Salesforce yet",
            fields=fields,
            retryable=True,
        )
    return ErrorInfo(code=code, message=message, fields=fields, retryable=code in RETRYABLE_SALESFORCE_CODES)


def is_waiting_for_parent(error: ErrorInfo) -> bool:
    return error.code == PARENT_NOT_FOUND


# ------------------------------------------------------------------------------------------- windows


@dataclass(frozen=True)
class Window:
    """A half-open pull window [start, end)."""

    start: datetime | None
    end: datetime

    def __post_init__(self) -> None:
        if self.start is not None and self.start >= self.end:
            raise ValueError(f"empty window: {self.start.isoformat()} >= {self.end.isoformat()}")


def pull_window(
    cursor: datetime | None,
    now: datetime,
    *,
    lookback: timedelta,
    safety_lag: timedelta,
    initial_since: datetime | None = None,
) -> Window | None:
    """The window a pull reads: from the cursor minus a lookback to a signpost a little before now.

    The signpost (now minus a safety lag) keeps the cursor from passing changes still being committed;
    the lookback re-reads a little of the previous window, since sources stamp times at second
    granularity. Returns None when there is nothing to read yet.
    """
    end = now - safety_lag
    start = cursor - lookback if cursor is not None else initial_since
    if start is not None and start >= end:
        return None
    return Window(start=start, end=end)


def backoff_seconds(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> int:
    """Exponential backoff with full jitter: attempt 1 waits up to `base`, doubling up to `cap`."""
    ceiling = min(cap, base * (2 ** max(attempt - 1, 0)))
    draw = (rng or random).uniform(ceiling / 2, ceiling)
    return max(1, round(draw))
