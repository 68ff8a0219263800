"""The board side of hsmtls on the host: the emulated board, the serial link, the bridge.

The link protocol (``hsmlink``) lives with the firmware in firmware/lib/hsmlink, one
definition for both ends, installed on the host by pyproject.toml's package mapping.
The emulator runs the firmware from the source tree (FIRMWARE).

Where that tree is, for every tool that needs it (the firmware to deploy or emulate,
boards/ data, benchmarks/ scripts): $HSMTLS_TREE if set; else the checkout this package
runs from (an editable install); else the copy an installed wheel carries in
hsmtls/data/ (pyproject.toml). TREE is the one setting; nothing else looks for them.
"""

from __future__ import annotations

import os
from pathlib import Path


def _tree() -> Path:
    env = os.environ.get("HSMTLS_TREE")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    checkout = here.parents[3]
    if (checkout / "firmware" / "main.py").is_file():
        return checkout
    return here.parents[1] / "data"


TREE = _tree()
FIRMWARE = TREE / "firmware"
FIRMWARE_LIB = FIRMWARE / "lib"
