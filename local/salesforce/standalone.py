"""``billsync local salesforce``: serve the local org on its own until interrupted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from local.common.tls import LocalCA
from local.salesforce.emulator import SalesforceEmulator

__all__ = ["serve"]


def serve(*, port: int, ca_file: str) -> None:
    """Start the org on 127.0.0.1:``port``, print one JSON line (URL, CA file, credentials), serve.

    The CA is created in (or loaded from) the directory of ``ca_file``; its file name is fixed, so
    the printed ``ca_file`` is the one clients must trust.
    """
    ca = LocalCA.load_or_create(Path(ca_file).expanduser().resolve().parent)
    emulator = SalesforceEmulator(ca, port=port)
    print(json.dumps(emulator.info()), flush=True)
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sys.stdout.flush()
