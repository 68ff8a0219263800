"""Markers shared by the HIL tests (imported by name: two conftest.py modules would clash)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))
from mp_run import MICROPYTHON  # noqa: E402

REAL_BOARD = os.environ.get("HSMTLS_BOARD_PORT")

requires_board = pytest.mark.skipif(
    MICROPYTHON is None and not REAL_BOARD, reason="no MicroPython unix port and no HSMTLS_BOARD_PORT"
)
requires_emulator = pytest.mark.skipif(
    MICROPYTHON is None or bool(REAL_BOARD), reason="needs the emulated board (relay faults, resets)"
)
