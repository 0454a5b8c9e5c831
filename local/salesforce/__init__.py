"""A local Salesforce org: an HTTPS emulator real Salesforce clients cannot tell apart."""
