"""The fast paths that cut the board's handshake compute, checked where they can break:
the viper GHASH table against the portable one, AES-GCM at the edges of the first
keystream call (which also makes the tag mask), the HMAC padded-key cache when a key
changes in place, and record fragments handed out as views of the receive buffer.
Plus one loose guard that a GCM key's setup stays cheap next to GHASH itself."""

from __future__ import annotations

import hmac
import random

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tlscore import record
from tlscore.constants import APPLICATION_DATA, HANDSHAKE

from support.mp_run import requires_micropython, run_mp

H = bytes.fromhex


def _parse(out):
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.mark.micropython
@requires_micropython
def test_viper_table_matches_portable_table():
    script = """
import os
from tlscore import ghash
keys = [bytes(16), b"\\xff" * 16, b"\\x80" + bytes(15), bytes(15) + b"\\x01"]
keys += [os.urandom(16) for _ in range(200)]
ok = True
for h in keys:
    words = []
    for v in ghash._table(h):
        words += [v >> 96, (v >> 64) & 0xFFFFFFFF, (v >> 32) & 0xFFFFFFFF, v & 0xFFFFFFFF]
    ok = ok and list(ghash.GHash(h)._tab) == words + list(ghash._LAST4)
print("viper=%s" % ghash.HAVE_VIPER)
print("same=%s" % ok)
"""
    got = _parse(run_mp(script))
    assert got == {"viper": "True", "same": "True"}


# the first ECB call covers J0 and 1008 data bytes, later ones 1024
GCM_EDGES = [1007, 1008, 1009, 2031, 2032, 2033, 3056, 3057]


@pytest.mark.micropython
@requires_micropython
def test_gcm_across_the_first_keystream_call():
    rng = random.Random(0x1008)
    cases = [
        (
            rng.randbytes(16).hex(),
            rng.randbytes(12).hex(),
            rng.randbytes(13).hex(),
            rng.randbytes(n).hex(),
        )
        for n in GCM_EDGES
    ]
    script = "from tlscore.backend_micropython import BACKEND as B\nH = bytes.fromhex\nC = %r\n" % (
        cases,
    )
    script += """
for i, (k, n, a, p) in enumerate(C):
    g = B.aes_gcm(H(k))
    ct = g.seal(H(n), H(p), H(a))
    print("ct%d=%s" % (i, ct.hex()))
    print("back%d=%s" % (i, g.open(H(n), ct, H(a)) == H(p)))
"""
    got = _parse(run_mp(script))
    for i, (k, n, a, p) in enumerate(cases):
        assert got["ct%d" % i] == AESGCM(H(k)).encrypt(H(n), H(p), H(a)).hex(), GCM_EDGES[i]
        assert got["back%d" % i] == "True", GCM_EDGES[i]


@pytest.mark.micropython
@requires_micropython
def test_hmac_cache_follows_keys_that_change_in_place():
    # the cache finds a key by identity: a bytearray changed in place must not hit
    script = """
from tlscore.backend_micropython import BACKEND as B
k = bytearray(b"k" * 48)
print("a=%s" % B.hmac("sha256", k, b"x").hex())
k[0] ^= 1
print("b=%s" % B.hmac("sha256", k, b"x").hex())
s = bytes(k)
print("c=%s" % B.hmac("sha256", s, b"x").hex())
print("d=%s" % B.hmac("sha1", s, b"x").hex())
"""
    got = _parse(run_mp(script))
    k = bytearray(b"k" * 48)
    assert got["a"] == hmac.new(bytes(k), b"x", "sha256").hexdigest()
    k[0] ^= 1
    assert got["b"] == hmac.new(bytes(k), b"x", "sha256").hexdigest()
    assert got["c"] == got["b"]
    assert got["d"] == hmac.new(bytes(k), b"x", "sha1").hexdigest()


def test_record_fragment_views_survive_the_records_after_them():
    # next_record() returns a view into the receive buffer, valid until the next
    # feed(): the engine reads every record of one feed before it takes more bytes,
    # and copies what it keeps (tests/unit/test_record_buffer.py has the rest)
    rl = record.RecordLayer()
    wire = bytes(rl.write(HANDSHAKE, b"A" * 300)) + bytes(rl.write(APPLICATION_DATA, b"B" * 20))
    rr = record.RecordLayer(bytearray(400))
    rr.feed(wire[:310])
    first = rr.next_record()
    assert (first[0], bytes(first[1])) == (HANDSHAKE, b"A" * 300)
    rr.feed(wire[310:] + bytes(rl.write(HANDSHAKE, b"C" * 7)))
    second = rr.next_record()
    third = rr.next_record()
    assert rr.next_record() is None
    assert (second[0], bytes(second[1])) == (APPLICATION_DATA, b"B" * 20)
    assert (third[0], bytes(third[1])) == (HANDSHAKE, b"C" * 7)


