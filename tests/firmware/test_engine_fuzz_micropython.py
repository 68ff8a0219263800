"""The engine fuzz (tests/fuzz) under MicroPython with the board's backend: a damaged
flight of a live client/server handshake never makes either engine raise; a failure is
one fatal alert with a reason and a closed connection, and a closed engine stays quiet.
The same engine code as on CPython, but the interpreter's own ints, slices, memoryviews
and exceptions."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_engine_loopback_micropython import _numbers

from hsmtls.devpki import DevPKI

from support.mp_run import requires_micropython, run_mp

SCRIPTS = Path(__file__).parent / "scripts"
MARKER = "# --- the loopback"


def _fuzz(tmp_path: Path, monkeypatch, first: int, count: int) -> None:
    pki = DevPKI(tmp_path)
    (tmp_path / "server.key.txt").write_text(_numbers(pki.server_key))
    (tmp_path / "client.key.txt").write_text(_numbers(pki.client_key))
    (tmp_path / "now.txt").write_text(str(int(time.time())))
    monkeypatch.chdir(tmp_path)
    setup = (SCRIPTS / "engine_loopback.py").read_text().split(MARKER)[0]
    script = (f"import os\nos.chdir({str(tmp_path)!r})\n" + setup + f"\nFIRST = {first}\nCOUNT = {count}\n"
              + (SCRIPTS / "engine_fuzz.py").read_text())
    out = run_mp(script, timeout=1800)
    lines = out.strip().splitlines()
    assert lines and lines[-1].startswith("done "), out
    assert lines[:-1] == [], "\n".join(lines)  # "fail <seed> <why>"
    passed, closed = map(int, lines[-1].split()[1:])
    assert passed == count
    # the damage reached the engines: about half the seeds end in a fatal alert
    assert closed > count // 4, lines[-1]


@pytest.mark.micropython
@requires_micropython
def test_engine_fuzz_under_micropython(tmp_path, monkeypatch):
    _fuzz(tmp_path, monkeypatch, 0, 60)


@pytest.mark.micropython
@pytest.mark.slow
@requires_micropython
def test_engine_fuzz_under_micropython_long(tmp_path, monkeypatch):
    _fuzz(tmp_path, monkeypatch, 1000, 800)
