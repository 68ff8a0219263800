"""The unix32 machine: MicroPython 1.28 built from its sources as a 32-bit program with
the firmware frozen in (`hsmtls board build`, `hsmtls board emulate --machine unix32`),
the emulated board closest to an ESP32 that runs on the host: 32-bit objects, 16-byte
GC blocks, the code out of the heap. Its smallest heaps are the board's heap budget
(docs/board.md, "Heap"); a change that needs more fails here."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hil_support import requires_emulator

from hsmtls.board.emulator import EmulatedBoard
from hsmtls.board.hostlink import HostLink

pytestmark = [pytest.mark.micropython, requires_emulator, pytest.mark.slow]


@pytest.fixture(scope="module")
def image():
    from hsmtls.board.build import BuildError, check_toolchain, default_sources, find_image

    try:
        if default_sources() is None:
            raise BuildError("no MicroPython sources at ../shared/micropython")
        check_toolchain("gcc-m32")
        return find_image("unix32")
    except BuildError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(e))


def test_the_board_runs_the_frozen_firmware_on_32_bits(image, flash_dir):
    with EmulatedBoard(flash_dir, heap="64k", machine="unix32") as b, HostLink(b.tty) as link:
        hello = link.connect(10)
    assert hello["impl"] == "micropython 1.28.0" and hello["heap"] < 65536, hello


def test_emulate_says_when_the_heap_is_too_small_to_start(image, tmp_path):
    p = subprocess.run([sys.executable, "-m", "hsmtls", "board", "emulate", "--machine", "unix32", "--heap", "24k",
                        "--flash", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stdout.startswith("/dev/"), p
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "MemoryError" in err[0] and "heap 24k is too small to start the firmware" in err[0], err


def test_other_machines_say_they_are_not_here():
    with pytest.raises(RuntimeError, match="rv32 machine is not emulated by this version"):
        EmulatedBoard(machine="rv32")
