# The crypto backend for MicroPython on the ESP32 (interface in backend.py), built only
# from what the stock firmware has: hashlib (sha1, sha256; no copy(), digest()
# finalises), cryptolib.aes with ECB=1 and CBC=2 (no CTR, no GCM; 16- or 32-byte keys)
# and os.urandom. HMAC is written out over hashlib. AES-GCM is CTR made by ECB-encrypting
# a buffer of counter blocks (one cryptolib call per 512 bytes), plus GHASH from ghash.py;
# open() checks the tag in constant time before it decrypts anything. seal() and open() return
# bytearrays, not bytes: a copy of a 16 KiB record is too much heap to spend on the
# board. SHA-384 suites are not offered (hash_names), so suites.supported_by() drops them.

import hashlib
import os

import cryptolib
from micropython import const

from .consttime import ct_equal
from .ghash import GHash, fill_counters, xor_into
from .montgomery import Modulus

_MODE_ECB = const(1)
_MODE_CBC = const(2)
_HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}
_BLOCK = const(64)  # input block size of SHA-1 and SHA-256
_IPAD = b"\x36" * _BLOCK
_OPAD = b"\x5c" * _BLOCK
# keystream bytes per ECB call; a multiple of 16. 512: the two buffers below stay in the
# heap for good, and 1 KiB less of them took the smallest heap of a handshake on the
# 32-bit emulator down 2 KiB (plain 50 -> 48 KiB), for one more ECB call per KiB
_CHUNK = const(512)


def _check_nonce(nonce):
    if len(nonce) != 12:
        raise ValueError("AES-GCM nonce must be 12 bytes")


# Counter blocks nonce || c and their encryption, _CHUNK bytes each: scratch that every
# _GCM shares (seal and open run one at a time and keep nothing in it between calls),
# allocated once, at import (while the heap is still in one piece; a board's heap is
# too fragmented mid-handshake for such blocks), and kept: every session reuses it.
_scratch = (bytearray(_CHUNK), bytearray(_CHUNK))


