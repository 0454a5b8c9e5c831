"""What a use case works with: configuration, ports, connectors and mappings, built once per process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from billsync.config import Config, SourceSettings
from billsync.connectors import build_connector
from billsync.connectors.base import BillingConnector, ConnectorContext, ObjectSupport
from billsync.mappings import MappingSet
from billsync.ports import SalesforcePort, SecretsPort, StatePort


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SyncContext:
    config: Config
    state: StatePort
    salesforce: SalesforcePort
    secrets: SecretsPort
    mappings: MappingSet
    clock: Callable[[], datetime] = _now
    _connectors: dict[str, BillingConnector] = field(default_factory=dict)

    def connector(self, source_key: str) -> BillingConnector:
        if source_key not in self._connectors:
            source = self.config.source(source_key)
            self._connectors[source_key] = build_connector(source.connector, self.connector_context(source))
        return self._connectors[source_key]

    def connector_context(self, source: SourceSettings) -> ConnectorContext:
        return ConnectorContext(
            source_key=source.key,
            settings=source.settings,
            secret=self.secrets.get_json(source.secret),
            ca_file=source.tls_ca_file,
        )

    def support(self, source_key: str, object_name: str) -> ObjectSupport | None:
        return self.connector(source_key).objects.get(object_name)

    def sources_syncing(self, object_name: str) -> list[SourceSettings]:
        """The sources whose connector syncs `object_name` (connectors are built lazily on first use)."""
        return [s for s in self.config.sources if self.support(s.key, object_name) is not None]
