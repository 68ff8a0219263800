"""The pytest plugin as a user meets it: docs/examples/hil copied out of the repository
and run by pytest in a subprocess (the plugin found through its entry point, nothing
of tests/ on the path), with JUnit XML; and what it says about a board it cannot use."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from support.hil import requires_emulator
from support.required_tools import requires_tool

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "hil"

pytestmark = [pytest.mark.micropython, requires_emulator, requires_tool("softhsm2")]


def run_example(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    work = tmp_path / "hil"
    shutil.copytree(EXAMPLE, work)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                           *args], cwd=work, capture_output=True, text=True, timeout=300)


def test_example_passes_with_junit_xml(tmp_path):
    out = run_example(tmp_path, "--junitxml=report.xml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "hsmtls: board emulator on an emulated board" in out.stdout
    suite = ET.parse(tmp_path / "hil" / "report.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("5", "0", "0")
    # each RESULT the board gave, as data, in the test's properties
    case = next(c for c in suite.iter("testcase") if c.get("name") == "test_revoked_board_is_refused")
    results = [json.loads(p.get("value")) for p in case.iter("property") if p.get("name") == "hsmtls_result"]
    assert len(results) == 1 and results[0]["ok"] is False
    assert "certificate_revoked" in results[0]["reason"]


@pytest.mark.parametrize("args, says", [
    (["--port", "rfc2217://127.0.0.1:1"], "cannot reach rfc2217://127.0.0.1:1: [Errno 111] Connection refused"),
    (["--hsmtls-board", "esp32-devkitc"], "--hsmtls-board esp32-devkitc: give its serial port with --port"),
    (["--hsmtls-board", "no-such-board", "--port", "/dev/null"], "unknown board 'no-such-board'"),
])
def test_a_board_it_cannot_use_is_one_line(tmp_path, args, says):
    out = run_example(tmp_path, "-x", "-k", "holds", *args)
    assert out.returncode == 1, out.stdout + out.stderr
    assert says in out.stdout, out.stdout
    assert "Traceback" not in out.stdout and "During handling" not in out.stdout, out.stdout


@pytest.mark.slow
@requires_tool("ser2net")
def test_one_board_a_worker_under_xdist(tmp_path):
    """pytest -n 2 --port URL1,URL2: each worker takes its own board (two emulated
    boards, each behind ser2net), provisions it from the run's one token and runs its
    share of the tests."""
    pytest.importorskip("xdist")
    from contextlib import ExitStack

    from hsmtls.board.emulator import EmulatedBoard
    from hsmtls.testing.board import Board
    from hsmtls.testing.ser2net import Ser2net

    with ExitStack() as stack:
        urls = []
        for i in range(2):
            board = stack.enter_context(EmulatedBoard(tmp_path / f"flash{i}", heap="320k", mpy=True))
            urls.append(stack.enter_context(Ser2net(board.tty)).url)
        out = run_example(tmp_path, "-n", "2", "--port", ",".join(urls))
        assert out.returncode == 0, out.stdout + out.stderr
        assert "5 passed" in out.stdout
        certs, anchors = [], []
        for url in urls:
            with Board(url) as b:
                status = b.status()
            certs.append(status.get("cert"))
            anchors.append(tuple(a["sha256"] for a in status["anchors"]))
    assert all(c and c["key"] == "ec" for c in certs), certs
    assert len(set(anchors)) == 1 and len(anchors[0]) == 1, anchors  # one token's CA for both


def test_a_board_with_other_firmware_is_one_line(tmp_path):
    """A board whose firmware speaks an older link version: the plugin's fixtures, `board handshake`
    and `board status` say so (status still answers, with the version)."""
    from hsmlink import VERSION
    from hsmtls.board.emulator import EmulatedBoard

    main = tmp_path / "old_main.py"
    firmware_main = Path(__file__).resolve().parents[2] / "firmware" / "main.py"
    main.write_text(f"import hsmlink\nhsmlink.VERSION = {VERSION - 1}\nexec(open({str(firmware_main)!r}).read())\n")
    # the unix64 machine whatever --board says: the others run their firmware frozen, not main.py
    with EmulatedBoard(tmp_path / "flash", heap="320k", mpy=True, main=main, machine="unix64") as board:
        out = run_example(tmp_path, "-x", "-k", "holds", "--port", board.tty)
        cli = subprocess.run([sys.executable, "-m", "hsmtls", "board", "handshake", "--port", board.tty,
                              "--to", "127.0.0.1:9"], capture_output=True, text=True, timeout=60)
        status = subprocess.run([sys.executable, "-m", "hsmtls", "board", "status", "--port", board.tty],
                                capture_output=True, text=True, timeout=60)
    says = (f"the board on {board.tty} runs other firmware (link v{VERSION - 1}, this hsmtls speaks v{VERSION}): "
            "deploy this version's")
    assert out.returncode == 1 and says in out.stdout, out.stdout
    assert cli.returncode == 1 and cli.stderr.startswith("error: " + says) and cli.stderr.count("\n") == 1, cli.stderr
    assert status.returncode == 0 and f"link v{VERSION - 1}" in status.stdout, status.stdout + status.stderr
