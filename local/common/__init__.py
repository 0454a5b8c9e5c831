"""Parts every local emulator shares: a local CA, an HTTPS server, seeded fault injection."""
