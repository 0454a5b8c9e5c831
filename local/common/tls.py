"""A local certificate authority for the emulators.

Every emulator in one local stack serves a certificate issued by the same CA, so a client trusts
them all with one file. The CA is kept in a directory so that separate processes (a standalone
emulator, the local stack, a test) can share it.
"""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

import trustme

_CA_CERT = "billsync-local-ca.pem"
_CA_KEY = "billsync-local-ca.key"


class LocalCA:
    """A CA on disk: `ca_file` is what clients pass as `verify=`."""

    def __init__(self, ca: trustme.CA, ca_file: Path) -> None:
        self._ca = ca
        self.ca_file = ca_file
        self._lock = threading.Lock()

    @classmethod
    def load_or_create(cls, directory: str | Path) -> LocalCA:
        """Load the CA kept in `directory`, or create one there."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        cert, key = path / _CA_CERT, path / _CA_KEY
        if cert.exists() and key.exists():
            ca = trustme.CA.from_pem(cert.read_bytes(), key.read_bytes())
        else:
            ca = trustme.CA(organization_name="billsync local stack")
            key.write_bytes(ca.private_key_pem.bytes())
            key.chmod(0o600)
            cert.write_bytes(ca.cert_pem.bytes())
        return cls(ca, cert)

    def server_context(self, *hostnames: str) -> ssl.SSLContext:
        """A server-side TLS context with a certificate for `hostnames` (127.0.0.1 and localhost by default)."""
        names = hostnames or ("127.0.0.1", "localhost")
        with self._lock:
            leaf = self._ca.issue_cert(*names)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        leaf.configure_cert(ctx)
        return ctx
