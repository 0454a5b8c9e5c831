"""Fixtures shared by every test: the emulators and the AWS stand-in, each in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.tls",
    "tests.fixtures.salesforce",
    "tests.fixtures.invoiced",
    "tests.fixtures.stack",
]
