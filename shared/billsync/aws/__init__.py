"""AWS adapters: the only place billsync imports boto3."""
