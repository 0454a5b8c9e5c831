"""The pure domain: canonical models, mapping, rules. No I/O."""
