"""A private key inside a PKCS#11 token, answering the engine's key operations.

Premaster decryption uses raw RSA (CKM_RSA_X_509) and removes the PKCS#1 v1.5 padding
on the host (tlscore.pkcs1.depad_premaster), with no branch on the result, instead of
CKM_RSA_PKCS: SoftHSM2 (like most tokens) answers a bad padding under CKM_RSA_PKCS with
an error return, which becomes a Python exception -- a different code path, and a
different time, for bad ciphertexts. With CKM_RSA_X_509 every ciphertext below the
modulus takes the same token call and the same host code (measured by `hsmtls bench
premaster`).

A token error is not a way out of the countermeasure either. A ciphertext of the wrong
length, 0, or >= n never reaches the token (SoftHSM2 answers those with
CKR_GENERAL_ERROR): it is public, so it takes the substitute without a secret-dependent
branch. A token error on a well-formed ciphertext takes the substitute too, with a
rate-limited log line; only an error that means the session or login is gone
(token.SESSION_ERRORS) fails the operation and makes the pool reopen it. No ClientKeyExchange can
end a handshake early or make the server log in again.

Implicit rejection without the private exponent: the substitute premaster for a bad
ciphertext is HMAC-SHA384 over the ciphertext with a secret key kept in the same
token (object "<key>-implicit-rejection", with the RSA key's CKA_ID), so the same bad
ciphertext always yields the same premaster, like OpenSSL 3.2's implicit rejection,
which needs the private key. It is computed for every ciphertext, good or bad. A
substitute someone can predict would tell them which ciphertexts are good, so that key
must have been made inside the token and never have left it: at load it must be a
private, sensitive, never-extractable CKK_GENERIC_SECRET with the RSA key's id, or the
key is refused.

What Python cannot promise: big-int and bytes operations in CPython are not
constant-time; the selection avoids branches and early exits on secret data, which is
the part our code controls.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e

from tlscore.pkcs1 import depad_premaster

from ..keys import PremasterAnswer, well_formed_ciphertext
from .token import SESSION_ERRORS, SessionPool, Token, TokenError, describe_error, read_pin
from .uri import PKCS11URI

__all__ = ["IR_SUFFIX", "TokenKey", "ensure_implicit_rejection_key"]

log = logging.getLogger("hsmtls.hsm")

IR_SUFFIX = "-implicit-rejection"


class RateLimitedWarning:
    """One log line now, then at most one per `every` seconds, counting the rest."""

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self.count = 0  # every occurrence, for tests and for the next line
        self._last: float | None = None
        self._unreported = 0
        self._lock = threading.Lock()

    def __call__(self, msg: str, *args: Any) -> None:
        now = time.monotonic()
        with self._lock:
            self.count += 1
            if self._last is not None and now - self._last < self.every:
                self._unreported += 1
                return
            more, self._unreported, self._last = self._unreported, 0, now
        if more:
            msg += f" ({more} more since the last such line)"
        log.warning(msg, *args)


SIGN_MECHANISMS = {
    "rsa_pkcs1_sha1": (Mechanism.SHA1_RSA_PKCS, None),
    "rsa_pkcs1_sha256": (Mechanism.SHA256_RSA_PKCS, None),
    "rsa_pkcs1_sha384": (Mechanism.SHA384_RSA_PKCS, None),
    "rsa_pkcs1_sha512": (Mechanism.SHA512_RSA_PKCS, None),
    "rsa_pss_rsae_sha256": (Mechanism.SHA256_RSA_PKCS_PSS, (Mechanism.SHA256, MGF.SHA256, 32)),
    "rsa_pss_rsae_sha384": (Mechanism.SHA384_RSA_PKCS_PSS, (Mechanism.SHA384, MGF.SHA384, 48)),
    "rsa_pss_rsae_sha512": (Mechanism.SHA512_RSA_PKCS_PSS, (Mechanism.SHA512, MGF.SHA512, 64)),
}


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
        self.decrypt_errors = RateLimitedWarning()
        with self.pool.session() as w:
            priv = self._private(w)
            if priv.key_type != KeyType.RSA:
                raise TokenError(f"{self.description} is not an RSA key")
            self.key_id = bytes(priv[Attribute.ID] or b"")
            pub = self._public(w)
            self.n = int.from_bytes(pub[Attribute.MODULUS], "big")
            self.e = int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big")
            self.k = (self.n.bit_length() + 7) // 8
            self.has_ir_key = implicit_rejection and self._check_ir_key(w)
        if implicit_rejection and not self.has_ir_key:
            try:
                ensure_implicit_rejection_key(self.token, self._ir_label(), self.key_id)
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
        return self._find(w, ObjectClass.SECRET_KEY, self._ir_label(), self.key_id, required=False)

    def _check_ir_key(self, w: Any) -> bool:
        """False if there is no implicit-rejection key; raises if there is a wrong one."""
        label = self._ir_label()
        same_label = list(w.session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}))
        if not same_label:
            return False
        problems = []
        ours = [o for o in same_label if bytes(o[Attribute.ID] or b"") == self.key_id]
        if not ours:
            problems.append(f"has not the RSA key's id {self.key_id.hex() or '(none)'}")
        elif len(ours) > 1:
            problems.append(f"exists {len(ours)} times")
        else:
            problems = implicit_rejection_key_problems(ours[0])
        if problems:
            name = self.uri.object or "NAME"
            raise TokenError(
                f"{self.description}: its implicit-rejection key {label!r} {', '.join(problems)}; "
                f"refusing to use it: make a new one with `hsmtls token keygen --object {name} "
                "--implicit-rejection-only`"
            )
        return True

    # -- operations --------------------------------------------------------------------

    def decrypt_premaster(self, ciphertext: bytes) -> PremasterAnswer:
        """(good, message, deterministic substitute) for the engine to choose from."""
        ct = bytes(ciphertext)
        em = b""
        with self.pool.session() as w:
            ir = self._ir_key(w) if self.has_ir_key else None
            substitute = bytes(ir.sign(ct, mechanism=Mechanism.SHA384_HMAC)) if ir is not None else os.urandom(48)
            if well_formed_ciphertext(ct, self.k, self.n):
                try:
                    em = bytes(self._private(w).decrypt(ct, mechanism=Mechanism.RSA_X_509))
                except SESSION_ERRORS:
                    raise
                except p11e.PKCS11Error as e:
                    self.decrypt_errors("%s: the token failed a premaster decryption (%s); the handshake "
                                        "goes on with the substitute and will fail at Finished",
                                        self.description, describe_error(e))
        return (*depad_premaster(em, self.k), substitute[:46])

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


def implicit_rejection_key_problems(obj: Any) -> list[str]:
    """What is wrong with a secret key meant for implicit rejection (public attributes only)."""
    want = (
        (Attribute.KEY_TYPE, KeyType.GENERIC_SECRET, "is not a generic secret (CKK_GENERIC_SECRET)"),
        (Attribute.PRIVATE, True, "is not private (CKA_PRIVATE): anyone could have made it without the PIN"),
        (Attribute.SENSITIVE, True, "is not sensitive (CKA_SENSITIVE)"),
        (Attribute.EXTRACTABLE, False, "is extractable (CKA_EXTRACTABLE)"),
        (Attribute.NEVER_EXTRACTABLE, True, "has been extractable (CKA_NEVER_EXTRACTABLE false)"),
        (Attribute.SIGN, True, "cannot sign (CKA_SIGN)"),
    )
    problems = []
    for attr, value, problem in want:
        try:
            have = obj[attr]
        except p11e.PKCS11Error:
            have = None
        if have != value:
            problems.append(problem)
    return problems


def ensure_implicit_rejection_key(token: Token, label: str, key_id: bytes, replace: bool = False) -> None:
    """A never-extractable HMAC key next to the RSA key (same CKA_ID), made once (needs
    a login); replace: destroy any secret key of that label first and make a new one."""
    session = token.open(None, rw=True)  # logged in already: no C_Logout on close
    try:
        found = list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}))
        if replace:
            for obj in found:
                obj.destroy()
            found = []
        if not found:
            session.generate_key(
                KeyType.GENERIC_SECRET, 512, id=key_id or None, label=label, store=True,
                template={
                    Attribute.PRIVATE: True,
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
