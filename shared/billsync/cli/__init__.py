"""The `billsync` operator command line. Never imported by a Lambda handler."""
