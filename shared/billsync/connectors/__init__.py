"""Billing-system connectors, one package each, all on the contract in `billsync.connectors.base`.

Adding a billing system is a new package plus one line here; the engine does not change.
"""

from __future__ import annotations

from importlib import import_module

from billsync.connectors.base import BillingConnector, ConnectorContext

_REGISTRY: dict[str, str] = {
    "invoiced": "billsync.connectors.invoiced",
}


def connector_names() -> list[str]:
    return sorted(_REGISTRY)


def build_connector(name: str, context: ConnectorContext) -> BillingConnector:
    """Build the connector `name` for one source (imported lazily: handlers only load what they use)."""
    try:
        module = import_module(_REGISTRY[name])
    except KeyError:
        raise ValueError(f"unknown connector {name!r}; known: {', '.join(connector_names())}") from None
    connector: BillingConnector = module.build(context)
    return connector
