"""The serial link under faults, through a seeded fault proxy on the serial path (the
emulator's relay): drops, delays, duplicates, corruption, noise bursts, oversized
frames, a host that disconnects and a board that resets mid-handshake. Each case
checks that both sides report what happened and that the next handshake succeeds.
The emulated 260-byte UART ring stays armed throughout: retransmissions must not
overrun it either. The firmware is precompiled (mpy=True), as deployed: compiled on the
board, its sources intern some 180 more names, and loading the RSA key for client
authentication then takes a seventh qstr pool (14 KB) that a 256 KiB heap in pieces
does not always have.
"""

from __future__ import annotations

import time

import pytest

from hsmlink import protocol as P
from hsmtls.board.bridge import BoardFailure, Bridge
from hsmtls.board.emulator import EmulatedBoard
from hsmtls.board.faults import Faults
from hsmtls.board.hostlink import HostLink

from support.hil import requires_emulator

pytestmark = [pytest.mark.micropython, requires_emulator]

OPTS = {"server_name": "localhost", "send": "ping"}

CASES = {
    "drop": dict(drop=0.08),
    "delay": dict(delay=0.2, delay_ms=(5, 200)),
    "duplicate": dict(duplicate=0.2),
    "corrupt": dict(corrupt=0.08),
    "noise": dict(noise=0.2),
    "oversized": dict(oversized=0.1),
    "everything": dict(drop=0.04, corrupt=0.04, duplicate=0.05, delay=0.05, noise=0.05, oversized=0.03),
}


def _handshake(board, port, opts=OPTS, timeout=60):
    with HostLink(board.tty) as link:
        link.connect(timeout=10)
        bridge = Bridge(link, ("127.0.0.1", port))
        r = bridge.run_handshake(dict(opts), timeout=timeout)
        stats = bridge.stats()
        return r, stats, link.link.counters()


MATRIX = [
    pytest.param(case, seed, marks=() if (case, seed) == ("everything", 1) else pytest.mark.slow)
    for case in sorted(CASES)
    for seed in (1, 2)
]


@pytest.mark.parametrize("case,seed", MATRIX)
def test_handshake_through_faults_then_clean(case, seed, servers, flash_dir):
    port = servers.hsmtls(client_auth=True)
    to_board = Faults(seed=seed, **CASES[case])
    to_host = Faults(seed=seed + 100, **CASES[case])
    with EmulatedBoard(flash_dir, heap="256k", mpy=True, to_board=to_board, to_host=to_host) as b:
        r, board_stats, host_counters = _handshake(b, port, dict(OPTS, client_auth=True))
        injected = {k: to_board.counts.get(k, 0) + to_host.counts.get(k, 0) for k in set(to_board.counts) | set(to_host.counts)}
        print(case, seed, "injected", injected, "board", board_stats, "host", host_counters)
        assert injected, "the seed injected nothing: pick another"
        # the link recovers: the session itself survives these faults
        assert r["ok"], r
        assert r["received"] == "ping"
        lost = (
            board_stats["bad_crc"] + board_stats["bad_cobs"] + board_stats["oversized"] + board_stats["runts"]
            + host_counters["bad_crc"] + host_counters["bad_cobs"] + host_counters["oversized"] + host_counters["runts"]
        )
        if case in ("corrupt", "noise", "oversized"):
            assert lost > 0  # and both sides counted what they dropped
        if case in ("drop", "corrupt"):
            assert board_stats["retransmits"] + host_counters["retransmits"] > 0
        if case == "duplicate":
            assert board_stats["duplicates"] + host_counters["duplicates"] > 0
        if case in ("drop", "delay", "corrupt"):
            # faults that add no bytes: our own retransmissions must fit the ring
            assert b.rx_dropped == 0, "retransmissions overran the 260-byte UART ring"
        # (duplicates, noise and oversized frames add bytes the ring then drops,
        # which the link survives as more losses)
        # the next handshake, on a clean path, succeeds
        b.to_board = b.to_host = None
        r2, _, _ = _handshake(b, port, dict(OPTS, client_auth=True))
        assert r2["ok"], (r2.get("reason"), r2)


def test_host_disconnects_mid_handshake(servers, flash_dir):
    port = servers.hsmtls(client_auth=True)
    with EmulatedBoard(flash_dir, heap="256k", mpy=True) as b:
        link = HostLink(b.tty)
        link.connect()
        bridge = Bridge(link, ("127.0.0.1", port))
        bridge.send_time()
        link.send(P.RUN, dict(OPTS, client_auth=True))
        deadline = time.monotonic() + 10
        while bridge.tcp_bytes[1] == 0 and time.monotonic() < deadline:
            bridge.step(0.01)  # until the server's first flight is on its way
        assert bridge.tcp_bytes[1] > 0
        bridge._close_tcp()
        link.close()  # the host goes away mid-handshake
        time.sleep(0.2)
        assert b.alive
        # a new host: the board drops the orphaned session, says so, and works
        with HostLink(b.tty) as link2:
            hello = link2.connect()
            assert hello["aborted"] == 1
            r = Bridge(link2, ("127.0.0.1", port)).run_handshake(dict(OPTS, client_auth=True), timeout=30)
            assert r["ok"], r


