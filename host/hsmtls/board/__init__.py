"""The board side of hsmtls on the host: the emulated board, the serial link, the bridge.

The link protocol (``hsmlink``) lives with the firmware in firmware/lib/hsmlink, one
definition for both ends. Until the package mapping for it is in pyproject.toml, it is
loaded from the source tree here, under its own name only (the rest of firmware/lib
stays off the host's import path).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[3] / "firmware"
FIRMWARE_LIB = FIRMWARE / "lib"


def _ensure_hsmlink() -> None:
    try:
        import hsmlink  # noqa: F401
    except ImportError:
        pkg = FIRMWARE_LIB / "hsmlink"
        spec = importlib.util.spec_from_file_location(
            "hsmlink", pkg / "__init__.py", submodule_search_locations=[str(pkg)]
        )
        if spec is None or spec.loader is None:
            raise
        mod = importlib.util.module_from_spec(spec)
        sys.modules["hsmlink"] = mod
        spec.loader.exec_module(mod)


_ensure_hsmlink()
