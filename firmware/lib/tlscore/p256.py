# NIST P-256 (secp256r1, SEC 2 §2.4.2) and ECDSA (FIPS 186-4 §6, SEC 1 §4.1) for the
# board's own key, in the MicroPython subset: big ints, built-in pow(), no bit_length,
# no pow(x, -1, m). ECDSA is split into an offline part that does not depend on the
# message (presign: k, R = k*G, r = R.x mod n, k^-1 mod n: the expensive part, done
# while the board is idle) and an online part, s = k^-1 (z + r d) mod n, which is
# three multiplications. A presigned pair must be used for exactly one signature:
# two signatures with one k give away the private key.
#
# Side channels: MicroPython's mpz arithmetic is not constant-time, so the aim is what
# Python code controls: the sequence of operations never depends on a secret. Scalar
# multiplication is a fixed-base signed comb (4 teeth of 64 bits, every column
# non-zero): always 63 doublings and 63 additions in Jacobian coordinates, about 3x
# fewer operations than a 4-bit window; table entries are picked by scanning the whole
# table with arithmetic masks; the starting point gets random projective coordinates;
# inverses are Fermat's (pow with the public exponent p-2 or n-2), and k^-1 is computed
# on a randomly blinded k. The scalar is made odd by taking n-k when k is even (and
# negating the result), so no branch looks at its low bit either.
#
# Nonces are hedged (RFC 6979 §3.6 style): HMAC_DRBG seeded with the private key and
# fresh os.urandom output, so a weak RNG (an ESP32 with its radio off) alone does not
# repeat k. The message cannot be mixed in, since k is made before the message exists;
# the caller adds what makes each nonce unique (boardapp/key.py: boot number and count).
#
# Only what the board needs is here: no verification (the host verifies with
# `cryptography`; on the board it would cost two scalar multiplications per signature,
# ~200x the online step) and no DER parsing. Every import compiles this module on a
# board that runs sources, so it is kept small.

from .pkcs1 import bytes_to_int

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5

# The comb table for G (see _mul_steps): entry u = b0 + 2*b1 + 4*b2 is
#   2^192 G + sum over t < 3 of (2*b_t - 1) * 2^(64 t) G,
# affine; fixed so the board does not compute it at import (tests check it).
_G_COMB = (
    (0xDCA746348411AFB57A941B3100C7462EC7DD307902D883402C147BD3023E0A99,
     0xA378F49C3C6073E0EFA230D38E2875B6D170FE410060632C47B0D520235F3FB0),
    (0x47B8C15B5931239087F51BCFA6C7513324FC081AD4E6E5C5F7447E16E0B9010A,
     0xEAB69CFCB27BCED91DE9C2EAD61AA5C0C8CB9D1BC2FAA8275D8A5A16D7B4B792),
    (0x39F2E126E7A90157AFF955E975A529794FCFDE2A0FCB47E38DB221505B370B39,
     0x2FE3918B81BAC5C2034CFC1D65141B266FDAB9FB481DE5ACC13C7A63865122BA),
    (0xB98668C64A1D889B37B090171835523743726C12F9021BC1DBD40B537699E898,
     0x04EF5FA9A113F297C8DAA7515DA9F6564EC8476537C48F4EC894A7323A913C3D),
    (0x8399D76DF70660CB574AF433F51B14F0ACCBD9E5A6C902A97342E89B4C02FAA6,
     0xA08F6B5156ECB1CC58EF27C62016D4C87A47E013C687587274C93F9BE68BA2BA),
    (0x61302D5D508FDC2E7F8ED508A43B83B70BA6D2F4E0103C59D14F8EAD7DB8CAB2,
     0x6C584E7F2CC4A0290410B88323E6DE4270750B1D46B0F759EBD1782FB01280C1),
    (0x8781FBDAFC931410B414F9CEE81FF10C45E388A81FD9D03DE47C247D3CE742EB,
     0x3EB35234FA6ADA4CBFE61EE20C945128CADA9AD59713E7CAA87B2111082CA20D),
    (0xB48E26B484F7A21C0A4A46FB6AAF363A66B0DE3225C4744B9615B5110D1D78E5,
     0xFAC015404D4D3DAB64131BCDFED6F668C004E4048B7B0F9806EBB0F621A01B2D),
)