@pytest.mark.micropython
@requires_micropython
def test_gcm_key_setup_is_cheap_next_to_ghash():
    # Two keys are set up per handshake. Building the GHASH table in Python cost
    # about as much as GHASH over 1 KiB; in viper it is a small fraction of it. A
    # ratio on one machine, best of many runs, so load on CI does not decide it.
    script = """
import time
from tlscore import ghash
h = bytes(range(16)); kib = bytes(1024); g = ghash.GHash(h)
def best(f, n):
    b = None
    for _ in range(30):
        t = time.ticks_us()
        for _ in range(n):
            f()
        d = time.ticks_diff(time.ticks_us(), t)
        b = d if b is None or d < b else b
    return b / n
print("setup=%f" % best(lambda: ghash.GHash(h), 50))
print("kib=%f" % best(lambda: g.digest(b"", kib), 20))
"""
    got = _parse(run_mp(script))
    assert float(got["setup"]) < float(got["kib"]) / 4, got


# Bytes a call allocates (and so leaves for the collector), counted with the collector
# off: exact on one interpreter, not a timing. Part of the scripts below.
GARBAGE = """
import gc
def garbage(f):
    f()
    gc.collect(); gc.disable()
    a = gc.mem_alloc(); f(); b = gc.mem_alloc()
    gc.enable()
    return b - a
"""


@pytest.mark.micropython
@requires_micropython
def test_cold_path_garbage_stays_small():
    # What a cold handshake's certificate step and premaster encryption leave for the
    # collector: on a board every KB of garbage brings a collection of the whole heap
    # nearer (milliseconds on an ESP32). Loose budgets against what they were: 24 KB
    # to parse a 2048-bit certificate (a dotted string per OID, 5.6 KB to count a
    # modulus' bytes), 11 KB to encrypt a premaster. Bytes allocated are counted with
    # the collector off, so this is exact, not a timing.
    import datetime

    from cryptography import x509 as cx
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = cx.Name([cx.NameAttribute(NameOID.COMMON_NAME, "localhost"), cx.NameAttribute(NameOID.ORGANIZATION_NAME, "t")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (cx.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(cx.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(cx.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
            .add_extension(cx.ExtendedKeyUsage([cx.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(cx.SubjectAlternativeName([cx.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    script = GARBAGE + "DER = bytes.fromhex(%r)\n" % cert.public_bytes(serialization.Encoding.DER).hex()
    script += """
from tlscore import pkcs1, x509
from tlscore.backend_micropython import BACKEND
c = x509.parse_certificate(DER)
n, e = c.public_key.n, c.public_key.e
print("parse=%d" % garbage(lambda: x509.parse_certificate(DER)))
print("byte_length=%d" % garbage(lambda: pkcs1.byte_length(n)))
print("encrypt=%d" % garbage(lambda: pkcs1.encrypt(BACKEND, n, e, bytes(48))))
"""
    got = {k: int(v) for k, v in _parse(run_mp(script)).items()}
    print(got)
    assert got["parse"] < 18_000, got
    assert got["byte_length"] < 2_500, got
    assert got["encrypt"] < 8_000, got


@pytest.mark.micropython
@requires_micropython
def test_link_garbage_stays_small():
    # The serial link carries every TLS byte: 2.5 KB (a server's first flight) used to
    # leave 31 KB of garbage on the way in (slices, a growing bytearray, the decoded
    # copy per frame) and as much on the way out. Frames are now gathered, decoded and
    # encoded in place; what is handed out, each payload, is still a copy.
    script = GARBAGE + """
import os
from hsmlink.link import Link
from hsmlink import protocol as P
data = os.urandom(2500)
tx = Link(window=100000)
tx.send(P.TLS, data)
wire = tx.output(0)
chunks = [bytearray(wire[i:i + 256]) for i in range(0, len(wire), 256)]
rx = Link()
got = []
def receive():
    rx.reset()
    del got[:]
    for c in chunks:
        for f in rx.receive(c, 0, len(c)):
            got.append(f)
def send():
    tx.reset()
    tx.send(P.TLS, data)
    tx.output(0)
print("receive=%d" % garbage(receive))
print("send=%d" % garbage(send))
print("same=%d" % (b"".join(p for _, p in got) == data))
"""
    got = {k: int(v) for k, v in _parse(run_mp(script)).items()}
    print(got)
    assert got["same"] == 1
    assert got["receive"] < 14_000, got
    assert got["send"] < 18_000, got
