# The board makes its own identity: an RSA key pair generated here (random odd
# candidates, a sieve by small primes, then Miller-Rabin with pow and os.urandom), or
# an ECDSA P-256 one (d uniform in [1, n-1] from os.urandom, Q = d*G), and a PKCS#10
# certificate request (RFC 2986) signed with it. The private key goes to the board's
# flash in key.py's format and never onto the link: the host gets only the
# request, and the certificate it sends back is accepted only if it carries this key
# (see trust.install).
#
# keygen() and keygen_ec() are generators that yield None while working, so the
# board keeps answering the link: RSA does one candidate per step (one 1024-bit
# Miller-Rabin round costs about 25 ms on the unix port and about 1.5 s on a classic
# ESP32, estimated from the CRT figures: seconds here, minutes there for RSA-2048);
# P-256 is one scalar multiplication in four slices (about 5 ms here in all).
# Their randomness is os.urandom hashed with the board's counter (key.next_count,
# taken once per key): an ESP32 RNG that is only pseudo-random repeats its stream after
# a reset, and two keys made after as many resets would be the same key without it.
# (It keeps keys apart; it does not make a weak RNG strong: HELLO says which it is.)

import hashlib
import os

from boardapp import derwriter as D
from boardapp.key import BoardKey, modinv
from tlscore import pkcs1

E = 65537
RSA_OID = "1.2.840.113549.1.1.1"
SHA256_RSA_OID = "1.2.840.113549.1.1.11"
EC_PUBLIC_KEY_OID = "1.2.840.10045.2.1"  # RFC 5480
PRIME256V1_OID = "1.2.840.10045.3.1.7"
ECDSA_SHA256_OID = "1.2.840.10045.4.3.2"  # RFC 5758 §3.2: no parameters
MR_ROUNDS = 5  # FIPS 186-4 table C.2 for 1024-bit primes of an RSA-2048 key

SMALL_PRIMES = [3]
for _c in range(5, 2000, 2):
    if all(_c % _p for _p in SMALL_PRIMES if _p * _p <= _c):
        SMALL_PRIMES.append(_c)


