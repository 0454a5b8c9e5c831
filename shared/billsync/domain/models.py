"""Canonical models: what every connector produces and what the engine moves around.

Money is `Decimal` and time is aware UTC throughout. Vendor payloads keep their own shape inside
`SourceRecord.data`; the mapping engine reads them with the connector's preset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from billsync.domain.redaction import redact_card_numbers


class Side(StrEnum):
    BILLING = "billing"
    SALESFORCE = "salesforce"


class Direction(StrEnum):
    """Which way a change travels."""

    TO_SALESFORCE = "to_salesforce"
    TO_BILLING = "to_billing"

    @property
    def source_side(self) -> Side:
        return Side.BILLING if self is Direction.TO_SALESFORCE else Side.SALESFORCE

    @property
    def target_side(self) -> Side:
        return Side.SALESFORCE if self is Direction.TO_SALESFORCE else Side.BILLING


class RecordState(StrEnum):
    ACTIVE = "active"
    VOIDED = "voided"
    DELETED = "deleted"


def utc(dt: datetime) -> datetime:
    """The same instant in UTC; naive datetimes are refused."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime: billsync only handles aware times")
    return dt.astimezone(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceRecord(_Model):
    """One record as the billing system has it, with what the engine needs to know about it."""

    object: str
    id: str
    version: AwareDatetime  # the billing system's last-modified time
    state: RecordState = RecordState.ACTIVE
    data: dict[str, Any] = Field(default_factory=dict)
    # The Salesforce id the billing system remembers for this record (a record created from Salesforce).
    salesforce_id: str | None = None
    # Billing ids of the parents this record hangs off, by object name: {"customer": "3100"}.
    parents: dict[str, str] = Field(default_factory=dict)

    @field_validator("version")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return utc(value)


class Change(_Model):
    """A change to apply, as it travels through an object's queue.

    A change either carries the record (`record`, the payload of a webhook) or only its reference, in
    which case the worker re-reads the latest state from its side. References are what travels for
    sensitive objects and for redriven changes whose payload was dropped.
    """

    v: Literal[1] = 1
    source: str
    object: str
    direction: Direction
    id: str  # billing id (to_salesforce) or Salesforce id (to_billing)
    parent: str | None = None  # billing id of the parent, where the billing API needs it to read the record
    version: AwareDatetime | None = None
    deleted: bool = False
    record: dict[str, Any] | None = None
    event_id: str | None = None
    cause: Literal["webhook", "pull", "retry", "redrive", "sync_now", "backfill", "reassert"] = "webhook"

    @property
    def key(self) -> str:
        side = "B" if self.direction is Direction.TO_SALESFORCE else "S"
        return f"{self.source}:{self.object}:{side}:{self.id}"


class ErrorInfo(_Model):
    """Why a record could not be synced, in terms an operator can act on."""

    code: str
    message: str
    fields: tuple[str, ...] = ()
    retryable: bool = False

    @field_validator("message")
    @classmethod
    def _no_card_numbers(cls, value: str) -> str:
        return redact_card_numbers(value)


class Outcome(StrEnum):
    APPLIED = "applied"
    SKIPPED_STALE = "skipped_stale"
    SKIPPED_UNCHANGED = "skipped_unchanged"
    SKIPPED_NOT_OWNED = "skipped_not_owned"
    SKIPPED_DISABLED = "skipped_disabled"
    WAITING_FOR_PARENT = "waiting_for_parent"
    FAILED = "failed"


class RecordResult(_Model):
    """What happened to one change."""

    change_key: str
    outcome: Outcome
    error: ErrorInfo | None = None
    salesforce_id: str | None = None
    billing_id: str | None = None
    detail: str | None = None
    # False for billsync's own writes seen again on a pull: nobody changed anything, nothing to log.
    logged: bool = True

    @property
    def retry(self) -> bool:
        """The change should come back later (a transient error or a parent not there yet)."""
        if self.outcome is Outcome.WAITING_FOR_PARENT:
            return True
        return self.outcome is Outcome.FAILED and self.error is not None and self.error.retryable


class DeadLetter(_Model):
    """The message billsync writes to an object's DLQ: the change, why it failed, how often it was tried.

    The change travels as its reference, without the record's data: a DLQ holds no customer data, and
    a redriven change reads the record's latest state (a record gone since then counts as deleted).
    """

    v: Literal[1] = 1
    change: Change
    error: ErrorInfo
    attempts: int
    first_seen_at: AwareDatetime | None = None
    failed_at: AwareDatetime
    # The queue message that failed (none on a pull): its repeated deliveries leave one dead letter.
    message_id: str | None = None

    @field_validator("change")
    @classmethod
    def _reference_only(cls, value: Change) -> Change:
        return value.model_copy(update={"record": None}) if value.record is not None else value


class SyncLogEntry(_Model):
    """One record's outcome, kept in the sync log with a time to live."""

    at: AwareDatetime
    source: str
    object: str
    direction: Direction
    record_id: str
    outcome: Outcome
    salesforce_id: str | None = None
    billing_id: str | None = None
    code: str | None = None
    message: str | None = None
    attempts: int = 1
    cause: str | None = None

    @field_validator("message")
    @classmethod
    def _no_card_numbers(cls, value: str | None) -> str | None:
        return redact_card_numbers(value) if value is not None else None


class XrefState(BaseModel):
    """The cross-reference of one record across the two systems, and what was last synced.

    `rev` is the optimistic-concurrency counter: every write names the revision it read.
    """

    model_config = ConfigDict(extra="forbid")

    source: str
    object: str
    billing_id: str | None = None
    salesforce_id: str | None = None
    origin: Side | None = None
    billing_version: datetime | None = None  # source version last applied from billing
    salesforce_version: datetime | None = None  # SystemModstamp last seen from Salesforce
    # Fingerprints of what was last synced, by purpose (see billsync.usecases.apply):
    #   sf_written  - everything billsync wrote to Salesforce (fields and children)
    #   sf_fields   - the record's own fields billsync wrote to Salesforce (echo detection on pulls)
    #   sf_source   - the Salesforce values billsync last pushed to billing
    #   billing_written - the billing system's copy of what billsync pushed (edits there are detected)
    fingerprints: dict[str, str] = Field(default_factory=dict)
    children: dict[str, dict[str, str]] = Field(
        default_factory=dict
    )  # collection -> child billing id -> sf id
    deleted: bool = False
    # The version (billing updated_at, or Salesforce SystemModstamp) whose permanent failure was
    # dead-lettered: re-reads of that same version are not dead-lettered again.
    failed_version: datetime | None = None
    rev: int = 0


class Checkpoint(_Model):
    source: str
    object: str
    direction: Direction
    cursor: AwareDatetime | None = None
    rev: int = 0
    last_synced_at: AwareDatetime | None = None