def test_board_resets_mid_handshake(servers, flash_dir):
    port = servers.hsmtls(client_auth=True)
    with EmulatedBoard(flash_dir, heap="256k", mpy=True) as b:
        with HostLink(b.tty) as link:
            link.connect()
            bridge = Bridge(link, ("127.0.0.1", port))
            bridge.send_time()
            link.send(P.RUN, dict(OPTS, client_auth=True))
            deadline = time.monotonic() + 10
            while bridge.tcp_bytes[1] == 0 and time.monotonic() < deadline:
                bridge.step(0.01)
            b.reset()
            with pytest.raises(BoardFailure, match="restarted"):
                while time.monotonic() < deadline:
                    bridge.step(0.01)
            assert link.board_resets == 1
            assert bridge.sock is None  # the TCP side was closed with it
            link.connect()
            r = bridge.run_handshake(dict(OPTS, client_auth=True), timeout=30)
            assert r["ok"], r


def test_garbage_only_never_crashes_the_board(flash_dir):
    import os
    import random

    rng = random.Random(7)
    with EmulatedBoard(flash_dir, heap="256k", mpy=True) as b:
        fd = os.open(b.tty, os.O_RDWR | os.O_NOCTTY)
        try:
            for _ in range(20):
                os.write(fd, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))))
                time.sleep(0.01)
        finally:
            os.close(fd)
        with HostLink(b.tty) as link:
            link.connect()
            stats = Bridge(link, ("127.0.0.1", 1)).stats()
            assert stats["bad_crc"] + stats["bad_cobs"] + stats["oversized"] + stats["runts"] > 0
            assert b.alive


@pytest.mark.parametrize("ring,window", [(260, 210), (None, 8192)])
def test_host_window_follows_the_board_hello(ring, window, servers, flash_dir):
    # a board that drops what overflows its ring asks for a small window; one whose
    # port holds the host back (a pty, native USB) for a wide one, and the handshake
    # then runs with more than a ring's worth in flight without losing a byte
    port = servers.hsmtls()
    with EmulatedBoard(flash_dir, heap="256k", mpy=True, rx_ring=ring) as b, HostLink(b.tty) as link:
        hello = link.connect(timeout=10)
        assert hello["rx_window"] == window
        assert link.link.window == window
        r = Bridge(link, ("127.0.0.1", port)).run_handshake(dict(OPTS), timeout=60)
        assert r["ok"], r
        assert r["handshake_us"] > 0
        assert b.rx_dropped == 0
        assert (link.link.max_in_flight > 260) == (ring is None)


@pytest.mark.slow
@pytest.mark.interop
def test_micropython_tls_on_the_board_through_faults(servers, flash_dir):
    # the benchmark's yardstick (MicroPython's tls inside the firmware, blocked in its
    # own read while the link runs underneath) survives the same faults as ours
    port = servers.openssl()
    faults = CASES["everything"]
    to_board, to_host = Faults(seed=3, **faults), Faults(seed=103, **faults)
    with EmulatedBoard(flash_dir, heap="256k", mpy=True, to_board=to_board, to_host=to_host) as b:
        r, board_stats, host_counters = _handshake(b, port, {"engine": "mbedtls", "server_name": "localhost"})
        assert to_board.counts or to_host.counts, "the seed injected nothing: pick another"
        assert r["ok"], r
        b.to_board = b.to_host = None
        r, _, _ = _handshake(b, port, {"server_name": "localhost"})  # s_server echoes nothing
        assert r["ok"], (r.get("reason"), r)


@pytest.mark.interop
def test_host_disconnects_while_micropython_tls_waits(servers, flash_dir):
    # mbedTLS is inside its blocking read when the host goes; the new host's SYNC,
    # taken by that read's own link turn, ends the session and the board goes on
    port = servers.openssl()
    with EmulatedBoard(flash_dir, heap="256k", mpy=True) as b:
        link = HostLink(b.tty)
        link.connect()
        bridge = Bridge(link, ("127.0.0.1", port))
        bridge.send_time()
        link.send(P.RUN, {"engine": "mbedtls", "server_name": "localhost"})
        deadline = time.monotonic() + 10
        while bridge.tcp_bytes[0] == 0 and time.monotonic() < deadline:
            bridge.step(0.01)  # until the board's ClientHello has gone out
        assert bridge.tcp_bytes[0] > 0
        bridge._close_tcp()
        link.close()
        time.sleep(0.2)
        assert b.alive
        with HostLink(b.tty) as link2:
            hello = link2.connect()
            assert hello["aborted"] == 1
            r = Bridge(link2, ("127.0.0.1", port)).run_handshake({"server_name": "localhost"}, timeout=30)
            assert r["ok"], r
