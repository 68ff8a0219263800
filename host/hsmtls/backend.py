"""CPython crypto backend for tlscore, over `cryptography` and the standard library."""

from __future__ import annotations

import hashlib
import hmac as _hmac
import os

from cryptography.exceptions import InvalidTag
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


class CPythonBackend:
    hash_names = ("sha1", "sha256", "sha384", "sha512")

    def random(self, n: int) -> bytes:
        return os.urandom(n)

    def hash(self, name: str, data: bytes) -> bytes:
        return hashlib.new(name, bytes(data)).digest()

    def hmac(self, name: str, key: bytes, data: bytes) -> bytes:
        return _hmac.new(bytes(key), bytes(data), name).digest()

    def aes_gcm(self, key: bytes) -> _GCM:
        return _GCM(bytes(key))

    def aes_cbc(self, key: bytes) -> _CBC:
        return _CBC(bytes(key))


BACKEND = CPythonBackend()
