"""billsync: keeps a billing system and Salesforce in sync."""

__version__ = "0.1.0"