class _GCM:
    # One ECB-encrypt object per key serves both directions: GCM only encrypts. The
    # keystream is made _CHUNK bytes at a time (one ECB call over that many counter
    # blocks), so a 16 KiB record costs the two shared buffers, not 16 KiB ones.

    def __init__(self, key):
        if len(key) not in (16, 32):
            raise ValueError("AES-GCM key must be 16 or 32 bytes")
        self._counters, self._ks = _scratch
        self._ecb = cryptolib.aes(bytes(key), _MODE_ECB)
        h = bytearray(16)
        self._ecb.encrypt(bytes(16), h)
        self._ghash = GHash(h)

    def _encrypt_counters(self, nonce, c, blocks):
        # ks[:16*blocks] = E_K(nonce || c), E_K(nonce || c+1), ...
        fill_counters(self._counters, nonce, c, blocks)
        size = blocks * 16
        ks = memoryview(self._ks)[:size]
        self._ecb.encrypt(memoryview(self._counters)[:size], ks)
        return ks

    def _start(self, nonce, n):
        # One ECB call for J0 = nonce || 1 and the first data counters: ks[:16] =
        # E_K(J0), the tag mask (SP 800-38D §7.1 step 6, 96-bit IV), and ks[16:16+m]
        # the keystream of data[:m]. A handshake record fits whole in it.
        m = n if n < _CHUNK - 16 else _CHUNK - 16
        return self._encrypt_counters(nonce, 1, 1 + (m + 15) // 16), m

    def _finish(self, nonce, buf, done, n):
        # buf[done:n] ^= the keystream from there on (done a multiple of 16)
        mv = memoryview(buf)
        c = 2 + done // 16
        while done < n:
            m = n - done
            if m > _CHUNK:
                m = _CHUNK
            blocks = (m + 15) // 16
            xor_into(mv[done:], self._encrypt_counters(nonce, c, blocks), m)
            done += m
            c += blocks

    def seal(self, nonce, plaintext, aad):
        _check_nonce(nonce)
        n = len(plaintext)
        out = bytearray(n + 16)
        out[:n] = plaintext
        ks, m = self._start(nonce, n)
        out[n:] = ks[:16]
        xor_into(out, ks[16:], m)
        self._finish(nonce, out, m, n)
        mv = memoryview(out)
        xor_into(mv[n:], self._ghash.digest(aad, mv[:n]), 16)  # T = E_K(J0) ^ GHASH
        return out

    def open(self, nonce, ciphertext_and_tag, aad):
        return self._open(nonce, memoryview(ciphertext_and_tag), aad, False)

    def open_in_place(self, nonce, buf, aad):
        # buf: a writable buffer holding ciphertext || tag; on success its first
        # len-16 bytes become the plaintext and a view of them is returned (the record
        # layer decrypts in its own receive buffer). A wrong tag changes nothing.
        return self._open(nonce, memoryview(buf), aad, True)

    def _open(self, nonce, data, aad, in_place):
        _check_nonce(nonce)
        n = len(data) - 16
        if n < 0:
            return None
        ks, m = self._start(nonce, n)
        tag = bytearray(self._ghash.digest(aad, data[:n]))
        xor_into(tag, ks, 16)
        if not ct_equal(tag, data[n:]):
            return None
        out = data[:n] if in_place else bytearray(data[:n])
        xor_into(out, ks[16:], m)
        self._finish(nonce, out, m, n)
        return out


class _CBC:
    # A fresh cryptolib object per call: an object is fixed to one direction and
    # carries the chaining value, and the record layer hands us the IV each time.

    def __init__(self, key):
        if len(key) not in (16, 32):
            raise ValueError("AES-CBC key must be 16 or 32 bytes")
        self._key = bytes(key)

    def encrypt(self, iv, data):
        return cryptolib.aes(self._key, _MODE_CBC, bytes(iv)).encrypt(data)

    def decrypt(self, iv, data):
        return cryptolib.aes(self._key, _MODE_CBC, bytes(iv)).decrypt(data)


class MicroPythonBackend:
    hash_names = ("sha1", "sha256")
    groups = ()  # no ECDHE on the board: the RSA key exchange suites only

    def __init__(self):
        self._hkey = None  # _pads() of the last HMAC key; see hmac()
        self._moduli = []  # the last Montgomery moduli, newest first; see modexp()

    def random(self, n):
        return os.urandom(n)

    def _ctor(self, name):
        ctor = _HASHES.get(name)
        if ctor is None:
            raise ValueError("hash not available on this board: %s" % name)
        return ctor

    def hash(self, name, data):
        return self._ctor(name)(data).digest()

    def new_hash(self, name):
        return self._ctor(name)()  # no copy(): hashlib here cannot copy a state

    def _pads(self, name, key):
        # -> (key, name, hash constructor, K ^ ipad, K ^ opad)
        ctor = self._ctor(name)
        k = key
        if len(k) > _BLOCK:
            k = ctor(k).digest()
        ipad = bytearray(_IPAD)
        xor_into(ipad, k, len(k))
        opad = bytearray(_OPAD)
        xor_into(opad, k, len(k))
        return (key, name, ctor, ipad, opad)

    def hmac(self, name, key, data):
        # RFC 2104: H((K ^ opad) || H((K ^ ipad) || data)). The PRF calls this many
        # times with one secret and hashlib cannot copy a keyed inner state, so the
        # padded keys of the last key are kept. They are found again by identity,
        # which compares no secret bytes; only bytes keys are kept: they cannot change.
        c = self._hkey
        if c is None or c[0] is not key or c[1] != name:
            c = self._pads(name, key)
            if type(key) is bytes:
                self._hkey = c
        ctor = c[2]
        h = ctor(c[3])
        h.update(data)
        return ctor(c[4] + h.digest()).digest()

    def modexp(self, x, e, n):
        # x^e mod n, e public (RSA encryption, signature verification): Montgomery
        # products in viper. The last two moduli used are kept (a trust anchor's key and
        # a server's), each about twice its size in heap.
        kept = self._moduli
        for m in kept:
            if m.n == n:
                break
        else:
            m = Modulus(n)
        self._moduli = [m] + [k for k in kept if k is not m][:1]  # newest use first
        return m.pow(x, e)

    def aes_gcm(self, key):
        return _GCM(key)

    def aes_cbc(self, key):
        return _CBC(key)


BACKEND = MicroPythonBackend()
