"""A threaded WSGI server with HTTP/1.1 keep-alive, over HTTPS or plain HTTP, for the local stack.

Real Salesforce and billing APIs keep connections open, and clients (requests, simple-salesforce)
reuse them; werkzeug's development server closes every connection (it cannot drain request bodies),
which costs a TLS handshake per request. This server reads each request body exactly (Content-Length
or chunked), so connections stay open. Measured tweaks: TCP_NODELAY on every connection (a Nagle /
delayed-ACK stall otherwise costs ~14 ms per HTTPS request) and a short poll interval to stop fast.
"""

from __future__ import annotations

import io
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

WsgiApp = Callable[..., Iterable[bytes]]
MAX_HEADER_LINE = 65_536
MAX_DRAIN = 1 << 20  # unread request bytes drained to keep a connection; more closes it instead


class _Body(io.RawIOBase):
    """A request body read lazily from the connection, at most Content-Length bytes."""

    def __init__(self, stream: Any, length: int) -> None:
        self._stream = stream
        self.remaining = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.remaining <= 0:
            return 0
        data = self._stream.read(min(len(buffer), self.remaining))
        if not data:
            self.remaining = 0
            return 0
        buffer[: len(data)] = data
        self.remaining -= len(data)
        return len(data)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(MAX_HEADER_LINE + 1)
        except (ConnectionError, TimeoutError, ssl.SSLError, OSError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > MAX_HEADER_LINE:
            self.send_error(414)
            return
        if not self.parse_request():
            return
        try:
            body = self._body()
        except ValueError as exc:
            self.send_error(400, str(exc))
            self.close_connection = True
            return
        self._run_app(body)
        if body.remaining > MAX_DRAIN:
            self.close_connection = True
        elif body.remaining > 0 and not self.close_connection:
            body.read()

    def _body(self) -> _Body:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size_line = self.rfile.readline(MAX_HEADER_LINE + 1)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(MAX_HEADER_LINE + 1) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    data = b"".join(chunks)
                    return _Body(io.BytesIO(data), len(data))
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            raise ValueError("bad Content-Length")
        return _Body(self.rfile, int(length))

    def _environ(self, body: _Body) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, encoding="latin-1"),
            "QUERY_STRING": query,
            "REQUEST_URI": self.path,
            "RAW_URI": self.path,
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
            "CONTENT_LENGTH": str(body.remaining),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.server.tls else "http",
            "wsgi.input": io.BufferedReader(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            # The raw socket, as werkzeug exposes it: emulators use it to simulate a dropped connection.
            "werkzeug.socket": self.connection,
        }
        if "Content-Type" in self.headers:
            environ["CONTENT_TYPE"] = self.headers["Content-Type"]
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                continue
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _run_app(self, body: _Body) -> None:
        status_headers: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            status_headers[:] = [status, headers]
            return lambda data: None

        try:
            result = self.server.app(self._environ(body), start_response)
            try:
                payload = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except (ConnectionError, OSError):
            self.close_connection = True  # the application dropped the connection on purpose
            return
        if self.connection.fileno() == -1:
            self.close_connection = True
            return
        status, headers = status_headers
        code, _, reason = status.partition(" ")
        self.send_response_only(int(code), reason)
        names = set()
        for name, value in headers:
            names.add(name.lower())
            if name.lower() != "content-length":
                self.send_header(name, value)
        if int(code) not in (204, 304) and not (100 <= int(code) < 200):
            self.send_header("Content-Length", str(len(payload)))
        if "date" not in names:
            self.send_header("Date", self.date_time_string())
        if self.headers.get("Connection", "").lower() == "close":
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: WsgiApp, ssl_context: ssl.SSLContext | None) -> None:
        self.app = app
        self.tls = ssl_context is not None
        self._ssl_context = ssl_context
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self._ssl_context is not None:
            sock.settimeout(30)
            sock = self._ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that went away mid-request is not the server's problem


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
        self._server = _Server((host, port), app, ssl_context)
        self._thread: threading.Thread | None = None
        scheme = "https" if ssl_context else "http"
        self.host = host
        self.port = self._server.server_address[1]
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