# --- field and group ------------------------------------------------------------------


def on_curve(x, y):
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x - 3 * x + B)) % P == 0


def _double(X1, Y1, Z1):
    # dbl-2001-b (a = -3): 3M + 5S. The point at infinity (Z1 = 0) stays there.
    delta = Z1 * Z1 % P
    gamma = Y1 * Y1 % P
    beta = X1 * gamma % P
    alpha = 3 * (X1 - delta) * (X1 + delta) % P
    X3 = (alpha * alpha - 8 * beta) % P
    Z3 = ((Y1 + Z1) * (Y1 + Z1) - gamma - delta) % P
    Y3 = (alpha * (4 * beta - X3) - 8 * gamma * gamma) % P
    return X3, Y3, Z3


def _add_affine(X1, Y1, Z1, x2, y2):
    # madd-2004-hmv: Jacobian + affine, 8M + 3S. P1 = +-P2 gives Z3 = 0 (see
    # _mul_steps).
    t1 = Z1 * Z1 % P
    t2 = t1 * Z1 % P
    t1 = (t1 * x2 - X1) % P
    t2 = (t2 * y2 - Y1) % P
    Z3 = Z1 * t1 % P
    t4 = t1 * t1 % P
    t3 = t4 * t1 % P
    t4 = t4 * X1 % P
    X3 = (t2 * t2 - 2 * t4 - t3) % P
    Y3 = ((t4 - X3) * t2 - t3 * Y1) % P
    return X3, Y3, Z3


def _to_affine(X, Y, Z):
    if Z % P == 0:
        raise ValueError("point at infinity")
    zi = pow(Z, P - 2, P)
    zi2 = zi * zi % P
    return X * zi2 % P, Y * zi2 * zi % P


def _eq(a, b):
    # 1 if the small ints a == b (0 <= a, b < 2**30), else 0, without a branch
    return (((a ^ b) - 1) >> 31) & 1


def _lookup(table, u, top):
    # the column's point: T[u] if its top bit is set, else -T[u ^ 7]. All eight
    # entries are read and one kept by masks; y is negated arithmetically.
    neg = 1 - top
    idx = u ^ (7 * neg)
    x = y = 0
    for j in range(8):
        m = _eq(j, idx)
        e = table[j]
        x += e[0] * m
        y += e[1] * m
    return x, y + neg * (P - 2 * y)


def _mul_steps(k, table, rnd):
    # k*point for 0 < k < N (point of order N, given by its comb table); rnd: 32
    # random bytes for the projective randomisation. A generator: yields None after
    # every 16 columns (so a caller can keep a link alive), then the affine (x, y).
    #
    # Signed comb with 4 teeth of 64 bits: an odd K < 2^256 is sum of s_i 2^i with
    # every s_i = +-1, s_i = 2*bit_i(K') - 1 for K' = (K + 2^256 - 1) / 2. Column j
    # (bits j, j+64, j+128, j+192) is then a combination of +-1 multiples of G,
    # 2^64 G, 2^128 G, 2^192 G, never zero: 64 columns cost 63 doublings and 63
    # additions, always. An addition meeting its own operand or its negation (the
    # incomplete formula's exceptions; a negligible set of scalars, none of the
    # structured ones the tests try) gives Z = 0, which stays 0 and makes _to_affine
    # raise: never a wrong point.
    odd = k & 1
    K = k + (1 - odd) * (N - 2 * k)  # k, or n - k (odd): (n-k)*P = -(k*P)
    Kp = (K + (1 << 256) - 1) >> 1
    m = (1 << 64) - 1
    l0 = Kp & m
    l1 = (Kp >> 64) & m
    l2 = (Kp >> 128) & m
    l3 = Kp >> 192
    x, y = _lookup(table, (l0 >> 63) | ((l1 >> 63) << 1) | ((l2 >> 63) << 2), l3 >> 63)
    lam = bytes_to_int(rnd) % (P - 1) + 1
    lam2 = lam * lam % P
    X, Y, Z = x * lam2 % P, y * lam2 * lam % P, lam
    for j in range(62, -1, -1):
        X, Y, Z = _double(X, Y, Z)
        u = ((l0 >> j) & 1) | (((l1 >> j) & 1) << 1) | (((l2 >> j) & 1) << 2)
        x, y = _lookup(table, u, (l3 >> j) & 1)
        X, Y, Z = _add_affine(X, Y, Z, x, y)
        if j & 15 == 0:
            yield None
    x, y = _to_affine(X, Y, Z)
    yield x, y + (1 - odd) * (P - 2 * y)


