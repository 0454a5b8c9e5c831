"""The local Invoiced: a production and a sandbox account, each on its own HTTPS listener."""

from __future__ import annotations

from local.common.server import LocalServer
from local.common.tls import LocalCA
from local.invoiced.api import InvoicedApi
from local.invoiced.control import Control, ControlApp
from local.invoiced.runtime import PRODUCTION, SANDBOX, Runtime
from local.invoiced.settings import InvoicedSettings


class InvoicedEmulator:
    """`with InvoicedEmulator(ca) as emu:` serves `emu.base_url` (production) and `emu.sandbox_base_url`.

    The two accounts hold separate data, API keys and webhook endpoints; a key only works on its own
    listener, as production keys fail against api.sandbox.invoiced.com.
    """

    def __init__(
        self,
        ca: LocalCA,
        *,
        port: int = 0,
        sandbox_port: int = 0,
        settings: InvoicedSettings | None = None,
    ) -> None:
        self.ca = ca
        self.runtime = Runtime(settings or InvoicedSettings(), str(ca.ca_file))
        self.control = Control(self.runtime)
        self._servers = {
            PRODUCTION: LocalServer(
                InvoicedApi(self.runtime, PRODUCTION, ControlApp(self.control, PRODUCTION)),
                port=port,
                ssl_context=ca.server_context(),
            ),
            SANDBOX: LocalServer(
                InvoicedApi(self.runtime, SANDBOX, ControlApp(self.control, SANDBOX)),
                port=sandbox_port,
                ssl_context=ca.server_context(),
            ),
        }
        for name, server in self._servers.items():
            self.runtime.base_urls[name] = server.base_url
        self._started = False

    @property
    def base_url(self) -> str:
        return self._servers[PRODUCTION].base_url

    @property
    def sandbox_base_url(self) -> str:
        return self._servers[SANDBOX].base_url

    @property
    def ca_file(self) -> str:
        return str(self.ca.ca_file)

    @property
    def api_key(self) -> str:
        return self.runtime.api_keys[PRODUCTION]

    @property
    def sandbox_api_key(self) -> str:
        return self.runtime.api_keys[SANDBOX]

    @property
    def settings(self) -> InvoicedSettings:
        return self.runtime.settings

    def start(self) -> InvoicedEmulator:
        if not self._started:
            for server in self._servers.values():
                server.start()
            self.runtime.dispatcher.start()
            self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self.runtime.dispatcher.stop()
            for server in self._servers.values():
                server.stop()
            self._started = False

    def serve_forever(self) -> None:
        """Serve until interrupted (the standalone command): sandbox in the background, production here."""
        self._servers[SANDBOX].start()
        self.runtime.dispatcher.start()
        try:
            self._servers[PRODUCTION].serve_forever()
        finally:
            self.runtime.dispatcher.stop()
            self._servers[SANDBOX].stop()

    def __enter__(self) -> InvoicedEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
