"""The composition root: builds the real adapters from the environment, once per process, lazily.

Environment (set by template.yaml): BILLSYNC_CONFIG (the configuration file), STATE_TABLE,
IDEMPOTENCY_TABLE (webhook function), QUEUE_URL_<OBJECT> / DLQ_URL_<OBJECT>, MAX_RECEIVE_COUNT.
Only names of secrets travel in the environment, never their values.
"""

from __future__ import annotations

import os
from functools import cache

from billsync.aws.queues import SqsQueues
from billsync.aws.secrets import SecretsReader
from billsync.aws.state import DynamoState
from billsync.config import Config, load_config
from billsync.connectors import build_connector
from billsync.connectors.base import BillingConnector, ConnectorContext
from billsync.mappings import MappingSet
from billsync.salesforce.auth import SalesforceCredentials
from billsync.salesforce.gateway import SalesforceGateway
from billsync.usecases.context import SyncContext


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"the function's environment lacks {name}")
    return value


@cache
def config() -> Config:
    return load_config(_env("BILLSYNC_CONFIG"))


@cache
def secrets() -> SecretsReader:
    return SecretsReader()


@cache
def queues() -> SqsQueues:
    return SqsQueues()


def max_receive_count() -> int:
    return int(os.environ.get("MAX_RECEIVE_COUNT", "5"))


@cache
def salesforce() -> SalesforceGateway:
    settings = config().salesforce
    return SalesforceGateway(
        SalesforceCredentials.from_secret(secrets().get_json(settings.secret)),
        api_version=settings.api_version,
        ca_file=settings.tls_ca_file,
        timeout=settings.timeout_seconds,
        client_name=settings.client_name,
        reserve_percent=settings.api_budget_reserve_percent,
        pinned_org_id=settings.org_id,
        bulk_threshold=settings.bulk_threshold,
    )


@cache
def sync_context() -> SyncContext:
    cfg = config()
    return SyncContext(
        config=cfg,
        state=DynamoState(_env("STATE_TABLE"), log_ttl_days=cfg.sync.log_retention_days),
        salesforce=salesforce(),
        secrets=secrets(),
        mappings=MappingSet(cfg.mappings_path),
    )


@cache
def webhook_connector(source_key: str) -> BillingConnector:
    """A connector for verifying and parsing webhooks (it never needs Salesforce)."""
    source = config().source(source_key)
    context = ConnectorContext(
        source_key=source.key,
        settings=source.settings,
        secret=secrets().get_json(source.secret),
        ca_file=source.tls_ca_file,
    )
    return build_connector(source.connector, context)
