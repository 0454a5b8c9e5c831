"""The webhook function: POST /webhooks/{source} (see template.yaml)."""

from billsync.handlers import webhook_handler

lambda_handler = webhook_handler()
