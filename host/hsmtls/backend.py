"""CPython crypto backend for tlscore, over `cryptography` and the standard library."""

from __future__ import annotations

import hashlib
import hmac as _hmac
import os
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tlscore.record import _padding_bad


class _GCM:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return self._aead.encrypt(nonce, bytes(plaintext), aad)

    def open(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes | None:
        try:
            return self._aead.decrypt(nonce, bytes(ciphertext), aad)
        except InvalidTag:
            return None


class _CBC:
    def __init__(self, key: bytes) -> None:
        self._key = algorithms.AES(key)

    def encrypt(self, iv: bytes, data: bytes) -> bytes:
        e = Cipher(self._key, modes.CBC(iv)).encryptor()
        return e.update(bytes(data)) + e.finalize()

    def decrypt(self, iv: bytes, data: bytes) -> bytes:
        d = Cipher(self._key, modes.CBC(iv)).decryptor()
        return d.update(bytes(data)) + d.finalize()


X25519 = 29
SECP256R1 = 23


# The CBC padding check (tlscore.record._padding_bad) as a few operations on 4 Kibit
# integers instead of a Python loop over 256 bytes: 5 against 55 us a 2 KiB record on the
# reference machine. Lane k (16 bits) of an integer stands for the byte k places before
# the record's last; every integer keeps a top bit (_TOP, shifted along), because CPython
# drops leading zero digits, and how many it drops would follow the data. An operation
# on integers of one length takes one time whatever their values (CPython's digit loops
# have no early exit), and the last comparison is compare_digest's.
_ONES = sum(1 << (16 * k) for k in range(256))  # 1 in every lane
_INDEX = sum(k << (16 * k) for k in range(256))  # k in lane k
_TOP = 1 << 4112
_TOP_BYTES = (_TOP >> 9).to_bytes(515, "little")  # no wrong byte
_255 = 255 * _ONES
_DIFFERS_MASK = _ONES | _TOP >> 9
_INDEX_TOP = _INDEX + _TOP
_OUTSIDE_MASK = _ONES | _TOP >> 15


def _cbc_padding_bad(p: bytes, pad: int, mac_len: int) -> int:
    n = len(p)
    if n < 256:
        return _padding_bad(p, pad, mac_len)  # a short record: its length is public
    bad = ((n - mac_len - pad - 1) >> 16) & 1  # pad longer than the record allows
    lanes = bytearray(515)
    lanes[0:512:2] = p[n - 256 :][::-1]  # lane k: p[n - 1 - k]
    lanes[514] = 1  # _TOP
    t = int.from_bytes(lanes, "little")
    # lane k: 256 + (p[n-1-k] ^ pad), plus 255: bit 9 set where the byte is not pad
    differs = (((t ^ ((pad + 256) * _ONES)) + _255) >> 9) & _DIFFERS_MASK
    # lane k: k + 32767 - pad: bit 15 set where k > pad, outside the padding
    outside = ((_INDEX_TOP + (32767 - pad) * _ONES) >> 15) & _OUTSIDE_MASK
    # a padding byte that is not pad; _TOP >> 9 is in both, so the & keeps its length
    wrong = differs & (outside ^ _DIFFERS_MASK)
    return bad | (1 - _hmac.compare_digest(wrong.to_bytes(515, "little"), _TOP_BYTES))


_HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


class CPythonBackend:
    hash_names = ("sha1", "sha256", "sha384", "sha512")
    groups = (X25519, SECP256R1)
    ecdsa_groups = (SECP256R1,)

    def random(self, n: int) -> bytes:
        return os.urandom(n)

    def hash(self, name: str, data: bytes) -> bytes:
        return hashlib.new(name, bytes(data)).digest()

    def new_hash(self, name: str) -> "hashlib._Hash":
        return hashlib.new(name)

    def hmac(self, name: str, key: bytes, data: bytes) -> bytes:
        return _hmac.new(bytes(key), bytes(data), name).digest()

    def aes_gcm(self, key: bytes) -> _GCM:
        return _GCM(bytes(key))

    def aes_cbc(self, key: bytes) -> _CBC:
        return _CBC(bytes(key))

    def cbc_padding_bad(self, p: bytes, pad: int, mac_len: int) -> int:
        return _cbc_padding_bad(p, pad, mac_len)

    def ecdsa_verify(self, group: int, public_point: bytes, hash_name: str, message: bytes, signature: bytes) -> bool:
        if group != SECP256R1 or hash_name not in _HASHES:
            return False
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(public_point))
            # OpenSSL takes strict DER only: it re-encodes the parsed signature and compares
            key.verify(bytes(signature), bytes(message), ec.ECDSA(_HASHES[hash_name]()))
        except (InvalidSignature, ValueError):
            return False
        return True

    def ecdh_generate(self, group: int) -> tuple[Any, bytes]:
        if group == X25519:
            priv = x25519.X25519PrivateKey.generate()
            pub = priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return priv, pub
        if group == SECP256R1:
            key = ec.generate_private_key(ec.SECP256R1())
            pub = key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            return key, pub
        raise ValueError(f"unsupported group {group}")

    def ecdh_shared(self, group: int, private: Any, peer_public: bytes) -> bytes | None:
        try:
            if group == X25519:
                if len(peer_public) != 32:
                    return None
                return private.exchange(x25519.X25519PublicKey.from_public_bytes(bytes(peer_public)))
            if group == SECP256R1:
                if len(peer_public) != 65 or peer_public[0] != 4:
                    return None  # uncompressed points only (RFC 8422 §5.1.2)
                peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(peer_public))
                return private.exchange(ec.ECDH(), peer)
        except ValueError:  # invalid point, or an all-zero X25519 result
            return None
        return None


BACKEND = CPythonBackend()
