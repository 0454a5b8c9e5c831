"""Everything that talks to Salesforce: login, the gateway, error translation."""
