"""tlscore.p256 and the board's ECDSA key under the MicroPython unix port: scalar
multiplication and public keys against `cryptography`, signatures made there and
verified here, the board's key file, its sliced nonce preparation and its CSR, within
a small heap. Timings are printed by the interpreter for the record (-s shows them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from support.mp_run import requires_micropython, run_mp

pytestmark = [pytest.mark.micropython, requires_micropython]

N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
VERIFY = (Path(__file__).resolve().parent / "scripts" / "p256_verify.py").read_text()


def _parse(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_p256_on_the_unix_port():
    ks = [1, 3, N - 1, N - 3, 1 << 200] + [int.from_bytes(os.urandom(32), "big") % N for _ in range(6)]
    d = int.from_bytes(os.urandom(32), "big") % N
    msgs = [os.urandom(i * 11) for i in range(6)]
    script = """
import time
from tlscore import p256
from tlscore.backend_micropython import BACKEND as B
import os
KS = %r
D = %r
MSGS = %r
for i, k in enumerate(KS):
    x, y = p256.mul_base(k, os.urandom(32))
    print("mul%%d=%%x,%%x" %% (i, x, y))
q = p256.public_key(D, B)
print("pub=" + p256.encode_point(q).hex())
for i, m in enumerate(MSGS):
    pair = p256.presign(B, D, b"%%d" %% i)
    r, s = p256.sign_digest(D, B.hash("sha256", m), pair)
    print("sig%%d=" %% i + p256.der_signature(r, s).hex())
t = time.ticks_us()
for _ in range(5):
    p256.presign(B, D)
print("presign_us=%%d" %% (time.ticks_diff(time.ticks_us(), t) // 5))
""" % (ks, d, msgs)
    got = _parse(run_mp(script, heapsize="96k"))
    for i, k in enumerate(ks):
        pub = ec.derive_private_key(k, ec.SECP256R1()).public_key().public_numbers()
        assert got["mul%d" % i] == "%x,%x" % (pub.x, pub.y)
    key = ec.derive_private_key(d, ec.SECP256R1()).public_key()
    assert bytes.fromhex(got["pub"]) == key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    rs = set()
    for i, m in enumerate(msgs):
        sig = bytes.fromhex(got["sig%d" % i])
        key.verify(sig, m, ec.ECDSA(hashes.SHA256()))
        rs.add(utils.decode_dss_signature(sig)[0])
    assert len(rs) == len(msgs)
    print("unix port: presign %s us" % got["presign_us"])


def test_what_verifying_on_the_board_would_cost():
    # Why the board does not verify its own signatures: even with its public key's
    # comb table made once, a verification is two scalar multiplications, about twice
    # the idle-time preparation and hundreds of times the online signing step.
    key = ec.generate_private_key(ec.SECP256R1())
    n = key.public_key().public_numbers()
    msg = b"transcript"
    r, s = utils.decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
    script = VERIFY + """
import time, hashlib
Q = (%d, %d)
z = hashlib.sha256(%r).digest()
t = time.ticks_us(); table = comb_table(Q); print("table_us=%%d" %% time.ticks_diff(time.ticks_us(), t))
t = time.ticks_us(); ok = verify_digest(Q, z, %d, %d, os.urandom(32), table)
print("verify_us=%%d" %% time.ticks_diff(time.ticks_us(), t))
print("ok=%%d" %% ok)
print("bad=%%d" %% verify_digest(Q, z, %d, %d + 1, os.urandom(32), table))
""" % (n.x, n.y, msg, r, s, r, s)
    got = _parse(run_mp("import os\n" + script))
    assert got["ok"] == "1" and got["bad"] == "0"
    print("unix port: verify %(verify_us)s us with a precomputed table for Q (table %(table_us)s us)" % got)


def test_board_ec_key_keygen_csr_and_signing():
    script = """
import time, os
from boardapp import key as boardkey, keygen as boardgen
from tlscore.backend_micropython import BACKEND as B
t = time.ticks_us()
steps = 0
key = None
for key in boardgen.keygen_ec():
    if key is None:
        steps += 1
print("keygen_us=%d" % time.ticks_diff(time.ticks_us(), t))
print("keygen_steps=%d" % steps)
with open("client.key", "w") as f:
    f.write(boardgen.key_text(key))
print("csr=" + boardgen.csr(key, B, [("CN", "mp board"), ("O", "hsmtls")]).hex())
k = boardkey.load("client.key")
print("kind=" + k.kind)
slices = 0
t = time.ticks_us()
while not k.prepare_step(B):
    slices += 1
print("prepare_us=%d" % time.ticks_diff(time.ticks_us(), t))
print("slices=%d" % slices)
t = time.ticks_us()
sig = k.sign(B, "sha256", b"transcript one")
print("online_us=%d" % time.ticks_diff(time.ticks_us(), t))
print("sig1=" + sig.hex())
print("ready_after=%d" % k.ready)
t = time.ticks_us()
sig = k.sign(B, "sha256", b"transcript two")
print("cold_us=%d" % time.ticks_diff(time.ticks_us(), t))
print("sig2=" + sig.hex())
print("boots=" + open("client.key.boots").read().strip())
"""
    got = _parse(run_mp(script, heapsize="96k"))
    csr = x509.load_der_x509_csr(bytes.fromhex(got["csr"]))
    assert csr.is_signature_valid
    pub = csr.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    assert got["kind"] == "ec" and int(got["slices"]) >= 3 and int(got["keygen_steps"]) >= 3
    pub.verify(bytes.fromhex(got["sig1"]), b"transcript one", ec.ECDSA(hashes.SHA256()))
    pub.verify(bytes.fromhex(got["sig2"]), b"transcript two", ec.ECDSA(hashes.SHA256()))
    assert got["ready_after"] == "0" and got["boots"] == "1"
    # the online step is the point of preparing: far below the on-the-spot signature
    assert int(got["online_us"]) * 10 < int(got["cold_us"])
    print("unix port: keygen %(keygen_us)s us, prepare %(prepare_us)s us (%(slices)s slices), "
          "sign with a prepared nonce %(online_us)s us, without %(cold_us)s us" % got)


def test_x509_parses_an_ec_leaf_on_the_unix_port():
    from hsmtls import devpki

    ca_key = devpki.new_key()
    ca = devpki.make_ca(ca_key, "mp CA")
    k = ec.generate_private_key(ec.SECP256R1())
    cert = devpki.issue(ca, ca_key, k.public_key(), "mp ec board", "client")
    der = cert.public_bytes(serialization.Encoding.DER)
    script = """
from tlscore import x509
c = x509.parse_certificate(bytes.fromhex(%r))
print("type=" + c.key_type)
print("point=" + c.public_key.point.hex())
""" % der.hex()
    got = _parse(run_mp(script))
    n = k.public_key().public_numbers()
    assert got["type"] == "ec"
    assert got["point"] == "04%064x%064x" % (n.x, n.y)
