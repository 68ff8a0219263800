"""hsmlink (the board link) under CPython and under MicroPython: the same checks."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from support.mp_run import requires_micropython, run_mp

HERE = Path(__file__).resolve().parent

CHECK = HERE / "link_check.py"
EXPECTED = {
    "cobs_ok": "45",
    "frames": "2",
    "first": "20,3,4,hello",
    "dropped": "4",
    "oversized": "1",
    "wire_length_ok": "1",
    "feed_n": "1",
    "a_to_b_ok": "1",
    "b_to_a_ok": "1",
    "max_in_flight_ok": "1",
    "retransmitted": "1",
    "pong_lost_ok": "1",
    "busy_peer_pings": "6",
    "busy_peer_ok": "1",
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


@pytest.mark.micropython
@requires_micropython
def test_link_out_of_memory_loses_no_frame():
    # A 20 KB control payload arrives in pieces; when its last piece comes, the heap has
    # no block for the joined payload. The link must not count that frame as received:
    # nothing is delivered, the frame is not acknowledged, and once memory is back the
    # sender's PING/PONG resends it and the payload arrives once, whole.
    script = """
import gc
from hsmlink import protocol as P
from hsmlink.link import Link
N = 20000
a = Link(window=100000, rto=150)
b = Link(window=100000, rto=150)
a.send(P.RUN, bytes(range(256)) * (N // 256) + bytes(N % 256))
wire = a.output(0)
frames = []
start = 0
while start < len(wire):
    z = wire.find(b"\\x00", start)
    frames.append(wire[start : z + 1])
    start = z + 1
wire = None
got = []
for f in frames[:-1]:
    got += b.receive(f, 0)
a.receive(b.output(0), 0)
print("pieces_delivered=%d" % len(got))
gc.collect()
hog = []
try:
    while True:
        hog.append(bytearray(1024))
except MemoryError:
    pass
for _ in range(8):
    hog.pop()  # room for small objects, none for 20 KB
got += b.receive(frames[-1], 0)
print("after_oom=%d,%d,%s" % (len(got), b.rx_out_of_memory, b.rx_expected == len(frames) - 1))
hog = None
gc.collect()
now = 0
for _ in range(10):
    now += 200
    out = a.output(now)
    if out:
        got += b.receive(out, now)
    back = b.output(now)
    if back:
        a.receive(back, now)
    if got:
        break
expected = bytes(range(256)) * (N // 256) + bytes(N % 256)
print("delivered=%d,%s,%s" % (len(got), got[0][0] == P.RUN, got[0][1] == expected))
print("idle=%s" % a.idle)
"""
    got = _parse(run_mp(script, heapsize="512k"))
    assert got["pieces_delivered"] == "0"
    assert got["after_oom"] == "0,1,True"
    assert got["delivered"] == "1,True,True"
    assert got["idle"] == "True"
