"""A private key inside a PKCS#11 token, answering the engine's key operations.

Premaster decryption uses raw RSA (CKM_RSA_X_509) and removes the PKCS#1 v1.5 padding
here, with no branch on the result, instead of CKM_RSA_PKCS: SoftHSM2 (like most
tokens) answers a bad padding under CKM_RSA_PKCS with an error return, which becomes a
Python exception -- a different code path, and a different time, for bad ciphertexts.
With CKM_RSA_X_509 every ciphertext below the modulus takes the same token call and
the same host code (measured by `hsmtls bench premaster`).

Implicit rejection without the private exponent: the substitute premaster for a bad
ciphertext is HMAC-SHA384 over the ciphertext with a non-extractable secret key kept
in the same token (object "<key>-implicit-rejection"), so the same bad ciphertext
always yields the same premaster, like OpenSSL 3.2's implicit rejection, which needs
the private key. It is computed for every ciphertext, good or bad.

What Python cannot promise: big-int and bytes operations in CPython are not
constant-time; the selection below avoids branches and early exits on secret data,
which is the part our code controls.
"""

from __future__ import annotations

import logging
from typing import Any

from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e

from tlscore.keyschedule import ct_select

from .token import SessionPool, Token, TokenError, describe_error, read_pin
from .uri import PKCS11URI

log = logging.getLogger("hsmtls.hsm")

IR_SUFFIX = "-implicit-rejection"

# Ciphertext problems the peer can see anyway (length, value >= modulus): answering
# them with the substitute is not a secret-dependent branch.
PUBLIC_INPUT_ERRORS = (
    p11e.EncryptedDataInvalid,
    p11e.EncryptedDataLenRange,
    p11e.DataInvalid,
    p11e.DataLenRange,
)

SIGN_MECHANISMS = {
    "rsa_pkcs1_sha1": (Mechanism.SHA1_RSA_PKCS, None),
    "rsa_pkcs1_sha256": (Mechanism.SHA256_RSA_PKCS, None),
    "rsa_pkcs1_sha384": (Mechanism.SHA384_RSA_PKCS, None),
    "rsa_pkcs1_sha512": (Mechanism.SHA512_RSA_PKCS, None),
    "rsa_pss_rsae_sha256": (Mechanism.SHA256_RSA_PKCS_PSS, (Mechanism.SHA256, MGF.SHA256, 32)),
    "rsa_pss_rsae_sha384": (Mechanism.SHA384_RSA_PKCS_PSS, (Mechanism.SHA384, MGF.SHA384, 48)),
    "rsa_pss_rsae_sha512": (Mechanism.SHA512_RSA_PKCS_PSS, (Mechanism.SHA512, MGF.SHA512, 64)),
}


def depad_premaster(em: bytes, k: int) -> tuple[int, bytes]:
    """(good, last 48 bytes) for EM = 00 02 PS(>=8 nonzero) 00 M(48), branch-free."""
    em = em.rjust(k, b"\x00")[-k:]
    sep = k - 49
    bad = em[0] | (em[1] ^ 2) | em[sep]
    zeros = 0
    for i in range(2, sep):
        zeros |= ((em[i] - 1) >> 8) & 1  # 1 if em[i] == 0
    good = (((bad - 1) >> 8) & 1) & (zeros ^ 1) & (((sep - 10) >> 31) ^ -1) & 1
    return good, em[k - 48:]


