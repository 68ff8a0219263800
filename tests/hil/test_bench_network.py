"""`hsmtls bench board --network` and `--boards N` run and print their tables."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support.hil import requires_emulator
from support.required_tools import requires_tool

pytestmark = [pytest.mark.slow, pytest.mark.micropython, requires_emulator, requires_tool("softhsm2")]


@requires_tool("ser2net")
def test_bench_network():
    out = subprocess.run([sys.executable, "-m", "hsmtls", "bench", "board", "--network", "-n", "2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["port", "open", "ms"]
    assert [line.split()[0] for line in lines[1:]] == ["pty", "socket", "rfc2217"]


def test_bench_boards():
    pytest.importorskip("xdist")
    out = subprocess.run([sys.executable, "-m", "hsmtls", "bench", "board", "--boards", "2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[2:]]
    assert [r[:2] for r in rows] == [["1", "20"], ["2", "20"]], out.stdout
