"""The host's end of the board link (hostlink.HostSideLink): bare ACKs held back so
that they do not fill a busy board's 260-byte UART ring."""

from __future__ import annotations

import hsmtls.board  # noqa: F401  (makes hsmlink importable on the host)
from hsmlink import protocol as P
from hsmlink.link import Link
from hsmtls.board.hostlink import HostSideLink


def test_bursts_from_a_busy_board_get_one_ack_not_one_each():
    # the board's window of 200-byte frames (four), each its own burst 2 ms apart (a
    # slow board): one bare ACK once half the board's window has arrived, one after
    # the delay; the old host sent one each, and five of them (45 bytes) once filled
    # the 50 bytes its window leaves free of the ring
    board = Link(window=1024, rto=150)
    host = HostSideLink(window=210, rto=150)
    for _ in range(5):
        board.send(P.TLS, bytes(200))
    wire = board.output(0)
    frames = [f + b"\0" for f in wire.split(b"\0")[:-1]]
    assert len(frames) == 4
    acks = 0
    for i, f in enumerate(frames):
        host.receive(f, 2 * i)
        acks += len(host.output(2 * i)) // 9
    assert acks == 1  # the 512 bytes
    assert host.output(12) == b""  # the last one waits...
    ack = host.output(27)  # ...ACK_DELAY_MS
    assert len(ack) == 9 and board.receive(ack, 27) == [] and host.output(40) == b""
    assert not board.unacked and len(board.output(28)) == 209  # the fifth frame, in the window again


def test_a_frame_going_out_carries_the_ack_at_once():
    board = Link(window=1024, rto=150)
    host = HostSideLink(window=210, rto=150)
    board.send(P.TLS, b"hello")
    host.receive(board.output(0), 0)
    assert host.output(1) == b""  # held back
    host.send(P.TLS, b"answer")
    out = host.output(2)
    assert out and board.receive(out, 2) == [(P.TLS, b"answer")] and board.idle