class TokenKey:
    """An RSA private key in a token, named by a pkcs11: URI."""

    performer = "token"

    def __init__(
        self,
        uri_text: str,
        module: str | None = None,
        pin_file: str | None = None,
        pool_size: int = 8,
        pin: str | None = None,
        implicit_rejection: bool = True,
    ) -> None:
        uri = PKCS11URI.parse(uri_text)
        if uri.object is None and uri.id is None:
            raise TokenError(f"the key URI names no object: add ;object=NAME to {uri_text}")
        if uri.type not in (None, "private"):
            raise TokenError(f"the key URI must name a private key (type=private), not type={uri.type}")
        self.uri = uri
        self.token = Token(uri, module)
        self.pool = SessionPool(self.token, pin if pin is not None else read_pin(pin_file, uri), pool_size)
        self.description = f"token {self.token.label!r} object {uri.object or uri.id!r}"
        with self.pool.session() as w:
            priv = self._private(w)
            if priv.key_type != KeyType.RSA:
                raise TokenError(f"{self.description} is not an RSA key")
            pub = self._public(w)
            self.n = int.from_bytes(pub[Attribute.MODULUS], "big")
            self.e = int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big")
            self.k = (self.n.bit_length() + 7) // 8
            self.has_ir_key = self._ir_key(w) is not None
        if not self.has_ir_key and implicit_rejection:
            try:
                ensure_implicit_rejection_key(self.token, self._ir_label())
                self.has_ir_key = True
            except TokenError as e:
                log.warning("%s: no implicit-rejection key (%s); bad premasters get random substitutes", self.description, e)

    # -- objects (handles cached per session) ----------------------------------------

    def _ir_label(self) -> str:
        return (self.uri.object or "key") + IR_SUFFIX

    def _find(self, w: Any, cls: ObjectClass, label: str | None, id_: bytes | None, required: bool = True) -> Any:
        key = (cls, label, id_)
        if key not in w.objects:
            attrs: dict = {Attribute.CLASS: cls}
            if label is not None:
                attrs[Attribute.LABEL] = label
            if id_ is not None:
                attrs[Attribute.ID] = id_
            found = list(w.session.get_objects(attrs))
            if not found:
                if not required:
                    return None
                raise TokenError(
                    f"no {cls.name.lower().replace('_', ' ')} {label or id_!r} on token {self.token.label!r}: "
                    "create it with `hsmtls token keygen --object NAME` or check the URI"
                )
            if len(found) > 1:
                raise TokenError(f"several objects match {label or id_!r} on token {self.token.label!r}")
            w.objects[key] = found[0]
        return w.objects[key]

    def _private(self, w: Any) -> Any:
        return self._find(w, ObjectClass.PRIVATE_KEY, self.uri.object, self.uri.id)

    def _public(self, w: Any) -> Any:
        return self._find(w, ObjectClass.PUBLIC_KEY, self.uri.object, self.uri.id)

    def _ir_key(self, w: Any) -> Any:
        return self._find(w, ObjectClass.SECRET_KEY, self._ir_label(), None, required=False)

    # -- operations --------------------------------------------------------------------

    def decrypt_premaster(self, ciphertext: bytes) -> tuple[bytes, bytes]:
        """(premaster candidate, deterministic substitute) for the engine to choose from."""
        ct = bytes(ciphertext)
        with self.pool.session() as w:
            priv = self._private(w)
            ir = self._ir_key(w) if self.has_ir_key else None
            substitute = ir.sign(ct, mechanism=Mechanism.SHA384_HMAC) if ir is not None else None
            try:
                em = priv.decrypt(ct, mechanism=Mechanism.RSA_X_509)
            except PUBLIC_INPUT_ERRORS:
                em = b""
        if substitute is None:
            import os

            substitute = os.urandom(48)
        good, m = depad_premaster(bytes(em), self.k)
        return ct_select(good, m, substitute), substitute[:46]

    def sign(self, scheme: str, hash_name: str, data: bytes) -> bytes:
        try:
            mech, param = SIGN_MECHANISMS[scheme]
        except KeyError:
            raise TokenError(f"signature scheme {scheme} is not supported with token keys") from None
        with self.pool.session() as w:
            return bytes(self._private(w).sign(bytes(data), mechanism=mech, mechanism_param=param))

    def public_key(self) -> Any:
        """The key's public half, as a `cryptography` RSA public key (for certificates)."""
        from cryptography.hazmat.primitives.asymmetric import rsa

        return rsa.RSAPublicNumbers(self.e, self.n).public_key()

    def close(self) -> None:
        self.pool.close()


def ensure_implicit_rejection_key(token: Token, label: str) -> None:
    """A non-extractable HMAC key next to the RSA key, made once (needs a login)."""
    session = token.open(None, rw=True)  # logged in already: no C_Logout on close
    try:
        found = list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}))
        if not found:
            session.generate_key(
                KeyType.GENERIC_SECRET, 512, label=label, store=True,
                template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.SIGN: True,
                    Attribute.VERIFY: True,
                    Attribute.ENCRYPT: False,
                    Attribute.DECRYPT: False,
                    Attribute.WRAP: False,
                    Attribute.UNWRAP: False,
                    Attribute.DERIVE: False,
                },
            )
    except p11e.PKCS11Error as e:
        raise TokenError(f"cannot create {label!r}: {describe_error(e)}") from None
    finally:
        try:
            session.close()
        except p11e.PKCS11Error:
            pass
