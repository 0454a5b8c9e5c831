"""Fixtures for the emulator's own tests: a raw HTTPS client on a freshly reset org."""

from __future__ import annotations

import pytest

from local.salesforce import SalesforceEmulator
from tests.emulators.salesforce.helpers import Api


@pytest.fixture
def api(salesforce: SalesforceEmulator) -> Api:
    return Api(salesforce)
