"""A local Salesforce org: an HTTPS emulator real Salesforce clients cannot tell apart.

Start one with `SalesforceEmulator` (in-process) or ``billsync local salesforce`` (on its own);
see ``local/salesforce/README.md``.
"""

from local.salesforce.emulator import SalesforceEmulator
from local.salesforce.settings import EmulatorSettings

__all__ = ["EmulatorSettings", "SalesforceEmulator"]
