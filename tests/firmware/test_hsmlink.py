"""hsmlink (the board link) under CPython and under MicroPython: the same checks."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from mp_run import requires_micropython, run_mp  # noqa: E402

import hsmtls.board  # noqa: E402,F401  (makes hsmlink importable on the host)

CHECK = HERE / "link_check.py"
EXPECTED = {
    "cobs_ok": "45",
    "frames": "2",
    "first": "20,3,4,hello",
    "dropped": "4",
    "oversized": "1",
    "a_to_b_ok": "1",
    "b_to_a_ok": "1",
    "max_in_flight_ok": "1",
    "retransmitted": "1",
    "pong_lost_ok": "1",
}


def _parse(out: str) -> dict:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_link_under_cpython(capsys):
    runpy.run_path(str(CHECK))
    out = capsys.readouterr().out
    assert out.strip().endswith("done")
    assert _parse(out) == EXPECTED


@pytest.mark.micropython
@requires_micropython
def test_link_under_micropython():
    out = run_mp(CHECK.read_text())
    assert out.strip().endswith("done")
    assert _parse(out) == EXPECTED
