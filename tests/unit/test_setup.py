"""README's main command as a new user meets it: a fresh clone, a fresh virtual
environment (no system site-packages), then `scripts/setup && hsmtls demo`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.required_tools import requires_tool

REPO = Path(__file__).resolve().parents[2]


def _fresh_clone_and_venv(tmp_path: Path) -> tuple[Path, Path]:
    """A clone of this checkout and a virtual environment (no system site-packages)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "hsmtls"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    return clone, venv


@pytest.mark.slow
@pytest.mark.timeout(900)
@requires_tool("softhsm2")
@requires_tool("micropython")
def test_main_command_on_a_fresh_clone_and_venv(tmp_path):
    clone, venv = _fresh_clone_and_venv(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "SOFTHSM2_CONF")}
    env["VIRTUAL_ENV"] = str(venv)
    # an activated venv: its bin/ first on PATH, where setup puts `hsmtls` and `micropython`
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    p = subprocess.run(["bash", "-c", "scripts/setup && hsmtls demo"], cwd=clone, env=env,
                       capture_output=True, text=True, timeout=850)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "setup: done" in p.stdout
    assert "step 11" in p.stdout or "renegotiation" in p.stdout, p.stdout[-2000:]
    assert (venv / "bin" / "hsmtls").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
@requires_tool("softhsm2")
def test_installed_wheel_runs_the_demo(tmp_path):
    # `pip install .` (not editable): the wheel carries the firmware, boards/ and
    # benchmarks/ (hsmtls.board.TREE), so the demo runs from any directory
    clone, venv = _fresh_clone_and_venv(tmp_path)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"{clone}[emulator]"],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    shutil.rmtree(clone)  # nothing of the checkout is left to find
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "SOFTHSM2_CONF",
                                                              "HSMTLS_TREE")}
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import hsmtls.board as b; print(b.TREE)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert where.stdout.strip().endswith("hsmtls/data"), where
    p = subprocess.run([str(venv / "bin" / "hsmtls"), "demo"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "demo: all steps passed" in p.stdout
