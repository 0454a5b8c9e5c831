"""`SalesforceEmulator`: the local org served over HTTPS, in-process or on its own."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from local.common.server import LocalServer
from local.common.tls import LocalCA
from local.salesforce.app import SalesforceApp
from local.salesforce.auth import make_key_pair
from local.salesforce.control import Control
from local.salesforce.org import Org
from local.salesforce.settings import EmulatorSettings

__all__ = ["DEFAULT_METADATA_DIR", "SalesforceEmulator"]

#: billsync's Salesforce metadata package (sfdx source format) at the root of the repository.
DEFAULT_METADATA_DIR = Path(__file__).resolve().parents[2] / "salesforce"


class SalesforceEmulator:
    """A local Salesforce org on ``https://127.0.0.1:PORT`` with a certificate from ``ca``.

    ``base_url`` is at once the login URL, the instance URL and the My Domain URL. ``credentials``
    hold everything a client needs to log in by any supported flow; ``control`` is the in-process
    control API (reset, seed, dump, call counts, faults, events, settings, time).
    """

    def __init__(
        self,
        ca: LocalCA,
        *,
        port: int = 0,
        settings: EmulatorSettings | None = None,
        metadata_dir: Path | None = None,
    ) -> None:
        self.settings = settings or EmulatorSettings()
        self._key_dir = Path(tempfile.mkdtemp(prefix="billsync-sf-app-"))
        key_files = make_key_pair(self._key_dir)
        self.org = Org(self.settings, metadata_dir or DEFAULT_METADATA_DIR, key_files)
        self.app = SalesforceApp(self.org, lambda: self.base_url, self.info)
        self._server = LocalServer(
            self.app, port=port, ssl_context=ca.server_context("127.0.0.1", "localhost")
        )
        self.base_url: str = self._server.base_url
        self.port: int = self._server.port
        self.ca_file: str = str(ca.ca_file)
        self._running = False

    @property
    def control(self) -> Control:
        return self.app.control

    @property
    def credentials(self) -> dict[str, str]:
        org, s = self.org, self.org.settings
        app = org.app_credentials
        return {
            "consumer_key": app.consumer_key,
            "consumer_secret": app.consumer_secret,
            "username": s.username,
            "password": s.password,
            "security_token": s.security_token,
            "org_id": org.org_id,
            "user_id": org.integration_user_id,
            "private_key_file": app.private_key_file,
            "certificate_file": app.certificate_file,
            "refresh_token": org.auth.standing_refresh_token,
            "human_username": s.human_username,
            "human_password": s.human_password,
            "human_security_token": s.human_security_token,
            "human_user_id": org.human_user_id,
        }

    def info(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "ca_file": self.ca_file, **self.credentials}

    def start(self) -> SalesforceEmulator:
        if not self._running:
            self.app.start()
            self._server.start()
            self._running = True
        return self

    def stop(self) -> None:
        if self._running:
            self._server.stop()
            self.app.stop()
            self._running = False
        shutil.rmtree(self._key_dir, ignore_errors=True)

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self.app.start()
        self._running = True
        try:
            self._server.serve_forever()
        finally:
            self.app.stop()
            self._running = False
            shutil.rmtree(self._key_dir, ignore_errors=True)

    def __enter__(self) -> SalesforceEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
