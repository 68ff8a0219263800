# The board's own private key, for CertificateVerify: RSA or ECDSA P-256. Stored on the
# board's flash as `name=hex` lines, never sent over the link; load() tells the two
# apart by a `type=ec` line (RSA files have none).
#
# RSA (BoardKey): the precomputed CRT integers. Signing is RSASSA-PKCS1-v1_5 with the
# CRT (about 4.7x cheaper than one full-size exponent). The two half-size exponentiations
# run in fixed time in Montgomery form (tlscore.montgomery: viper, about 2.3x faster
# than pow(); RISC-V assembly on the rv32 image, about 12x faster than viper there;
# pow() is not constant-time and is used only where viper is missing, as under CPython
# in the host's tests). The base is blinded as well, and the signature is
# checked with the public exponent before it leaves the board, so a fault in the CRT
# computation cannot leak a factor of n (Boneh-DeMillo-Lipton).
#
# ECDSA P-256: key_ec.ECBoardKey, imported only for an EC key, so that an RSA
# board spends no heap on it (nor on tlscore.p256).

import os

from tlscore import pkcs1

try:
    from tlscore.montgomery import Modulus
except ImportError:  # no viper: CPython
    Modulus = None

FIELDS = ("n", "e", "d", "p", "q", "dp", "dq", "qinv")


def _fields(path):
    vals = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if "=" in line:
                k, v = line.split("=", 1)
                vals[k.strip()] = v.strip()
    return vals


def load(path):
    """The key in `path`: an ECBoardKey for a `type=ec` file, else a BoardKey (RSA)."""
    vals = _fields(path)
    if vals.get("type", "rsa") == "ec":
        import gc

        # Collect before and after importing (on a board that runs sources, compiling)
        # the EC code: what stays, the code and the key, then lands in low holes
        # rather than amid the compiler's garbage, which would split the free heap.
        gc.collect()
        from boardapp.key_ec import ECBoardKey

        gc.collect()
        return ECBoardKey.from_fields(vals, path + ".boots")
    return BoardKey.from_fields(vals)


def next_count(path):
    """One more than the counter in `path`, written back and read again before it is
    used. ECDSA nonces and key generation mix it in, so that an os.urandom that repeats
    itself after a reset (an ESP32 with its radio off) repeats neither. A counter that
    cannot be read or written is an error, never a fresh 0: a repeated nonce gives the
    key away, so the board would rather not sign. The new value goes to path + ".tmp"
    first and is renamed over the old one, so a reset in the middle leaves one of the
    two whole: the old file, or (where rename does not replace, FAT: removed first) the
    temporary one, which is read when the counter itself is missing."""
    tmp = path + ".tmp"
    n = _read_count(path)
    if n is None:
        n = _read_count(tmp) or 0  # (none: a new key)
    n += 1
    try:
        with open(tmp, "w") as f:
            f.write("%d\n" % n)
        try:
            os.rename(tmp, path)  # replaces it (POSIX, littlefs)
        except OSError:
            os.remove(path)
            os.rename(tmp, path)
        if _read_count(path) != n:
            raise ValueError("does not read back")
    except (OSError, ValueError) as e:
        raise _counter_error(path, "write", e) from None
    return n


def _read_count(path):
    # the count in `path`, None if there is no such file; anything else is an error
    try:
        with open(path) as f:
            return int(f.read().strip())
    except OSError as e:
        if e.errno != 2:  # ENOENT
            raise _counter_error(path, "read", e) from None
        return None
    except ValueError:
        raise _counter_error(path, "read", "not a number") from None


def _counter_error(path, what, why):
    return OSError("flash: cannot %s the nonce counter %s (%s): the board refuses to sign rather than risk "
                   "a repeated nonce" % (what, path, why))


def modinv(a, m):
    # a^-1 mod m by the extended Euclidean algorithm: pow(a, -1, m) returns 0 on
    # MicroPython.
    a = a % m
    if a == 0:
        raise ValueError("not invertible")
    r0, r1 = m, a
    t0, t1 = 0, 1
    while r1:
        q = r0 // r1
        r0, r1 = r1, r0 - q * r1
        t0, t1 = t1, t0 - q * t1
    if r0 != 1:
        raise ValueError("not invertible")
    return t0 % m


class BoardKey:
    kind = "rsa"

    def __init__(self, n, e, d, p, q, dp, dq, qinv):
        self.n, self.e, self.d = n, e, d
        self.p, self.q, self.dp, self.dq, self.qinv = p, q, dp, dq, qinv
        self.k = pkcs1.byte_length(n)
        self._blind = None  # (r^e mod n, r^-1 mod n)
        self._crt = None  # Montgomery moduli of p and q, made at the first signature
        self._mod_n = None  # and of n: blinding and the signature's check

    @classmethod
    def load(cls, path):
        return cls.from_fields(_fields(path))

    @classmethod
    def from_fields(cls, vals):
        return cls(*[int(vals[k], 16) for k in FIELDS])

    def text(self):
        return "".join(["%s=%x\n" % (k, getattr(self, k)) for k in FIELDS])

    def can_sign(self, scheme):
        return scheme.startswith("rsa_pkcs1_")

    def matches(self, public_key):
        # the certificate's key (x509.RSAPublicKey) is this key's
        return getattr(public_key, "n", None) == self.n and public_key.e == self.e

    def _mulmod(self, a, b):
        # a * b mod n; on the board in Montgomery form, whose buffers are n's size: a
        # product of two 2048-bit ints needs a free 514-byte block, which a fragmented
        # heap of 64 KiB may not have in the middle of a handshake
        if Modulus is None:
            return a * b % self.n
        return self._n_modulus().mul(a, b)

    def _powmod(self, x, e):
        # x^e mod n for the public exponent
        if Modulus is None:
            return pow(x, e, self.n)
        return self._n_modulus().pow(x, e)

    def _n_modulus(self):
        if self._mod_n is None:
            self._mod_n = Modulus(self.n)
        return self._mod_n

    def _blinding(self):
        # A fresh pair costs one inverse; after that squaring both keeps them paired.
        if self._blind is None:
            n = self.n
            while True:
                r = pkcs1.bytes_to_int(os.urandom(self.k)) % n
                if r > 1:
                    try:
                        self._blind = (self._powmod(r, self.e), modinv(r, n))
                        break
                    except ValueError:
                        pass
        else:
            re, ri = self._blind
            self._blind = (self._mulmod(re, re), self._mulmod(ri, ri))
        return self._blind

    def _private(self, c):
        # RSADP with the CRT (RFC 8017 §5.1.2, 2.b)
        if Modulus is None:
            m1 = pow(c % self.p, self.dp, self.p)
            m2 = pow(c % self.q, self.dq, self.q)
        else:
            if self._crt is None:
                self._crt = (Modulus(self.p), Modulus(self.q))
            m1 = self._crt[0].pow_secret(c, self.dp)
            m2 = self._crt[1].pow_secret(c, self.dq)
        h = (m1 - m2) * self.qinv % self.p
        return m2 + h * self.q

    def sign(self, backend, hash_name, message):
        return self.sign_digest(backend, hash_name, backend.hash(hash_name, message))

    def sign_digest(self, backend, hash_name, digest):
        em = pkcs1.encode_digest(hash_name, digest, self.k)
        m = pkcs1.bytes_to_int(em)
        re, ri = self._blinding()
        s = self._mulmod(self._private(self._mulmod(m, re)), ri)
        if self._powmod(s, self.e) != m:
            self._blind = None
            raise ValueError("RSA signature failed its own check (fault?)")
        return pkcs1.int_to_bytes(s, self.k)

