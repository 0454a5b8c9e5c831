"""The ops function: POST /ops/sync, authorised with IAM (see template.yaml)."""

from billsync.handlers_ops import ops_handler

lambda_handler = ops_handler()
