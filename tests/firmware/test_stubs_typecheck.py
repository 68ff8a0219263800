"""firmware/ type-checks against the MicroPython ESP32 stubs (micropython-esp32-stubs):
an API the board lacks fails here, on the host. .ci/run installs the stubs into typings/."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TYPINGS = REPO / "typings"
CONFIG = REPO / "firmware" / "mypy.ini"


def _mypy(*targets: str) -> subprocess.CompletedProcess:
    if not (TYPINGS / "hashlib.pyi").exists() or shutil.which("mypy") is None:
        if os.environ.get("CI"):
            pytest.fail("typings/ (micropython-esp32-stubs) or mypy missing: .ci/run installs them")
        pytest.skip("install the stubs: pip install 'micropython-esp32-stubs==1.29.*' --target typings --no-user")
    return subprocess.run(
        ["mypy", "--config-file", str(CONFIG), "--no-incremental", *targets],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )


def test_firmware_typechecks_against_esp32_stubs():
    proc = _mypy("firmware/lib", "firmware/main.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_check_catches_apis_the_board_lacks(tmp_path):
    bad = tmp_path / "planted" / "bad.py"
    bad.parent.mkdir()
    bad.write_text("import hashlib\nh = hashlib.sha384(b'x')\nc = hashlib.sha256().copy()\nimport hmac\n")
    proc = _mypy(str(bad))
    assert proc.returncode != 0
    for what in ('"sha384"', '"copy"', '"hmac"'):
        assert what in proc.stdout, proc.stdout