def _run(steps):
    # drive a step generator to its result (the last value it yields)
    result = None
    for step in steps:
        result = step
    return result


def mul_base_steps(k, rnd):
    return _mul_steps(k, _G_COMB, rnd)


def mul_base(k, rnd):
    return _run(_mul_steps(k, _G_COMB, rnd))


# --- keys and encodings ---------------------------------------------------------------


def _hmac_drbg(backend, seed):
    # RFC 6979 §3.2 steps b-h: HMAC_DRBG(SHA-256) instantiated with seed, returning
    # the first candidate in [1, N-1]
    K = bytes(32)
    V = b"\x01" * 32
    K = backend.hmac("sha256", K, V + b"\x00" + seed)
    V = backend.hmac("sha256", K, V)
    K = backend.hmac("sha256", K, V + b"\x01" + seed)
    V = backend.hmac("sha256", K, V)
    while True:
        V = backend.hmac("sha256", K, V)
        k = bytes_to_int(V)
        if 0 < k < N:
            return k
        K = backend.hmac("sha256", K, V + b"\x00")
        V = backend.hmac("sha256", K, V)


def private_key(backend):
    # a uniform scalar in [1, N-1] (FIPS 186-4 B.4.2, testing candidates)
    while True:
        d = bytes_to_int(backend.random(32))
        if 0 < d < N:
            return d


def public_key(d, backend):
    if not 0 < d < N:
        raise ValueError("private key out of range")
    return mul_base(d, backend.random(32))


def encode_point(point):
    # SEC 1 §2.3.3, uncompressed: 04 || X || Y
    x, y = point
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


# --- ECDSA ----------------------------------------------------------------------------


def presign_steps(backend, d, extra=b""):
    # The message-independent part of a signature, as a generator (None while
    # working, then (k, k^-1 mod n, r)). Use the result for one signature only.
    # The nonce is HMAC_DRBG(d || 32 fresh random bytes || extra): RFC 6979 with
    # fresh randomness where the message hash would go.
    seed = d.to_bytes(32, "big") + backend.random(32) + bytes(extra)
    while True:
        k = _hmac_drbg(backend, seed)
        R = None
        for R in _mul_steps(k, _G_COMB, backend.random(32)):
            if R is None:
                yield None
        x, y = R
        # a fault in the multiplication shows as a point off the curve
        if not on_curve(x, y):
            raise ValueError("R is not on the curve (fault?)")
        r = x % N
        if r:
            break
        seed += b"\x00"  # probability ~2**-256
    # k^-1 through a blinded k: the (non-constant-time) pow never sees k itself
    b = private_key(backend)
    kinv = pow(k * b % N, N - 2, N) * b % N
    if k * kinv % N != 1:
        raise ValueError("k^-1 check failed (fault?)")
    yield k, kinv, r


def presign(backend, d, extra=b""):
    return _run(presign_steps(backend, d, extra))


def sign_digest(d, digest, pair):
    # The online part: s = k^-1 (z + r d) mod n. digest is the hash (SHA-256 for P-256,
    # so z is all of it). Also checks s*k = z + r*d, which catches a fault here.
    k, kinv, r = pair
    z = bytes_to_int(digest[:32])
    e = (z + r * d) % N
    s = kinv * e % N
    if s == 0 or s * k % N != e:
        raise ValueError("ECDSA signature failed its own check")
    return r, s


def _der_int(v):
    body = v.to_bytes(33, "big")
    i = 0
    while i < 32 and body[i] == 0 and body[i + 1] < 0x80:
        i += 1
    body = body[i:]
    return b"\x02" + bytes((len(body),)) + body


def der_signature(r, s):
    # ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 §2.2.3); at most
    # 72 bytes, so the short length form always fits
    body = _der_int(r) + _der_int(s)
    return b"\x30" + bytes((len(body),)) + body


