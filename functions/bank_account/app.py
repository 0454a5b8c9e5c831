"""The bank account sync function: its queue and its scheduled pulls (see template.yaml)."""

from billsync.handlers import sync_handler

lambda_handler = sync_handler("bank_account")