def _random_int(bits):
    v = pkcs1.bytes_to_int(_Random.random((bits + 7) // 8))
    return v >> ((bits + 7) // 8 * 8 - bits)


def _miller_rabin(n, rounds):
    d = n - 1
    s = 0
    while not d & 1:
        d >>= 1
        s += 1
    for i in range(rounds):
        a = 2 if i == 0 else 2 + _random_int(pkcs1.bit_length(n) - 1) % (n - 3)
        x = pow(a, d, n)
        if x == 1 or x == n - 1:
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits, e):
    # yields None per Miller-Rabin test, then the prime
    while True:
        # top two bits set: p*q has exactly 2*bits bits; odd
        start = _random_int(bits) | (3 << (bits - 2)) | 1
        res = [start % p for p in SMALL_PRIMES]
        for off in range(0, 2 * 4096, 2):
            ok = True
            for i in range(len(res)):
                if (res[i] + off) % SMALL_PRIMES[i] == 0:
                    ok = False
                    break
            if not ok:
                continue
            c = start + off
            if pkcs1.bit_length(c) != bits:
                break
            if (c - 1) % e == 0:
                continue
            yield None
            if _miller_rabin(c, 1) and _miller_rabin(c, MR_ROUNDS - 1):
                yield c
                return


def keygen(bits=2048, e=E, counter=None):
    """Generator: yields None while working, finally a BoardKey. counter: the path of
    the board's counter file (see the top)."""
    _Random.start(counter)
    half = bits // 2
    while True:
        p = q = None
        for p in _prime(half, e):
            if p is None:
                yield None
        for q in _prime(half, e):
            if q is None:
                yield None
        if p == q or pkcs1.bit_length(abs(p - q)) < half - 100:
            continue
        if p < q:
            p, q = q, p
        n = p * q
        lam = (p - 1) * (q - 1)
        g = _gcd(p - 1, q - 1)
        lam //= g
        d = modinv(e, lam)
        yield BoardKey(n, e, d, p, q, d % (p - 1), d % (q - 1), modinv(q, p))
        return


def keygen_ec(counter=None):
    """Generator: yields None while working, finally an ECBoardKey (P-256), whose
    signature on the CSR takes its nonce's boot number from the same counter."""
    from boardapp.key_ec import ECBoardKey
    from tlscore import p256

    _Random.start(counter)
    d = p256.private_key(_Random)
    point = None
    for point in p256.mul_base_steps(d, os.urandom(32)):
        if point is None:
            yield None
    yield ECBoardKey(d, point[0], point[1], counter)


class _Random:
    # os.urandom through SHA-256 with the counter's value and a call number; also the
    # one backend call p256.private_key makes
    extra = b""
    calls = 0

    @classmethod
    def start(cls, counter):
        if counter:
            from boardapp.key import next_count

            cls.extra = ("keygen/%d/" % next_count(counter)).encode()

    @classmethod
    def random(cls, n):
        out = b""
        while len(out) < n:
            cls.calls += 1
            out += hashlib.sha256(os.urandom(32) + cls.extra + str(cls.calls).encode()).digest()
        return out[:n]


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def key_text(key):
    # key.py's flash format
    return key.text()


def public_key_info(key):
    if key.kind == "ec":
        point = b"\x04" + key.x.to_bytes(32, "big") + key.y.to_bytes(32, "big")
        return D.seq(D.seq(D.oid(EC_PUBLIC_KEY_OID), D.oid(PRIME256V1_OID)), D.bit_string(point))
    return D.seq(D.seq(D.oid(RSA_OID), D.null()), D.bit_string(D.seq(D.integer(key.n), D.integer(key.e))))


def csr(key, backend, subject):
    """DER CertificationRequest for `subject` ([("CN", ...), ...]), signed with `key`."""
    info = D.seq(D.integer(0), D.name(subject), public_key_info(key), D.context(0, b""))
    sig = key.sign(backend, "sha256", info)
    if key.kind == "ec":
        alg = D.seq(D.oid(ECDSA_SHA256_OID))
    else:
        alg = D.seq(D.oid(SHA256_RSA_OID), D.null())
    return D.seq(info, alg, D.bit_string(sig))


# --- the board's KEYGEN: one step at a time from its loop --------------------------------


def start(board, opts):
    # KEYGEN (authorized by trust.py, which loaded the curve code first for an EC key)
    kind = opts.get("type", "rsa")
    if board.session is not None or board.keygen is not None:
        raise ValueError("busy")
    bits = opts.get("bits", 2048)
    # the new key's randomness and its CSR's nonce go through the counter too
    counter = board.port.flash_path("client.key.boots")
    if kind == "ec":
        job = keygen_ec(counter)
    elif kind != "rsa":
        raise ValueError("type must be rsa or ec")
    elif bits not in (1024, 2048, 3072):
        raise ValueError("bits must be 1024, 2048 or 3072")
    else:
        job = keygen(bits, counter=counter)
    subject = [tuple(x) for x in opts.get("subject") or [["CN", "hsmtls board"]]]
    board.keygen = [job, subject, 0]


def step(board):
    # one step of the key being made (Board.step, while board.keygen is set); the CSR when done
    job = board.keygen
    key = next(job[0])
    if key is None:
        job[2] += 1
        if job[2] % 25 == 0:
            board.log("keygen: %d prime candidates tested" % job[2])
        return
    from hsmlink import protocol as P
    from tlscore.backend_micropython import BACKEND

    board.keygen = None
    # the new key waits beside the old one until a certificate for it arrives
    board._write("client.key.new", key_text(key).encode())
    board.link.send(P.CSR, csr(key, BACKEND, job[1]))
