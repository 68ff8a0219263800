"""The board side of hsmtls on the host: the emulated board, the serial link, the bridge.

The link protocol (``hsmlink``) lives with the firmware in firmware/lib/hsmlink, one
definition for both ends, installed on the host by pyproject.toml's package mapping.
The emulator runs the firmware from the source tree (FIRMWARE).
"""

from __future__ import annotations

from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[3] / "firmware"
FIRMWARE_LIB = FIRMWARE / "lib"
