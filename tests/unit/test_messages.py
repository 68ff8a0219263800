"""Message codecs under CPython: the same round-trip script the MicroPython test runs."""

import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "firmware" / "scripts" / "codec_roundtrip.py"


def test_codecs_round_trip_under_cpython(capsys):
    runpy.run_path(str(SCRIPT))
    assert capsys.readouterr().out.strip().endswith("done")
