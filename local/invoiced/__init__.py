"""A local Invoiced account: an HTTPS emulator faithful to Invoiced's API, webhooks and limits."""

from local.invoiced.emulator import InvoicedEmulator
from local.invoiced.errors import ApiError
from local.invoiced.settings import FAULT_KINDS, InvoicedSettings

__all__ = ["FAULT_KINDS", "ApiError", "InvoicedEmulator", "InvoicedSettings"]
