"""Invoiced (invoiced.com): customers, contacts, invoices, notes and the rest of its Salesforce data flow."""

from __future__ import annotations

from billsync.connectors.base import ConnectorContext
from billsync.connectors.invoiced.connector import InvoicedConnector


def build(context: ConnectorContext) -> InvoicedConnector:
    return InvoicedConnector(context)
