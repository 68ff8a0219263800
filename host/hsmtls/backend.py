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
