"""Fixtures shared by every test: the emulators and the AWS stand-in, each in tests/fixtures/.

Property tests run a few examples in CI (profile `ci`, the default) and 10,000 under `make soak`
(HYPOTHESIS_PROFILE=soak). No deadline: the CI machine is shared and its timings say nothing.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=100, deadline=None)
settings.register_profile(
    "soak", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

pytest_plugins = [
    "tests.fixtures.tls",
    "tests.fixtures.salesforce",
    "tests.fixtures.invoiced",
    "tests.fixtures.stack",
]
