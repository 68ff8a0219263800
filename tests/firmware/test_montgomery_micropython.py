"""tlscore.montgomery under the MicroPython unix port: Montgomery exponentiation in viper
(and a product mod n) against CPython's pow(), with both limb widths (32-bit limbs, as on this 64-bit host, and
the 16-bit limbs an ESP32 runs), public and secret exponents; that a secret exponent
steers no work (the same products and table lookups whatever its bits and length); and
that the board's RSA key signs with it (CRT halves through pow_secret) what
`cryptography` verifies."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from support.mp_run import requires_micropython, run_mp

pytestmark = [pytest.mark.micropython, requires_micropython]


def _parse(out):
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_pow_and_pow_secret_match_cpython_both_limb_widths():
    rng = random.Random(11)
    cases = []
    for k in (1, 2, 3, 5, 8, 31, 33, 64, 128, 256):
        for _ in range(2):
            n = (
                rng.getrandbits(8 * k) | 1 | (1 << (8 * k - 1))
                if k > 1
                else rng.choice((3, 5, 251, 255))
            )
            x = rng.getrandbits(8 * k + 16)  # above n: reduced first
            exps = [1, 2, 3, 17, 65537, rng.getrandbits(8 * k) | 1]
            secret = [0, 1, n - 1, rng.getrandbits(8 * k), (1 << (8 * k)) - 1]
            factors = [(0, 5 % n), (1, n - 1), (n - 1, n - 1), (rng.randrange(n), rng.randrange(n))]
            cases.append((n, x, exps, secret, factors))
    script = "from tlscore.montgomery import Modulus\nCASES = %r\n" % (cases,)
    script += """
for wide in (True, False):
    for i, (n, x, exps, secret, factors) in enumerate(CASES):
        m = Modulus(n, wide)
        for j, e in enumerate(exps):
            print("p%d.%d.%d=%x" % (wide, i, j, m.pow(x, e)))
        for j, d in enumerate(secret):
            print("s%d.%d.%d=%x" % (wide, i, j, m.pow_secret(x, d)))
        for j, (a, b) in enumerate(factors):
            print("m%d.%d.%d=%x" % (wide, i, j, m.mul(a, b)))
for bad in (0, 1, 2, 4096):
    try:
        Modulus(bad)
        print("even%d=accepted" % bad)
    except ValueError:
        print("even%d=refused" % bad)
"""
    got = _parse(run_mp(script, timeout=120))
    for wide in (1, 0):
        for i, (n, x, exps, secret, factors) in enumerate(cases):
            for j, e in enumerate(exps):
                assert int(got["p%d.%d.%d" % (wide, i, j)], 16) == pow(x, e, n), (wide, n, e)
            for j, d in enumerate(secret):
                assert int(got["s%d.%d.%d" % (wide, i, j)], 16) == pow(x, d, n), (wide, n, d)
            for j, (a, b) in enumerate(factors):
                assert int(got["m%d.%d.%d" % (wide, i, j)], 16) == a * b % n, (wide, n, a, b)
    assert [got["even%d" % b] for b in (0, 1, 2, 4096)] == ["refused"] * 4


def test_secret_exponent_steers_no_work():
    # Count the Montgomery products and table lookups: the same schedule for an exponent
    # of 0, of 1, of all ones and of random bits, for each limb width.
    script = """
from tlscore import montgomery as M
import os
calls = []
real_select = M._select
def select(out, table, index, size):
    calls.append(("sel", len(table), size))
    real_select(out, table, index, size)
M._select = select
n = int.from_bytes(os.urandom(128), "big") | 1 | (1 << 1023)
for wide in (True, False):
    m = M.Modulus(n, wide)
    real_mul = m._mul
    def mul(out, a, b):
        calls.append(("mul", len(out)))
        real_mul(out, a, b)
    m._mul = mul
    for name, d in (("zero", 0), ("one", 1), ("ones", (1 << 1024) - 1), ("random", int.from_bytes(os.urandom(128), "big"))):
        calls.clear()
        assert m.pow_secret(12345, d) == pow(12345, d, n)
        print("%s.%d=%d,%d" % (name, wide, len(calls), hash(tuple(calls))))
"""
    got = _parse(run_mp(script, timeout=120))
    for wide in (1, 0):
        schedules = {got["%s.%d" % (name, wide)] for name in ("zero", "one", "ones", "random")}
        assert len(schedules) == 1, schedules
        # 1024 bits: 256 windows of 4 squarings and one multiplication, a 16-entry table
        # (14 products and the conversion of x), R mod n, and the conversion back
        assert int(schedules.pop().split(",")[0]) == 256 * 5 + 256 + 14 + 3


def test_board_rsa_key_signs_with_montgomery_crt():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    nums = key.private_numbers()
    pub = nums.public_numbers
    fields = {
        "n": pub.n, "e": pub.e, "d": nums.d, "p": nums.p, "q": nums.q,
        "dp": nums.dmp1, "dq": nums.dmq1, "qinv": nums.iqmp,
    }  # fmt: skip
    script = "from boardapp import key as boardkey\nfrom tlscore.backend_micropython import BACKEND\n"
    script += "F = %r\n" % (fields,)
    script += """
k = boardkey.BoardKey(*[F[name] for name in boardkey.FIELDS])
print("montgomery=%s" % (boardkey.Modulus is not None))
for i in range(3):
    print("sig%d=%s" % (i, k.sign(BACKEND, "sha256", b"message %d" % i).hex()))
"""
    got = _parse(run_mp(script, timeout=120))
    assert got["montgomery"] == "True"
    for i in range(3):
        key.public_key().verify(
            bytes.fromhex(got["sig%d" % i]), b"message %d" % i, padding.PKCS1v15(), hashes.SHA256()
        )


def test_backend_modexp_keeps_the_last_two_moduli():
    rng = random.Random(5)
    moduli = [rng.getrandbits(2048) | 1 | (1 << 2047) for _ in range(3)]
    xs = [rng.getrandbits(2040) for _ in range(6)]
    script = "from tlscore.backend_micropython import BACKEND as B\nN = %r\nX = %r\n" % (moduli, xs)
    script += """
for i, x in enumerate(X):
    n = N[i % 3] if i < 3 else N[1]
    print("r%d=%x" % (i, B.modexp(x, 65537, n)))
    print("kept%d=%s" % (i, ",".join(str(N.index(m.n)) for m in B._moduli)))
"""
    got = _parse(run_mp(script))
    for i, x in enumerate(xs):
        n = moduli[i % 3] if i < 3 else moduli[1]
        assert int(got["r%d" % i], 16) == pow(x, 65537, n)
    # newest first, two kept; a modulus met again is reused, not rebuilt
    assert [got["kept%d" % i] for i in range(6)] == ["0", "1,0", "2,1", "1,2", "1,2", "1,2"]
