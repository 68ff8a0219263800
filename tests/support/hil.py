"""Markers and helpers shared by the HIL tests (a module here: tests cannot import a conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.required_tools import requires_tool

REAL_BOARD = os.environ.get("HSMTLS_BOARD_PORT")

# without a real board the emulator needs MicroPython: skipped without it, failed under $CI
requires_board = pytest.mark.skipif(False, reason="") if REAL_BOARD else requires_tool("micropython")
requires_emulator = (
    pytest.mark.skipif(True, reason="needs the emulated board (relay faults, resets)") if REAL_BOARD
    else requires_tool("micropython")
)


def provision_emulated(flash_dir: Path, token, ca: str = "ca", validity=None, key_type: str = "rsa"):
    """Start an emulated board in flash_dir and provision it (key_type "rsa" or "ec")
    through the pytest plugin's Board; returns (EmulatedBoard, Provisioned)."""
    from hsmtls.board.emulator import EmulatedBoard
    from hsmtls.testing.board import Board

    # precompiled, as deployed (see emulator.can_precompile)
    board = EmulatedBoard(flash_dir, heap="320k", mpy=True).start()
    try:
        # (the Board resets an emulated board after provisioning: it restarts with its
        # new identity and a heap not fragmented by the key generation)
        prov = Board(board.tty, emulated=board).provision(token, key_type=key_type, ca=ca, validity=validity)
    except BaseException:
        board.stop()
        raise
    return board, prov


def refused(link, ftype: int, payload: dict, where: str) -> str:
    """Send a frame the board must refuse; the reason of the ERROR it answers with."""
    from hsmtls.board.provisioning import ProvisionError, _wait_for

    link.send(ftype, payload)
    with pytest.raises(ProvisionError) as e:
        _wait_for(link, -1, where, 10.0, [], lambda s: None)
    return str(e.value)
