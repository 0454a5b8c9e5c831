"""HTTP sessions that reach the local org: trusting its CA, and rewriting Salesforce login hosts."""

from __future__ import annotations

import re
from typing import Any

import requests

__all__ = ["LoginRewritingSession", "emulator_session"]

_SALESFORCE_HOST = re.compile(r"^https://[A-Za-z0-9.\-]*\.salesforce\.com(?::\d+)?(?=/|$)", re.IGNORECASE)


def emulator_session(ca_file: str) -> requests.Session:
    """A session that trusts the local CA (and ignores REQUESTS_CA_BUNDLE and proxies from the environment)."""
    session = requests.Session()
    session.verify = str(ca_file)
    session.trust_env = False
    return session


class LoginRewritingSession(requests.Session):
    """Sends ``https://login.salesforce.com``, ``https://test.salesforce.com`` and
    ``https://<name>.my.salesforce.com`` (any ``*.salesforce.com``) to the local org.

    simple-salesforce hard-wires its login URLs to ``https://{domain}.salesforce.com``; with this
    session its SOAP, OAuth password, client-credentials and JWT logins reach the local org
    unchanged, and everything after login goes to the instance URL the org returns.
    """

    def __init__(self, base_url: str, ca_file: str) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.verify = str(ca_file)
        self.trust_env = False
        self.rewritten: list[str] = []

    def rewrite(self, url: str) -> str:
        new, count = _SALESFORCE_HOST.subn(self.base_url, url, count=1)
        if count:
            self.rewritten.append(url)
        return new

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        text = url.decode() if isinstance(url, bytes) else url
        return super().request(method, self.rewrite(text), *args, **kwargs)
