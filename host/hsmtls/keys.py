"""Private keys that answer the engine's key-operation requests.

A key is whatever can decrypt an RSA premaster (PKCS#1 v1.5) and sign bytes. The PEM
file key lives here; the PKCS#11 token key (``pkcs11:`` URIs) comes with the hsm
package. Operations may be slow (a token): hosts run them off their event loop.

The premaster rule both keys share (RFC 5246 §7.4.7.1, RFC 8017 §7.2.2): a ciphertext
whose length is not the modulus's or whose value is not in 1..n-1 is refused before
any private-key operation (the peer knows that much already, so the branch tells it
nothing); every other one goes through raw RSA and `tlscore.pkcs1.depad_premaster`,
which has no branch on the result. The key answers (good, message, substitute) with a
substitute derived from the ciphertext with a secret key (implicit rejection), and the
engine picks one (`tlscore.server.premaster_from_decryption`), so a bad ciphertext
gives the same wrong premaster each time and fails at Finished.

A file key decrypts through OpenSSL only if OpenSSL answers a bad padding with a
message instead of an error (implicit rejection, OpenSSL 3.2+, constant-time C); that
is probed when the key is loaded. Otherwise (OpenSSL 3.0, as on Debian 12, raises: an
exception path a peer can time) it does raw RSA in Python, CRT with blinding, and
`serve` says so at start-up: about 28 times slower than OpenSSL (docs/token.md).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from tlscore.events import (
    DECRYPT,
    FIND_SESSION,
    OPEN_TICKET,
    SEAL_TICKET,
    SIGN,
    SIGN_DIGEST,
    KeyOperationRequest,
)
from tlscore.pkcs1 import depad_premaster, premaster_candidate

_HASHES = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class KeyError_(Exception):
    """A key cannot be loaded or used; the message says what to do."""


# a DECRYPT answer: (good, 48-byte message, 46-byte substitute); see tlscore.events
PremasterAnswer = tuple[int, bytes, bytes]


class PrivateKey(Protocol):
    description: str
    performer: str  # who runs the operation: "host", "token", "board"

    def decrypt_premaster(self, ciphertext: bytes) -> PremasterAnswer: ...

    def sign(self, scheme: str, hash_name: str, data: bytes) -> bytes: ...


def well_formed_ciphertext(ct: bytes, k: int, n: int) -> bool:
    """RSADP's public input checks: the modulus's length, and 0 < c < n."""
    return len(ct) == k and 0 < int.from_bytes(ct, "big") < n


def _openssl_rejects_implicitly(key: rsa.RSAPrivateKey) -> bool:
    """True if this OpenSSL answers a bad PKCS#1 v1.5 padding with a message."""
    pub = key.public_key().public_numbers()
    k = (pub.n.bit_length() + 7) // 8
    em = b"\x00\x01" + b"\xff" * (k - 51) + b"\x00" + bytes(48)  # block type 1: bad for decryption
    try:
        key.decrypt(pow(int.from_bytes(em, "big"), pub.e, pub.n).to_bytes(k, "big"), padding.PKCS1v15())
    except ValueError:
        return False
    return True


