"""Sessions the board starts on its own (autorun): kept in autorun.json on its flash,
started once a host has connected and given the time, carried by `hsmtls bridge`, which
prints each result. A host that only configures the board (no TIME) starts nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from hsmtls.board.bridge import BoardFailure, Bridge
from hsmtls.board.emulator import EmulatedBoard
from hsmtls.board.hostlink import HostLink

from support.hil import requires_emulator

pytestmark = [pytest.mark.micropython, requires_emulator]


@pytest.fixture
def board(flash_dir, tmp_path):
    flash = tmp_path / "flash"
    shutil.copytree(flash_dir, flash)  # autorun.json must not reach the shared board's flash
    with EmulatedBoard(flash, heap="256k", mpy=True) as b:
        yield b


def serve_until(bridge: Bridge, count: int, seconds: float) -> list[dict]:
    results: list[dict] = []
    deadline = time.monotonic() + seconds
    bridge.serve(until=lambda: len(results) >= count or time.monotonic() > deadline, on_result=results.append)
    return results


def test_autorun_sessions_through_the_bridge(board, servers):
    port = servers.hsmtls()
    with HostLink(board.tty) as link:
        link.connect()
        bridge = Bridge(link, ("127.0.0.1", port))
        kept = bridge.set_autorun({"server_name": "localhost", "every_s": 1, "send": "hi\n"})
        assert kept == {"server_name": "localhost", "every_s": 1, "send": "hi\n"}
        # this host has not given the time: nothing starts
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            assert bridge.step(0.05) == []
        assert bridge.tcp_bytes == [0, 0]
        t = time.monotonic()
        results = serve_until(bridge, 2, 20)
    assert [r.get("autorun") for r in results] == [1, 2], results
    for r in results:
        assert r["ok"] and r["received"] == "hi\n" and r["suite"], r
    assert time.monotonic() - t >= 1.0  # every_s apart
    assert (board.flash_dir / "autorun.json").exists()


def test_autorun_survives_a_reset_and_goes_off(board, servers):
    port = servers.hsmtls()
    with HostLink(board.tty) as link:
        link.connect()
        assert Bridge(link, ("127.0.0.1", port)).set_autorun({"server_name": "localhost"}) == {
            "server_name": "localhost"}
    board.reset()
    with HostLink(board.tty) as link:
        link.connect()
        bridge = Bridge(link, ("127.0.0.1", port))
        results = serve_until(bridge, 1, 20)
        assert len(results) == 1 and results[0]["ok"] and results[0]["autorun"] == 1, results
        # once a boot: no second one
        assert serve_until(bridge, 1, 1.5) == []
        assert bridge.set_autorun(None) is None
    assert not (board.flash_dir / "autorun.json").exists()
    board.reset()
    with HostLink(board.tty) as link:
        link.connect()
        assert serve_until(Bridge(link, ("127.0.0.1", port)), 1, 1.5) == []


def test_autorun_refuses_what_it_cannot_keep(board):
    with HostLink(board.tty) as link:
        link.connect()
        bridge = Bridge(link, ("127.0.0.1", 1))
        with pytest.raises(BoardFailure, match="every_s must be a whole number"):
            bridge.set_autorun({"server_name": "localhost", "every_s": -1})
        with pytest.raises(BoardFailure, match="every_s must be a whole number"):
            bridge.set_autorun({"server_name": "localhost", "every_s": "often"})
        with pytest.raises(BoardFailure, match="every_s must be at most 500000"):
            bridge.set_autorun({"server_name": "localhost", "every_s": 7 * 86400})
        assert bridge.set_autorun(None) is None


def test_a_bad_autorun_file_is_reported_to_each_host(board):
    (board.flash_dir / "autorun.json").write_text("{not json")
    board.reset()
    for _ in range(2):
        with HostLink(board.tty) as link:
            link.connect()
            bridge = Bridge(link, ("127.0.0.1", 1))
            bridge.send_time()
            end = time.monotonic() + 5.0
            while time.monotonic() < end and not bridge.errors:
                assert bridge.step(0.05) == []  # and no session starts
            assert [e.get("where") for e in bridge.errors] == ["autorun.json"], bridge.errors
            assert bridge.errors[0]["reason"].startswith("autorun.json ignored"), bridge.errors
    with HostLink(board.tty) as link:
        link.connect()
        bridge = Bridge(link, ("127.0.0.1", 1))
        bridge.errors = []
        assert bridge.set_autorun(None) is None  # replaced (here: removed): no more complaints
    with HostLink(board.tty) as link:
        link.connect()
        bridge = Bridge(link, ("127.0.0.1", 1))
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            bridge.step(0.05)
        assert bridge.errors == []


def test_cli_autorun_and_bridge(board, servers):
    port = servers.hsmtls()
    out = subprocess.run([sys.executable, "-m", "hsmtls", "board", "autorun", "--port", board.tty,
                          "--server-name", "localhost", "--every", "1", "--send", "ping\\n"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "autorun: the board starts a session to localhost every 1 s" in out.stdout
    bridge = subprocess.Popen([sys.executable, "-m", "hsmtls", "bridge", "--port", board.tty,
                               "--to", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    lines: list[str] = []
    try:
        assert bridge.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("autorun: session #2" in x for x in lines):
            line = bridge.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
    finally:
        bridge.terminate()
        bridge.wait(10)
    text = "\n".join(lines)
    assert lines[0].startswith("board: "), text
    assert text.count("result: ok") >= 2 and "autorun: session #1 the board started on its own" in text, text
    assert "received: ping" in text, text
    out = subprocess.run([sys.executable, "-m", "hsmtls", "board", "autorun", "--port", board.tty, "--off"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "autorun: off" in out.stdout, out.stdout + out.stderr
    out = subprocess.run([sys.executable, "-m", "hsmtls", "board", "autorun", "--port", board.tty],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "--server-name is required" in out.stdout + out.stderr


def test_serve_gives_the_board_the_time_again(board):
    # the board's clock is the last TIME plus its ms ticks, whose differences wrap after
    # 2^29 ms on an ESP32: a bridge left running sends the time again (hourly by default)
    with HostLink(board.tty) as link:
        link.connect()
        bridge = Bridge(link, ("127.0.0.1", 1))
        sent: list[float] = []
        send_time = bridge.send_time

        def counting() -> None:
            sent.append(time.monotonic())
            send_time()

        bridge.send_time = counting  # type: ignore[method-assign]
        end = time.monotonic() + 1.5
        bridge.serve(until=lambda: time.monotonic() > end, time_every=0.25)
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    # again and again, but not more often than asked (a loaded machine only stretches it)
    assert len(sent) >= 3 and min(gaps) >= 0.24, gaps


def test_a_host_run_on_a_board_with_autorun_gets_its_own_result(board, servers):
    # the host's RUN ends a session the board started on its own; that one's RESULT
    # (autorun: n) comes first and is not the one run_handshake returns
    port = servers.hsmtls()
    with HostLink(board.tty) as link:
        link.connect()
        bridge = Bridge(link, ("127.0.0.1", port))
        bridge.set_autorun({"server_name": "localhost", "every_s": 1})
        bridge.send_time()
        deadline = time.monotonic() + 10
        while bridge.sock is None and time.monotonic() < deadline:
            bridge.step(0.01)  # until the board's own session has its TCP connection
        assert bridge.sock is not None
        r = bridge.run_handshake({"server_name": "localhost", "send": "mine\n"}, timeout=30)
        assert r["ok"] and not r.get("autorun") and r["received"] == "mine\n", r
        bridge.set_autorun(None)


def test_a_second_program_on_the_port_is_told_it_is_busy(board):
    # `hsmtls bridge` holds the port while it carries the board's sessions; a second
    # host (`hsmtls board handshake`, another bridge) must not interleave its bytes
    from hsmtls.board.hostlink import LinkError

    with HostLink(board.tty) as link:
        link.connect()
        with pytest.raises(LinkError, match="is busy: close the program using it"):
            HostLink(board.tty)
    with HostLink(board.tty) as link:  # free again once the first closed it
        link.connect()
