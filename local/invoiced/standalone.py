"""`billsync local invoiced`: serve a local Invoiced account until interrupted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from local.common.tls import LocalCA
from local.invoiced.emulator import InvoicedEmulator


def serve(*, port: int, ca_file: str, sandbox_port: int = 0) -> None:
    """Print one JSON line (URLs, CA file, API keys, control hints), then serve until Ctrl-C."""
    ca = LocalCA.load_or_create(Path(ca_file).parent)
    emulator = InvoicedEmulator(ca, port=port, sandbox_port=sandbox_port)
    info = {
        "service": "invoiced",
        "base_url": emulator.base_url,
        "sandbox_base_url": emulator.sandbox_base_url,
        "ca_file": emulator.ca_file,
        "api_key": emulator.api_key,
        "sandbox_api_key": emulator.sandbox_api_key,
        "control": {
            "base": f"{emulator.base_url}/_emulator",
            "add_webhook": f'POST {emulator.base_url}/_emulator/webhooks {{"url": ..., "secret": ...}}',
            "deliveries": f"GET {emulator.base_url}/_emulator/deliveries",
            "advance_clock": f'POST {emulator.base_url}/_emulator/clock/advance {{"seconds": 3600}}',
            "reset": f"POST {emulator.base_url}/_emulator/reset",
        },
    }
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    emulator.serve_forever()
