"""Provisioning: SoftHSM2 tokens, keys made or imported inside a token, and
certificates whose signature is made by a CA key in the token.

Certificates are assembled with `cryptography` for the to-be-signed part and the
signature is made in the token: cryptography signs only with keys it holds, so the
TBSCertificate is taken from a certificate built with a throwaway key of the same
algorithm (the TBS does not depend on the signing key), signed in the token, and the
signature put in place of the throwaway one.
"""

from __future__ import annotations

import ctypes
import datetime
import ipaddress
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from asn1crypto import crl as a1crl
from asn1crypto import x509 as a1x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pkcs11 import Attribute, KeyType, ObjectClass, TokenFlag
from pkcs11 import exceptions as p11e

from ..certprofiles import ca_builder, leaf_builder
from .keyops import IR_SUFFIX, TokenKey, ensure_implicit_rejection_key
from .token import Token, TokenError, describe_error, find_module, load_module
from .uri import PKCS11URI

UTC = datetime.timezone.utc


# --- SoftHSM2 tokens ------------------------------------------------------------------


def default_softhsm_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "hsmtls" / "softhsm"


def write_softhsm_conf(directory: Path) -> Path:
    directory = directory.resolve()
    (directory / "tokens").mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n"
    )
    return conf


def is_softhsm(module_path: str) -> bool:
    return "softhsm" in Path(module_path).name.lower()


def check_can_init(label: str, module: str | None = None, force: bool = False) -> str:
    """The module's path if a token `label` may be initialised there, else TokenError."""
    module_path = find_module(module)
    if not is_softhsm(module_path) and not force:
        raise TokenError(
            f"{module_path} is not SoftHSM2: initialising a real token erases it; pass --force if you mean it"
        )
    lib = load_module(module_path)
    try:
        existing = [t.label for t in lib.get_tokens()]
    except p11e.PKCS11Error:
        existing = []
    if label in existing:
        raise TokenError(f"a token labelled {label!r} already exists in {module_path}")
    return module_path


def init_token(label: str, user_pin: str, so_pin: str, module: str | None = None, force: bool = False) -> Token:
    """Initialise the first free slot's token with a label, SO PIN and user PIN.

    Uses C_InitToken through ctypes (python-pkcs11 has no binding for it) so that no
    PIN is passed on a command line, as `softhsm2-util --pin` would.
    """
    module_path = check_can_init(label, module, force)
    lib = load_module(module_path)
    free = None
    for slot in lib.get_slots(token_present=True):
        tok = slot.get_token()
        if not tok.flags & TokenFlag.TOKEN_INITIALIZED:
            free = slot
            break
    if free is None:
        raise TokenError(f"no free slot in {module_path} to initialise a token in")
    cdll = ctypes.CDLL(module_path)
    c_label = label.encode()[:32].ljust(32, b" ")
    so = so_pin.encode()
    rv = cdll.C_InitToken(ctypes.c_ulong(free.slot_id), ctypes.c_char_p(so), ctypes.c_ulong(len(so)),
                          ctypes.c_char_p(c_label))
    if rv != 0:
        raise TokenError(f"C_InitToken failed with CKR 0x{rv:x}")
    lib.reinitialize()  # SoftHSM2 moves the new token to a new slot id
    token = Token(PKCS11URI({"token": label}), module_path)
    session = token.token.open(rw=True, so_pin=so_pin)
    try:
        session.init_pin(user_pin)
    finally:
        session.close()
    return token


# --- keys -------------------------------------------------------------------------------


@contextmanager
def _new_key_session(token: Token, pin: str, name: str, key_id: bytes, what: str) -> Iterator[Any]:
    """A R/W session for making key `name` (refused if it exists); token errors become
    one-line TokenErrors; the key's implicit-rejection HMAC key (same CKA_ID) is made
    afterwards."""
    session = token.open(pin, rw=True)
    try:
        if list(session.get_objects({Attribute.LABEL: name, Attribute.CLASS: ObjectClass.PRIVATE_KEY})):
            raise TokenError(f"token {token.label!r} already has a key named {name!r}")
        yield session
        ensure_implicit_rejection_key(token, name + IR_SUFFIX, key_id)
    except p11e.PKCS11Error as e:
        raise TokenError(f"{what} on {token.label!r} failed: {describe_error(e)}") from None
    finally:
        session.close()


