"""The plugin's Board on a fresh emulated board, for what the example does not show:
autorun sessions carried by `bridge`, status before and after provisioning, a failed
handshake as a RESULT (not an exception), and the RESULTs in a failed test's report."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hsmtls.board.emulator import EmulatedBoard
from hsmtls.testing.board import Board, BoardError

from support.hil import requires_emulator

pytestmark = [pytest.mark.micropython, requires_emulator]


@pytest.fixture
def fresh(tmp_path):
    with EmulatedBoard(tmp_path / "flash", heap="320k", mpy=True) as b:
        yield Board(b.tty, emulated=b)


def test_autorun_through_bridge(fresh, hil_token, hsmtls_serve):
    assert fresh.status().get("cert") is None
    fresh.provision(hil_token, key_type="ec")
    server = hsmtls_serve(client_auth=True)
    kept = fresh.autorun("localhost", every_s=1, client_cert=True, send="tick\n")
    assert kept == {"server_name": "localhost", "every_s": 1, "client_auth": True, "send": "tick\n"}
    results = fresh.bridge(server, sessions=2, timeout=30)
    assert [r["autorun"] for r in results] == [1, 2]
    assert all(r["ok"] and r["client_cert"] and r["received"] == "tick\n" for r in results), results
    assert fresh.autorun(None) is None
    assert fresh.status()["autorun"] is None


def test_failed_handshake_is_a_result(fresh, hil_token, hsmtls_serve):
    # no trust anchor yet: the board refuses the run, and says why
    r = fresh.handshake(hsmtls_serve())
    assert r["ok"] is False and "ca.pem is missing" in r["reason"]
    fresh.provision(hil_token, key_type="ec", ca="rogue-ca")
    r = fresh.handshake(hsmtls_serve())  # the server's certificate is not from the board's CA
    assert r["ok"] is False and "unknown_ca" in r["reason"], r["reason"]
    assert len(fresh.results) == 2


def test_an_unreachable_board_is_a_board_error(tmp_path):
    with pytest.raises(BoardError, match="^cannot open /dev/hsmtls-none"):
        Board("/dev/hsmtls-none").hello()


def test_failed_test_report_carries_the_results(tmp_path):
    """A test that fails after a handshake shows the board's RESULT under it."""
    (tmp_path / "test_fails.py").write_text(
        "def test_it(hsmtls_provisioned_board, hsmtls_serve):\n"
        "    r = hsmtls_provisioned_board.handshake(hsmtls_serve(), send='abc')\n"
        "    assert r['received'] == 'something else'\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 failed" in out.stdout
    section = out.stdout[out.stdout.index("hsmtls board results"):]
    assert "result: ok" in section and "received: abc" in section, out.stdout