class FileKey:
    """An RSA private key from a PEM (or DER) file on the host; with signing_only (a
    client's key) also an ECDSA P-256 key."""

    performer = "host"

    def __init__(self, path: str, signing_only: bool = False) -> None:
        self.description = f"file {path}"
        try:
            data = open(path, "rb").read()
        except OSError as e:
            raise KeyError_(f"cannot read key file {path}: {e.strerror}") from None
        password = os.environ.get("HSMTLS_KEY_PASSWORD")
        pw = password.encode() if password else None
        try:
            if b"-----BEGIN" in data:
                key = serialization.load_pem_private_key(data, pw)
            else:
                key = serialization.load_der_private_key(data, pw)
        except TypeError:
            raise KeyError_(
                f"key file {path} is encrypted: set HSMTLS_KEY_PASSWORD to its password"
            ) from None
        except ValueError as e:
            raise KeyError_(f"key file {path} is not a usable private key: {e}") from None
        is_p256 = isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
        if not isinstance(key, rsa.RSAPrivateKey) and not (signing_only and is_p256):
            if signing_only:
                raise KeyError_(f"key file {path} is neither an RSA nor an ECDSA P-256 key")
            raise KeyError_(f"key file {path} is not an RSA key (RSA key exchange needs RSA)")
        self._key = key
        self._rsa: rsa.RSAPrivateNumbers | None = None
        if isinstance(key, rsa.RSAPrivateKey):
            self._rsa_key = key
            self._rsa = key.private_numbers()
            self.n, self.e = self._rsa.public_numbers.n, self._rsa.public_numbers.e
            self.k = (self.n.bit_length() + 7) // 8
            # the implicit-rejection key, as OpenSSL 3.2 derives its own: from d
            self._ir_key = hashlib.sha256(b"hsmtls implicit rejection\0" + self._rsa.d.to_bytes(self.k, "big")).digest()
            self.openssl_rejects_implicitly = _openssl_rejects_implicitly(key)

    @property
    def premaster_note(self) -> str | None:
        """A start-up line when premasters are decrypted the slow way, else None."""
        if self._rsa is None or self.openssl_rejects_implicitly:
            return None
        from cryptography.hazmat.backends.openssl import backend

        return (f"note: {backend.openssl_version_text()} has no implicit rejection (3.2+): "
                f"{self.description} decrypts premasters by raw RSA in Python (blinded, branch-free, slower)")

    def _rsadp(self, c: int) -> int:
        """c^d mod n by CRT, with the base and both exponents blinded afresh each call:
        CPython's pow is not constant-time, so what its timing shows is tied neither to
        the ciphertext nor to a fixed exponent."""
        r = self._rsa
        assert r is not None
        p, q, n = r.p, r.q, self.n
        blind = secrets.randbelow(n - 3) + 2
        cb = c * pow(blind, self.e, n) % n
        m1 = pow(cb, r.dmp1 + secrets.randbits(64) * (p - 1), p)
        m2 = pow(cb, r.dmq1 + secrets.randbits(64) * (q - 1), q)
        mb = m2 + (r.iqmp * (m1 - m2) % p) * q
        return mb * pow(blind, -1, n) % n

    def decrypt_premaster(self, ciphertext: bytes) -> PremasterAnswer:
        """(good, message, deterministic substitute), as a token key answers."""
        if self._rsa is None:
            raise KeyError_(f"{self.description} is an ECDSA key: it cannot decrypt a premaster")
        ct = bytes(ciphertext)
        substitute = hmac.new(self._ir_key, ct, hashlib.sha384).digest()
        if not well_formed_ciphertext(ct, self.k, self.n):
            return (*depad_premaster(b"", self.k), substitute[:46])
        if self.openssl_rejects_implicitly:
            # a bad padding gives OpenSSL's own deterministic message, of any length:
            # the length check here and the engine's version check send it to the substitute
            return (*premaster_candidate(self._rsa_key.decrypt(ct, padding.PKCS1v15())), substitute[:46])
        em = self._rsadp(int.from_bytes(ct, "big")).to_bytes(self.k, "big")
        return (*depad_premaster(em, self.k), substitute[:46])

    def sign(self, scheme: str, hash_name: str, data: bytes) -> bytes:
        return self._sign(scheme, hash_name, bytes(data), False)

    def sign_digest(self, scheme: str, hash_name: str, digest: bytes) -> bytes:
        return self._sign(scheme, hash_name, bytes(digest), True)

    def _sign(self, scheme: str, hash_name: str, data: bytes, prehashed: bool) -> bytes:
        h = _HASHES[hash_name]()
        alg = utils.Prehashed(h) if prehashed else h
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            if scheme != "ecdsa_secp256r1_sha256":
                raise KeyError_(f"signature scheme {scheme} is not supported by {self.description}")
            return self._key.sign(data, ec.ECDSA(alg))
        if scheme.startswith("rsa_pkcs1_"):
            return self._key.sign(data, padding.PKCS1v15(), alg)
        if scheme.startswith("rsa_pss_rsae_"):
            pss = padding.PSS(mgf=padding.MGF1(_HASHES[hash_name]()), salt_length=h.digest_size)
            return self._key.sign(data, pss, alg)
        raise KeyError_(f"signature scheme {scheme} is not supported by {self.description}")


def write_private_file(path: os.PathLike | str, data: bytes, exclusive: bool = False) -> None:
    """Write a secret (a key, a PIN) readable by its owner only from the first byte on:
    created 0600 (whatever the umask), never chmod'ed after. exclusive: refuse to replace
    an existing file; else the new file takes the old one's place (os.replace)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    target = os.fspath(path)
    tmp = target if exclusive else f"{target}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if not exclusive:
            os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def load_private_key(
    spec: str, module: str | None = None, pin_file: str | None = None, pin: str | None = None,
    signing_only: bool = False,
) -> PrivateKey:
    """A key from a PEM/DER path or a pkcs11: URI (RFC 7512); signing_only: a client's
    key, which may also be ECDSA P-256 (PEM/DER files only)."""
    if spec.startswith("pkcs11:"):
        from hsmtls.hsm.keyops import TokenKey
        from hsmtls.hsm.token import TokenError
        from hsmtls.hsm.uri import URIError

        try:
            return TokenKey(spec, module=module, pin_file=pin_file, pin=pin)
        except (TokenError, URIError) as e:
            raise KeyError_(str(e)) from None
    return FileKey(spec, signing_only)


def run_key_operation(key: PrivateKey | None, req: KeyOperationRequest, sessions: Any = None) -> Any:
    """Answer the engine's request: with the key, or for a server's sessions with its
    `hsmtls.sessions.SessionStore` (blocking: call it from a worker thread)."""
    if req.kind in (FIND_SESSION, OPEN_TICKET, SEAL_TICKET):
        return sessions.answer(req) if sessions is not None else None
    if key is None:
        raise KeyError_("no private key for this operation")
    if req.kind == DECRYPT:
        return key.decrypt_premaster(req.data)
    if req.kind == SIGN:
        assert req.scheme is not None and req.hash_name is not None
        return key.sign(req.scheme, req.hash_name, bytes(req.data))
    if req.kind == SIGN_DIGEST:  # a client configured with TLSConfig.sign_digest
        assert req.scheme is not None and req.hash_name is not None
        sign_digest = getattr(key, "sign_digest", None)
        if sign_digest is None:
            raise KeyError_(f"{key.description} cannot sign a digest: leave TLSConfig.sign_digest off")
        return sign_digest(req.scheme, req.hash_name, bytes(req.data))
    raise KeyError_(f"unknown key operation {req.kind}")