def keygen(token: Token, pin: str, name: str, bits: int = 2048) -> PKCS11URI:
    """An RSA key pair generated inside the token; the private half sensitive and
    never extractable, plus its implicit-rejection HMAC key."""
    if bits not in (2048, 3072, 4096):
        raise TokenError("--bits must be 2048, 3072 or 4096")
    key_id = secrets.token_bytes(8)
    with _new_key_session(token, pin, name, key_id, "key generation") as session:
        session.generate_keypair(
            KeyType.RSA, bits, id=key_id, label=name, store=True,
            public_template={Attribute.VERIFY: True, Attribute.ENCRYPT: True, Attribute.WRAP: False},
            private_template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.PRIVATE: True,
                Attribute.SIGN: True,
                Attribute.DECRYPT: True,
                Attribute.UNWRAP: False,
                Attribute.DERIVE: False,
            },
        )
    return PKCS11URI({"token": token.label, "object": name, "type": "private"})


def import_key(token: Token, pin: str, name: str, pem_path: str) -> PKCS11URI:
    """Import an existing RSA key (migrations): stored sensitive and non-extractable."""
    try:
        key = serialization.load_pem_private_key(Path(pem_path).read_bytes(), None)
    except (OSError, ValueError, TypeError) as e:
        raise TokenError(f"cannot load {pem_path} as an unencrypted PEM private key: {e}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TokenError(f"{pem_path} is not an RSA key")
    nums = key.private_numbers()
    pub = nums.public_numbers

    def b(i: int) -> bytes:
        return i.to_bytes((i.bit_length() + 7) // 8, "big")

    key_id = secrets.token_bytes(8)
    with _new_key_session(token, pin, name, key_id, "key import") as session:
        common = {Attribute.KEY_TYPE: KeyType.RSA, Attribute.TOKEN: True, Attribute.LABEL: name, Attribute.ID: key_id}
        session.create_object({
            **common,
            Attribute.CLASS: ObjectClass.PUBLIC_KEY,
            Attribute.MODULUS: b(pub.n),
            Attribute.PUBLIC_EXPONENT: b(pub.e),
            Attribute.VERIFY: True,
            Attribute.ENCRYPT: True,
        })
        # written once, never read back
        session.create_object({
            **common,
            Attribute.CLASS: ObjectClass.PRIVATE_KEY,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
            Attribute.DECRYPT: True,
            Attribute.MODULUS: b(pub.n),
            Attribute.PUBLIC_EXPONENT: b(pub.e),
            Attribute.PRIVATE_EXPONENT: b(nums.d),
            Attribute.PRIME_1: b(nums.p),
            Attribute.PRIME_2: b(nums.q),
            Attribute.EXPONENT_1: b(nums.dmp1),
            Attribute.EXPONENT_2: b(nums.dmq1),
            Attribute.COEFFICIENT: b(nums.iqmp),
        })
    return PKCS11URI({"token": token.label, "object": name, "type": "private"})


def remake_implicit_rejection_key(token: Token, pin: str, name: str) -> PKCS11URI:
    """Replace key `name`'s implicit-rejection key (a wrongly made or missing one) by a
    new one made in the token with the key's CKA_ID."""
    session = token.open(pin, rw=True)
    try:
        found = list(session.get_objects({Attribute.LABEL: name, Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        if len(found) != 1:
            raise TokenError(f"token {token.label!r} has {len(found) or 'no'} private keys named {name!r}")
        key_id = bytes(found[0][Attribute.ID] or b"")
        ensure_implicit_rejection_key(token, name + IR_SUFFIX, key_id, replace=True)
    except p11e.PKCS11Error as e:
        raise TokenError(f"remaking {name + IR_SUFFIX!r} on {token.label!r} failed: {describe_error(e)}") from None
    finally:
        session.close()
    return PKCS11URI({"token": token.label, "object": name + IR_SUFFIX, "type": "secret-key"})


# Attributes that are public for every key; the listing reads nothing else.
_TYPE_NAMES = {ObjectClass.PRIVATE_KEY: "private", ObjectClass.PUBLIC_KEY: "public",
               ObjectClass.SECRET_KEY: "secret-key", ObjectClass.CERTIFICATE: "cert",
               ObjectClass.DATA: "data"}


def _attr(obj: Any, attr: Attribute) -> Any:
    try:
        return obj[attr]
    except (p11e.AttributeTypeInvalid, p11e.AttributeSensitive, p11e.PKCS11Error, KeyError, NotImplementedError):
        return None


def list_objects(token: Token, pin: str | None) -> list[dict]:
    """Objects on a token (logged in when a PIN is given), public attributes only."""
    session = token.open(pin) if pin else token.open()
    out = []
    try:
        for obj in session.get_objects():
            cls = _attr(obj, Attribute.CLASS)
            if cls not in _TYPE_NAMES:
                continue
            label = _attr(obj, Attribute.LABEL) or ""
            row = {"uri": str(PKCS11URI({"token": token.label, "object": label, "type": _TYPE_NAMES[cls]})),
                   "label": label, "type": _TYPE_NAMES[cls]}
            kt = _attr(obj, Attribute.KEY_TYPE)
            if kt is not None:
                row["key_type"] = getattr(kt, "name", str(kt))
            modulus = _attr(obj, Attribute.MODULUS) if kt == KeyType.RSA else None
            if modulus is not None:
                row["bits"] = len(modulus) * 8
            elif cls == ObjectClass.SECRET_KEY:
                length = _attr(obj, Attribute.VALUE_LEN)
                if length is not None:
                    row["bits"] = length * 8
            if cls in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY):
                row["sensitive"] = _attr(obj, Attribute.SENSITIVE)
                row["extractable"] = _attr(obj, Attribute.EXTRACTABLE)
                row["always_sensitive"] = _attr(obj, Attribute.ALWAYS_SENSITIVE)
                row["never_extractable"] = _attr(obj, Attribute.NEVER_EXTRACTABLE)
            out.append(row)
    finally:
        session.close()
    return sorted(out, key=lambda r: (r["label"], r["type"]))


def public_key_from_token(uri_text: str, module: str | None, pin: str) -> rsa.RSAPublicKey:
    uri = PKCS11URI.parse(uri_text)
    token = Token(uri, module)
    session = token.open(pin)
    try:
        attrs = {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: uri.object}
        found = list(session.get_objects(attrs))
        if not found:
            raise TokenError(f"no public key {uri.object!r} on token {token.label!r}")
        n = int.from_bytes(found[0][Attribute.MODULUS], "big")
        e = int.from_bytes(found[0][Attribute.PUBLIC_EXPONENT], "big")
    finally:
        session.close()
    return rsa.RSAPublicNumbers(e, n).public_key()


# --- certificates signed in the token --------------------------------------------------------

_THROWAWAY: list[rsa.RSAPrivateKey] = []


def _throwaway_key() -> rsa.RSAPrivateKey:
    if not _THROWAWAY:
        _THROWAWAY.append(rsa.generate_private_key(65537, 2048))
    return _THROWAWAY[0]


def sign_in_token(builder: x509.CertificateBuilder, ca_key: TokenKey) -> x509.Certificate:
    draft = builder.sign(_throwaway_key(), hashes.SHA256())
    tbs = draft.tbs_certificate_bytes
    signature = ca_key.sign("rsa_pkcs1_sha256", "sha256", tbs)
    cert = a1x509.Certificate.load(draft.public_bytes(serialization.Encoding.DER))
    cert["signature_value"] = signature
    real = x509.load_der_x509_certificate(cert.dump(force=True))
    _check_token_signature(ca_key, real.signature, real.tbs_certificate_bytes)
    return real


def _check_token_signature(ca_key: TokenKey, signature: bytes, tbs: bytes) -> None:
    # the token's signature must verify with the CA's public key before we hand it out
    ca_key.public_key().verify(
        signature, tbs, padding.PKCS1v15(), hashes.SHA256()
    )


def crl_sign_in_token(
    ca_key: TokenKey, ca_cert: x509.Certificate, revoked_serials: list[int], days: int = 7
) -> x509.CertificateRevocationList:
    """A CRL listing the revoked serial numbers, signed inside the token (same
    throwaway-key trick as for certificates: the TBSCertList does not depend on it)."""
    if ca_cert.public_key().public_numbers().n != ca_key.n:  # type: ignore[union-attr]
        raise TokenError("the CA certificate does not belong to the CA key")
    now = datetime.datetime.now(UTC)
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + datetime.timedelta(days=days))
        .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
    )
    for serial in revoked_serials:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    draft = b.sign(_throwaway_key(), hashes.SHA256())
    signature = ca_key.sign("rsa_pkcs1_sha256", "sha256", draft.tbs_certlist_bytes)
    crl = a1crl.CertificateList.load(draft.public_bytes(serialization.Encoding.DER))
    crl["signature"] = signature
    real = x509.load_der_x509_crl(crl.dump(force=True))
    _check_token_signature(ca_key, real.signature, real.tbs_certlist_bytes)
    return real


def parse_subject(text: str) -> x509.Name:
    try:
        return x509.Name.from_rfc4514_string(text.replace("/", ",").strip(","))
    except ValueError as e:
        raise TokenError(f"cannot parse subject {text!r} (use \"CN=name,O=org\"): {e}") from None


def parse_sans(values: tuple[str, ...] | list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for v in values:
        for item in v.split(","):
            kind, _, val = item.strip().partition(":")
            if kind.upper() == "DNS" and val:
                out.append(x509.DNSName(val))
            elif kind.upper() == "IP" and val:
                out.append(x509.IPAddress(ipaddress.ip_address(val)))
            else:
                raise TokenError(f"SAN {item!r} must be DNS:name or IP:address")
    return out


def ca_init(ca_key: TokenKey, subject: str, days: int = 3650) -> x509.Certificate:
    now = datetime.datetime.now(UTC)
    b = ca_builder(parse_subject(subject), ca_key.public_key(), now - datetime.timedelta(minutes=5),
                   now + datetime.timedelta(days=days))
    return sign_in_token(b, ca_key)


LOCALHOST_SUBJECT = "CN=localhost,O=hsmtls"
LOCALHOST_SANS = ("DNS:localhost", "IP:127.0.0.1")


def issue_localhost_server(ca_key: TokenKey, ca_cert: x509.Certificate, public_key: rsa.RSAPublicKey,
                           days: int) -> x509.Certificate:
    """A server certificate for this machine (CN=localhost; DNS:localhost, IP:127.0.0.1),
    signed by the CA key in the token: what the demo, the benchmarks and the tests serve."""
    return ca_issue(ca_key, ca_cert, "server", public_key, parse_subject(LOCALHOST_SUBJECT),
                    parse_sans(LOCALHOST_SANS), days)


def ca_issue(
    ca_key: TokenKey,
    ca_cert: x509.Certificate,
    profile: str,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    subject: x509.Name,
    sans: list[x509.GeneralName],
    days: int,
) -> x509.Certificate:
    if profile not in ("server", "client"):
        raise TokenError("--profile must be server or client")
    if profile == "server" and not isinstance(public_key, rsa.RSAPublicKey):
        raise TokenError("a server certificate needs an RSA key (RSA key exchange); ECDSA P-256 is for clients")
    if (ca_cert.public_key().public_numbers().n != ca_key.n):  # type: ignore[union-attr]
        raise TokenError("the CA certificate does not belong to the CA key")
    now = datetime.datetime.now(UTC)
    if profile == "server" and not sans:
        cns = subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
        if not cns:
            raise TokenError("a server certificate needs --san DNS:name (or a CN to copy)")
        sans = [x509.DNSName(str(cns[0].value))]
    b = leaf_builder(profile, subject, ca_cert, public_key, now - datetime.timedelta(minutes=5),
                     min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc), sans)
    return sign_in_token(b, ca_key)
