"""The local stack: emulators, the AWS stand-in and the template-driven runtime. Never deployed."""
