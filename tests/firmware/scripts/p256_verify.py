# ECDSA P-256 verification and scalar multiplication of any point, on top of
# tlscore.p256's comb, for the tests only: the board does not verify (it would cost two
# scalar multiplications per signature; the host verifies with `cryptography`). Runs
# under CPython and, prepended to a script, under the MicroPython unix port, where the
# tests measure what a verification would cost the board.

from tlscore.p256 import N, P, _double, _mul_steps, _run, _to_affine, mul_base
from tlscore.pkcs1 import bytes_to_int


def affine_add(p1, p2):
    # public points only: branches on the values; None is the point at infinity
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    x1, y1 = p1
    x2, y2 = p2
    if x1 == x2:
        if (y1 + y2) % P == 0:
            return None
        lam = 3 * (x1 * x1 - 1) * pow(2 * y1, P - 2, P) % P
    else:
        lam = (y2 - y1) * pow(x2 - x1, P - 2, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return x3, (lam * (x1 - x3) - y1) % P


def comb_table(point):
    # the comb table of a point of order N (what p256._G_COMB is for G)
    teeth = [point]
    X, Y, Z = point[0], point[1], 1
    for _ in range(3):
        for _ in range(64):
            X, Y, Z = _double(X, Y, Z)
        teeth.append(_to_affine(X, Y, Z))
    out = []
    for u in range(8):
        acc = teeth[3]
        for t in range(3):
            x, y = teeth[t]
            acc = affine_add(acc, (x, y) if (u >> t) & 1 else (x, P - y))
        out.append(acc)
    return tuple(out)


def mul(k, point, rnd, table=None):
    return _run(_mul_steps(k, table or comb_table(point), rnd))


def verify_digest(point, digest, r, s, rnd, table=None):
    # SEC 1 §4.1.4 with SHA-256 (z is the whole digest); table: point's comb table
    if not (0 < r < N and 0 < s < N):
        return False
    z = bytes_to_int(digest[:32])
    w = pow(s, N - 2, N)
    u1 = z * w % N
    u2 = r * w % N
    try:
        a = mul_base(u1, rnd) if u1 else None
        b = mul(u2, point, rnd, table)
    except ValueError:  # an exceptional scalar (see p256._mul_steps)
        return False
    q = affine_add(a, b)
    return q is not None and q[0] % N == r

