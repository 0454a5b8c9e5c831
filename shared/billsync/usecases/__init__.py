"""Use cases: apply a batch, pull changes, accept webhooks, redrive. No boto3, no HTTP clients."""
