"""The demo: a realistic data set and a narrated run of billsync on the local stack."""
