"""A threaded werkzeug server for the emulators and the local API, over HTTPS or plain HTTP.

Two measured tweaks (see the project's local-stack notes): TCP_NODELAY on every accepted socket,
which removes a ~14 ms Nagle/delayed-ACK stall per HTTPS request, and a short poll interval so the
server stops in tens of milliseconds.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

WsgiApp = Callable[..., Any]


class _QuietFastHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return

    def log_error(self, format: str, *args: Any) -> None:
        return


class LocalServer:
    """Serve a WSGI app on 127.0.0.1 in a background thread. Port 0 picks a free port."""

    def __init__(
        self,
        app: WsgiApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, request_handler=_QuietFastHandler, ssl_context=ssl_context
        )
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        scheme = "https" if ssl_context else "http"
        self.host = host
        self.port = self._server.server_port
        self.base_url = f"{scheme}://{host}:{self.port}"

    def start(self) -> LocalServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name=self.base_url
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (standalone emulators)."""
        try:
            self._server.serve_forever(poll_interval=0.05)
        except KeyboardInterrupt:
            pass
        finally:
            self._server.server_close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
