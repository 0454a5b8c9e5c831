"""The local org: schema, records, sessions, limits, faults, row locks and change events together.

`Org` owns the state every resource works on and the write pipeline they share:
`Org.write` takes the row locks a write needs (waiting at most ``lock_wait_ms``), pays the
injected latency while holding them, runs the transaction under the store lock and delivers the
Change Data Capture events of what it committed.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from local.common.faults import FaultPlan
from local.salesforce.auth import AppCredentials, Auth, UserAccount
from local.salesforce.clock import Clock
from local.salesforce.dml import Dml
from local.salesforce.events import EventLog, build_events
from local.salesforce.http import CallContext
from local.salesforce.ids import IdFactory, is_id_shaped
from local.salesforce.locks import RowLocks
from local.salesforce.schema import Schema, load_schema
from local.salesforce.settings import FAULT_KINDS, EmulatorSettings
from local.salesforce.store import Store, Txn

__all__ = ["Org", "Work"]

T = TypeVar("T")

#: Record numbers reserved for the org's standing records (users, organization, standard price book).
_RESERVED = 10**12


@dataclass
class Work:
    """One record of a write: the row-lock keys it needs; whether it could not get them."""

    keys: set[str] = field(default_factory=set)
    blocked_by: str | None = None

    @property
    def blocked(self) -> bool:
        return self.blocked_by is not None

    def lock_message(self) -> str:
        if self.blocked_by and is_id_shaped(self.blocked_by):
            return f"unable to obtain exclusive access to this record or 1 records: {self.blocked_by}"
        return "unable to obtain exclusive access to this record"


class Org:
    def __init__(self, settings: EmulatorSettings, metadata_dir: Path, key_files: tuple[Path, Path]) -> None:
        self.initial_settings = settings.copy()
        self.settings = settings.copy()
        self.on_change_event = settings.on_change_event
        # Called with the records' ids after a write commits and before its response is sent (tests
        # use it to crash a client between its Salesforce write and anything it does next).
        self.after_commit: Callable[[list[str]], None] | None = None
        # Called as a write request starts, before it takes its row locks (tests hold one write back
        # while another, concurrent one goes through).
        self.before_write: Callable[[], None] | None = None
        self.schema: Schema = load_schema(
            metadata_dir, enforce_permission_sets=settings.enforce_permission_sets
        )
        self.ids = IdFactory()
        self.clock = Clock()
        self.store = Store(self.schema)
        self.dml = Dml(self.schema, self.store, self.ids)
        self.locks = RowLocks()
        self.faults = FaultPlan(settings.faults, kinds=FAULT_KINDS)
        self.events = EventLog(settings.cdc_buffer_size)
        self.org_id = self.ids.make("00D", _RESERVED)
        self.integration_user_id = self.ids.make("005", _RESERVED)
        self.human_user_id = self.ids.make("005", _RESERVED + 1)
        self.standard_pricebook_id = self.ids.make("01s", _RESERVED)
        self.channel_id = self.ids.make("0YL", _RESERVED)
        s = settings
        self.users = [
            UserAccount(
                self.integration_user_id,
                s.username,
                s.password,
                s.security_token,
                "Billsync",
                "Integration",
                s.username,
            ),
            UserAccount(
                self.human_user_id,
                s.human_username,
                s.human_password,
                s.human_security_token,
                "Sam",
                "Sales",
                s.human_username,
            ),
        ]
        self.app_credentials = AppCredentials(
            s.consumer_key, s.consumer_secret, str(key_files[0]), str(key_files[1])
        )
        self.auth = Auth(
            org_id=self.org_id,
            users=self.users,
            app=self.app_credentials,
            integration_user_id=self.integration_user_id,
            clock=self.clock,
            lifetime=lambda: self.settings.token_lifetime_seconds,
        )
        self._stats_lock = threading.Lock()
        self.api_used = 0
        self.calls: Counter[str] = Counter()
        self.total_calls = 0
        self.lock_failures = 0
        self.hooks: list[Callable[[], None]] = []  # reset hooks of other components (cursors, bulk jobs)
        self.seed_standard_records()

    # -- lifecycle -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to a fresh org: records, sessions, limits, counts, faults, settings, clock, events."""
        self.settings = self.initial_settings.copy()
        self.faults.configure(self.settings.faults)
        self.clock.reset()
        self.auth.reset()
        self.locks.clear()
        self.store.clear()
        self.events.clear(self.settings.cdc_buffer_size)
        with self._stats_lock:
            self.api_used = 0
            self.calls.clear()
            self.total_calls = 0
            self.lock_failures = 0
        for hook in self.hooks:
            hook()
        self.seed_standard_records()

    def seed_standard_records(self) -> None:
        now = self.clock.now()
        user = self.schema.objects["user"]
        with self.store.transaction(self.integration_user_id, now) as txn:
            for account in self.users:
                self.dml.create_record(
                    txn,
                    user,
                    {
                        "Username": account.username,
                        "FirstName": account.first_name,
                        "LastName": account.last_name,
                        "Email": account.email,
                        "Alias": account.username[:8],
                        "IsActive": True,
                        "TimeZoneSidKey": "GMT",
                        "LocaleSidKey": "en_US",
                        "EmailEncodingKey": "UTF-8",
                        "LanguageLocaleKey": "en_US",
                        "UserType": "Standard",
                    },
                    checks=False,
                    record_id=account.user_id,
                )
            self.dml.create_record(
                txn,
                self.schema.objects["organization"],
                {
                    "Name": "billsync local org",
                    "IsSandbox": self.settings.is_sandbox,
                    "OrganizationType": "Developer Edition",
                    "InstanceName": "LOCAL",
                    "DefaultLocaleSidKey": "en_US",
                    "TimeZoneSidKey": "GMT",
                    "LanguageLocaleKey": "en_US",
                },
                checks=False,
                record_id=self.org_id,
            )
            self.dml.create_record(
                txn,
                self.schema.objects["pricebook2"],
                {"Name": "Standard Price Book", "IsActive": True, "IsStandard": True},
                checks=False,
                record_id=self.standard_pricebook_id,
            )
            txn.changes.clear()

    # -- accounting ------------------------------------------------------------------------------

    def count_call(self, key: str) -> None:
        with self._stats_lock:
            self.calls[key] += 1
            self.total_calls += 1

    def spend_api(self, n: int = 1) -> bool:
        """Count ``n`` API requests against the daily budget; False when the budget is spent."""
        with self._stats_lock:
            if self.api_used >= self.settings.daily_api_limit:
                return False
            self.api_used += n
            return True

    def limit_info(self) -> str:
        return f"api-usage={self.api_used}/{self.settings.daily_api_limit}"

    def stats(self) -> dict[str, Any]:
        with self._stats_lock:
            return {
                "calls": dict(sorted(self.calls.items())),
                "total": self.total_calls,
                "api_usage": {"used": self.api_used, "max": self.settings.daily_api_limit},
                "faults_injected": dict(self.faults.injected),
                "lock_failures": self.lock_failures,
            }

    def reset_calls(self) -> None:
        with self._stats_lock:
            self.calls.clear()
            self.total_calls = 0
            self.lock_failures = 0

    # -- writes ----------------------------------------------------------------------------------

    def latency(self, ctx: CallContext, records: int) -> None:
        if ctx.latency_due:
            ctx.latency_due = False
            self.faults.sleep(records)

    def write(
        self,
        ctx: CallContext,
        works: Iterable[Work],
        body: Callable[[Txn], T],
        *,
        records: int | None = None,
        api: str | None = None,
    ) -> T:
        """Lock, pay latency, run ``body`` in a transaction, deliver change events, unlock."""
        works = list(works)
        if ctx.txn is not None:
            # a subrequest of /composite: the composite took the locks and owns the transaction
            return body(ctx.txn)
        hold = self.before_write
        if hold is not None:
            hold()
        owner = object()
        keys: set[str] = set()
        for work in works:
            keys |= work.keys
        acquired: set[str] = set()
        if keys:
            acquired, failed = self.locks.acquire(owner, keys, self.settings.lock_wait_ms / 1000.0)
            if failed:
                blocked = 0
                for work in works:
                    hit = work.keys & failed
                    if hit:
                        work.blocked_by = min(hit)
                        blocked += 1
                with self._stats_lock:
                    self.lock_failures += blocked
        try:
            self.latency(ctx, len(works) if records is None else records)
            origin = f"com/salesforce/api/{api}/{ctx.version}" if api else ctx.change_origin
            if api and ctx.client_name:
                origin += f";client={ctx.client_name}"
            return self.transact(ctx.session.user_id, origin, body)
        finally:
            if acquired:
                self.locks.release(owner, acquired)

    def transact(self, user_id: str, origin: str, body: Callable[[Txn], T]) -> T:
        """Run ``body`` in one transaction and deliver its change events once committed."""
        with self.store.transaction(user_id, self.clock.now(), origin) as txn:
            result = body(txn)
            changes = [] if txn.rolled_back else list(txn.changes)
        hook = self.after_commit
        if hook is not None and changes:
            hook([change.record_id for change in changes])
        if changes and self.settings.cdc_enabled:
            envelopes = build_events(
                changes,
                org_id=self.org_id,
                user_id=user_id,
                origin=origin,
                encoding=self.settings.cdc_date_encoding,
                now=txn.now,
                account=self.settings.aws_account_id,
                region=self.settings.aws_region,
                channel_id=self.channel_id,
                commit_number=self.events.next_commit_number(),
            )
            self.events.deliver(envelopes, self.on_change_event)
        return result
