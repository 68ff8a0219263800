"""A board over the network: ser2net exports an emulated board's pty over RFC 2217 (and
raw TCP) on 127.0.0.1, as a board farm exports a board's USB serial port, and the host
opens `rfc2217://127.0.0.1:PORT` as given (ser2net does not acknowledge SET_CONTROL for
a pty: the host does not wait for it). Provisioning, a mutually authenticated handshake
with a renegotiation, the CLI, and a busy, unreachable or foreign port through it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hsmtls.board.emulator import EmulatedBoard
from hsmtls.board.faults import Faults
from hsmtls.board.hostlink import HostLink, LinkError
from hsmtls.testing.board import Board
from hsmtls.testing.ser2net import Ser2net

from support.hil import requires_emulator
from support.required_tools import requires_tool

pytestmark = [pytest.mark.micropython, requires_emulator, requires_tool("ser2net")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An emulated board behind ser2net (RFC 2217): (EmulatedBoard, Ser2net)."""
    with EmulatedBoard(tmp_path_factory.mktemp("flash"), heap="320k", mpy=True) as board, Ser2net(board.tty) as s:
        yield board, s


def test_provision_and_mutual_auth_with_renegotiation_over_rfc2217(exported, hil_token, hsmtls_serve):
    board, exporter = exported
    assert exporter.url.startswith("rfc2217://127.0.0.1:") and "?" not in exporter.url
    with Board(exporter.url, emulated=board).held() as remote:  # (one connection for all of it)
        assert remote.hello()["v"] >= 3
        prov = remote.provision(hil_token, key_type="ec")
        server = hsmtls_serve(client_auth=True)
        r = remote.handshake(server, client_cert=True, renegotiate=True, send="over the network\n")
        assert r["ok"], r
        assert r["client_cert"] is True and r["renegotiations"] == 1
        assert r["received"] == "over the network\n"
        cert = remote.status()["cert"]
        assert cert["key"] == "ec" and "hsmtls test CA" in cert["issuer"], cert
        assert prov.subject.split("CN=")[-1] in cert["subject"], (prov.subject, cert)


def test_cli_takes_the_url(exported, hil_token, hsmtls_serve):
    _, exporter = exported
    server = hsmtls_serve()
    out = subprocess.run([sys.executable, "-m", "hsmtls", "board", "handshake", "--port", exporter.url,
                          "--to", f"127.0.0.1:{server.port}", "--server-name", "localhost"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "result: ok" in out.stdout


@pytest.mark.slow
def test_link_faults_hold_over_rfc2217(tmp_path, hil_token, hsmtls_serve):
    """RFC 2217 re-chunks the bytes and adds latency; the link's retransmission still
    carries a session through dropped and corrupted frames."""
    faults = Faults(seed=7, drop=0.05, corrupt=0.05)
    with EmulatedBoard(tmp_path / "flash", heap="320k", mpy=True, to_board=faults) as board, \
            Ser2net(board.tty) as exporter:
        with Board(exporter.url, emulated=board) as remote:
            remote.provision(hil_token, key_type="ec")
            r = remote.handshake(hsmtls_serve(), send="x" * 3000)
    assert r["ok"], r
    assert r["received"] == "x" * 3000
    assert faults.counts.get("drop") and faults.counts.get("corrupt"), faults.counts


def test_raw_tcp_socket_url(tmp_path, hsmtls_serve):
    with EmulatedBoard(tmp_path / "flash", heap="320k", mpy=True) as board, \
            Ser2net(board.tty, raw=True) as exporter:
        assert exporter.url.startswith("socket://")
        with Board(exporter.url) as remote:
            assert remote.hello()["v"] >= 3


def test_busy_exported_port_is_one_line(exported):
    _, exporter = exported
    with HostLink(exporter.url) as first:
        first.connect(10)
        out = subprocess.run([sys.executable, "-m", "hsmtls", "board", "status", "--port", exporter.url],
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert "is busy" in out.stderr and "Traceback" not in out.stderr


def test_unreachable_url_is_one_line():
    out = subprocess.run([sys.executable, "-m", "hsmtls", "board", "status", "--port", "rfc2217://127.0.0.1:1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip() == ("error: cannot reach rfc2217://127.0.0.1:1: [Errno 111] Connection refused: is "
                                  "the serial server (ser2net, the labgrid exporter) running there, and the port "
                                  "exported?")
    with pytest.raises(LinkError, match="not a serial port URL"):
        HostLink("ftp://127.0.0.1:21")



def test_mpremote_reaches_a_board_in_the_repl_over_rfc2217(tmp_path):
    """deploy's tool, mpremote, given the URL as the link opens it (ign_set_control):
    without it, pyserial waits for ser2net's SET_CONTROL answer and gives up."""
    from hsmtls.board.tools import mpremote_exec_argv

    with EmulatedBoard(tmp_path / "flash", heap="320k", repl=True) as board, Ser2net(board.tty) as exporter:
        out = subprocess.run(mpremote_exec_argv(exporter.url, "print(6 * 7)"), capture_output=True, text=True,
                             timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42"


@pytest.mark.slow
@pytest.mark.timeout(600)  # the suite it runs: 20 s on unix64, 135 s on the rv32 machine (--board rv32)
def test_provisioning_suite_runs_unchanged_over_rfc2217(tmp_path):
    """tests/hil/test_provision.py and test_board_status.py with `--port rfc2217://...`,
    as for a board in a farm: the board behind ser2net is the one the suite provisions
    and shakes hands with (`provisioned_board`); the tests that start emulated boards of
    their own still do."""
    from pathlib import Path

    here = Path(__file__).resolve().parent
    with EmulatedBoard(tmp_path / "flash", heap="320k", mpy=True) as board, Ser2net(board.tty) as exporter:
        out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--port", exporter.url,
                              str(here / "test_provision.py"), str(here / "test_board_status.py")],
                             capture_output=True, text=True, timeout=600, cwd=here.parents[1])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout


def test_esptool_reaches_the_port_over_rfc2217(tmp_path):
    """`hsmtls board flash --port rfc2217://...`: esptool opens the URL as given (through
    ser2net, whose pty ignores the modem lines) and its bootloader SYNC reaches the serial
    side; with no ESP32 ROM there to answer, the command says what to do in one line.
    (Writing flash needs a real chip's ROM bootloader: not run here.)"""
    import os
    import pty
    import select

    controller, device = pty.openpty()
    (tmp_path / "esptool.cfg").write_text("[esptool]\nconnect_attempts = 1\n")
    image = tmp_path / "fw.bin"
    image.write_bytes(b"\xff" * 64)
    try:
        with Ser2net(os.ttyname(device)) as s:
            out = subprocess.run([sys.executable, "-m", "hsmtls", "board", "flash", "--board", "esp32-devkitc",
                                  "--port", s.url, "--image", str(image)], capture_output=True, text=True,
                                 timeout=120, env=dict(os.environ, ESPTOOL_CFGFILE=str(tmp_path / "esptool.cfg")))
            seen = b""
            while select.select([controller], [], [], 0.2)[0]:
                seen += os.read(controller, 65536)
    finally:
        os.close(controller)
        os.close(device)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stderr == f"error: no bootloader answer on {s.url}: hold BOOT, press RESET, and retry\n"
    # ESP ROM SYNC (command 0x08, 36 bytes: 07 07 12 20 and 32 x 0x55) in SLIP frames
    assert b"\xc0\x00\x08\x24\x00" in seen and b"\x07\x07\x12\x20" + b"\x55" * 32 in seen, seen[:80]
