# The link layer checked the same way under CPython and MicroPython: COBS round trips,
# frames dropped for bad CRC / COBS / size, resynchronisation after noise, and two Link
# ends over a seeded lossy channel delivering every frame once, in order. Prints
# `name=value` lines; the pytest side compares them.

import random

from hsmlink import protocol as P
from hsmlink.framing import (
    MAX_PAYLOAD,
    Decoder,
    cobs_decode,
    cobs_encode,
    encode_frame,
    wire_length,
)
from hsmlink.link import Link

random.seed(5)


def rbytes(n):
    return bytes([random.getrandbits(8) for _ in range(n)])


ok = 0
for n in (0, 1, 2, 253, 254, 255, 256, 300, 600):
    for _ in range(5):
        d = rbytes(n)
        if n > 3:
            d = d[:3] + b"\x00" + d[4:]
        e = cobs_encode(d)
        assert bytes(e).find(b"\x00") < 0
        assert bytes(cobs_decode(e)) == d
        ok += 1
print("cobs_ok=%d" % ok)

dec = Decoder()
f = encode_frame(P.TLS, 3, 4, b"hello")
bad = bytearray(f)
bad[4] ^= 1
out = dec.feed(b"\x01\x02garbage\x00" + bytes(bad) + f + b"\x07" * 600 + b"\x00" + f[:5] + b"\x00" + f)
print("frames=%d" % len(out))
print("first=%d,%d,%d,%s" % (out[0][0], out[0][1], out[0][2], out[0][3].decode()))
c = dec.counters()
print("dropped=%d" % (c["bad_crc"] + c["bad_cobs"] + c["oversized"] + c["runts"]))
print("oversized=%d" % c["oversized"])

# the link's window counts wire_length() for a frame it has not encoded yet
same = True
for n in list(range(0, 12)) + [99, MAX_PAYLOAD - 1, MAX_PAYLOAD]:
    for zeros in (False, True):
        pl = bytes(n) if zeros else rbytes(n)
        same = same and len(encode_frame(P.TLS, n & 255, 255, pl)) == wire_length(n)
print("wire_length_ok=%d" % same)
# a read buffer is decoded up to n: what lies beyond (an earlier, longer read) is not
buf = bytearray(f + f[:6] + b"\x00")
print("feed_n=%d" % len(Decoder().feed(buf, len(f))))


def lossy(data, p):
    # drop or corrupt whole frames with probability p
    out = bytearray()
    start = 0
    while True:
        z = data.find(b"\x00", start)
        if z < 0:
            break
        fr = bytearray(data[start : z + 1])
        start = z + 1
        r = random.getrandbits(8) / 256
        if r < p:
            continue
        if r < 2 * p and len(fr) > 2:
            fr[1] ^= 0x10
        out += fr
    return bytes(out)


a = Link(window=210, rto=20)
b = Link(window=1024, rto=20)
sent_a = [rbytes(random.getrandbits(8) % 190) for _ in range(40)]
sent_b = [rbytes(random.getrandbits(9)) for _ in range(30)]
for m in sent_a:
    a.send(P.TLS, m)
for m in sent_b:
    b.send(P.RESULT, m)  # control frames: long ones are split and joined
got_a, got_b = [], []
t = 0
while t < 20000 and (len(got_b) < len(sent_a) or len(got_a) < len(sent_b)):
    t += 5
    for _ftype, payload in b.receive(lossy(a.output(t), 0.1), t):
        got_b.append(payload)
        assert a.in_flight <= 210
    for _ftype, payload in a.receive(lossy(b.output(t), 0.1), t):
        got_a.append(payload)
print("a_to_b_ok=%d" % (b"".join(got_b) == b"".join(sent_a)))
print("b_to_a_ok=%d" % (got_a == sent_b))
print("max_in_flight_ok=%d" % (a.max_in_flight <= 210))
print("retransmitted=%d" % (a.retransmits > 0 and b.retransmits > 0))

# A PING whose PONG is lost after the data it asked about was acknowledged anyway
# (the frame was only late) must not hold back what is sent next.
a = Link(window=210, rto=20)
b = Link(window=1024, rto=20)
a.send(P.TLS, b"late")
late = a.output(0)
a.output(30)  # no progress for rto: a PING goes out, and is lost
b.receive(late, 31)
a.receive(b.output(32), 32)  # b's ACK arrives: nothing is unacknowledged
a.send(P.TLS, b"next")
got = b.receive(a.output(33), 33)
print("pong_lost_ok=%d" % (got == [(P.TLS, b"next")]))

# A peer busy for 10 s (an RSA key made on a slow board) reads nothing: the PINGs asking
# about the unacknowledged frame come ever less often (after 150, 450, 1050, 2250, 4650
# and 9450 ms), not every 2 rto into its 260-byte ring; then the PONG, and all is sent.
a = Link(window=210, rto=150)
b = Link(window=1024, rto=150)
a.send(P.TLS, b"busy")
backlog = a.output(0)
for t in range(10, 10001, 10):
    backlog += a.output(t)
got = b.receive(backlog, 10001)
a.receive(b.output(10002), 10002)
print("busy_peer_pings=%d" % a.pings)
print("busy_peer_ok=%d" % (got == [(P.TLS, b"busy")] and a.idle))
print("done")
