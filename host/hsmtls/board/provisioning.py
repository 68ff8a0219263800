"""Device identity: the board makes its key, the token's CA certifies it.

Over the link (hsmlink protocol version 2): KEYGEN asks the board to generate a key
pair on the board (RSA, or ECDSA P-256 with {"type": "ec"}: firmware that lists the
"ecdsa" feature in its HELLO) and answer with a PKCS#10 request (CSR); the host checks the
request's self-signature and subject, has the CA key in the token sign a client
certificate for the request's public key (hsm.provision.ca_issue, profile "client"),
and sends the certificate and the trust anchor in INSTALL; the board stores them only
if the certificate carries the key it generated, and answers with the SHA-256 of each
file it wrote, which the host checks. The private key never crosses the link: nothing
the host receives contains it (tests check that too).

A board whose HELLO lists the "trust" feature takes KEYGEN and INSTALL (and ADMIN, its
settings) only signed by the CA of the trust anchor it already holds: the host asks it
for a CHALLENGE (a nonce for one request, and the anchors' SHA-256), and the CA key in
the token signs the request's text with that nonce in it (docs/board-security.md). A
board with no anchor yet (its first provisioning, or after a factory reset) takes them
unsigned.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hsmlink import protocol as P

from .hostlink import HostLink, LinkError

SUBJECT_KEYS = {"CN": x509.oid.NameOID.COMMON_NAME, "O": x509.oid.NameOID.ORGANIZATION_NAME,
                "OU": x509.oid.NameOID.ORGANIZATIONAL_UNIT_NAME, "C": x509.oid.NameOID.COUNTRY_NAME}


class ProvisionError(Exception):
    pass


@dataclass
class Provisioned:
    subject: str
    serial: int
    not_after: datetime.datetime
    cert_pem: bytes
    files: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    received: list[bytes] = field(default_factory=list)  # every payload the board sent


def default_subject() -> str:
    return f"CN=hsmtls board {os.urandom(3).hex()},O=hsmtls"


def parse_subject(text: str) -> list[list[str]]:
    """"CN=board 1,O=hsmtls" -> [["CN", "board 1"], ["O", "hsmtls"]] (order kept)."""
    out = []
    for part in text.split(","):
        k, sep, v = part.strip().partition("=")
        if not sep or k.strip().upper() not in SUBJECT_KEYS or not v.strip():
            raise ProvisionError(f"subject {text!r}: use CN=name[,O=org] (CN, O, OU, C)")
        out.append([k.strip().upper(), v.strip()])
    return out


class Signer(Protocol):
    """What signs a board's requests: the CA key (hsm.keyops.TokenKey)."""

    def sign(self, scheme: str, hash_name: str, data: bytes) -> bytes: ...


def sign_request(signer: Signer, op: str, challenge: str, fields: dict) -> dict:
    """A request the board takes from its CA: its fields as JSON text with "op" and the
    board's challenge, and the CA key's RSASSA-PKCS1-v1_5 SHA-256 signature over
    hsmlink's REQUEST_CONTEXT and that text."""
    req = json.dumps({"op": op, "challenge": challenge, **fields}, separators=(",", ":"))
    sig = signer.sign("rsa_pkcs1_sha256", "sha256", P.REQUEST_CONTEXT + req.encode())
    return {"req": req, "sig": base64.b64encode(sig).decode()}


def board_challenge(link: HostLink, timeout: float = 10.0, received: list[bytes] | None = None,
                    log: Callable[[str], None] | None = None) -> dict:
    """The board's CHALLENGE: {"c": nonce for one request, "anchors": [sha256 hex], "dev"}."""
    link.send(P.CHALLENGE, {})
    return P.unpack(_wait_for(link, P.CHALLENGE, "CHALLENGE", timeout, [] if received is None else received,
                              log or (lambda s: None)))


def trusts(link: HostLink) -> bool:
    """Whether the board holds the host to signed requests (its HELLO lists "trust")."""
    return "trust" in (link.hello.get("features") or [])


def request(link: HostLink, signer: Signer | None, op: str, fields: dict, anchor_pem: bytes | None = None,
            received: list[bytes] | None = None, log: Callable[[str], None] | None = None) -> dict:
    """The payload of a KEYGEN, INSTALL or ADMIN frame (op in lower case): signed with a
    fresh challenge for a board that has a trust anchor, the plain fields for one that
    has none yet (or firmware older than the "trust" feature). anchor_pem: the CA
    certificate of `signer`, to say at once when the board trusts another CA."""
    if not trusts(link):
        return fields
    ch = board_challenge(link, received=received, log=log)
    anchors = ch.get("anchors") or []
    if not anchors:
        return fields  # the first-provisioning window
    if signer is None:
        raise ProvisionError("the board has a trust anchor: a request needs its CA's key to sign it (--ca-key)")
    if anchor_pem is not None:
        fp = cert_fingerprint(anchor_pem)
        if fp not in anchors:
            raise ProvisionError(
                f"the board trusts another CA (sha256 {', '.join(a[:16] for a in anchors)}...), not {fp[:16]}...: "
                "only that CA's key can sign what it takes; or factory-reset the board (erase its flash: "
                "hsmtls board flash --erase, then deploy; docs/board-security.md)")
    return sign_request(signer, op, ch["c"], fields)


def admin(link: HostLink, signer: Signer | None, fields: dict, anchor_pem: bytes | None = None,
          timeout: float = 10.0) -> dict:
    """An ADMIN request (fields: {"set": "dev", "on": bool} | {"set": "time", "t": unix s} |
    {"set": "factory_reset"}); returns the board's answer {"dev", "time_floor", "anchor"}."""
    if not trusts(link):
        raise ProvisionError("the board's firmware predates signed settings (no 'trust' feature): deploy this one")
    payload = request(link, signer, "admin", fields, anchor_pem)
    link.send(P.ADMIN, payload)
    return P.unpack(_wait_for(link, P.ADMIN, "ADMIN", timeout, [], lambda s: None))


def _wait_for(link: HostLink, want: int, where: str, timeout: float, received: list[bytes],
              log: Callable[[str], None]) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frames, _ = link.poll(0.05)
        for ftype, payload in frames:
            received.append(bytes(payload))
            if ftype == want:
                return bytes(payload)
            if ftype == P.LOG:
                log(payload.decode("utf-8", "replace"))
            elif ftype == P.ERROR:
                err = P.unpack(payload)
                raise ProvisionError(f"board refused {where}: {err.get('reason')}")
            elif ftype == P.HELLO:
                raise ProvisionError(f"the board restarted during {where}")
    raise ProvisionError(f"no answer to {where} from the board within {timeout:.0f} s")


def verify_csr(der: bytes, subject: list[list[str]], min_bits: int = 2048,
               key_type: str = "rsa") -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_der_x509_csr(der)
    except ValueError as e:
        raise ProvisionError(f"the board's CSR does not parse: {e}") from None
    if not csr.is_signature_valid:
        raise ProvisionError("the board's CSR signature does not verify")
    pub = csr.public_key()
    if key_type == "ec":
        if not isinstance(pub, ec.EllipticCurvePublicKey) or not isinstance(pub.curve, ec.SECP256R1):
            raise ProvisionError("the board's CSR key is not ECDSA P-256")
    elif not isinstance(pub, rsa.RSAPublicKey) or pub.key_size < min_bits:
        raise ProvisionError(f"the board's CSR key is not RSA-{min_bits} or larger")
    got = sorted((a.oid.dotted_string, str(a.value)) for a in csr.subject)
    want = sorted((SUBJECT_KEYS[k].dotted_string, v) for k, v in subject)
    if got != want:
        raise ProvisionError(f"the board's CSR names {csr.subject.rfc4514_string()}, not the subject asked for")
    return csr


def issue(ca_key: Any, ca_cert: x509.Certificate, csr: x509.CertificateSigningRequest, days: int,
          validity: tuple[datetime.datetime, datetime.datetime] | None = None) -> x509.Certificate:
    """The client certificate for the CSR, signed by the CA key in the token.

    `validity` (not_before, not_after) overrides `days`: the HIL tests make an expired
    device certificate with it."""
    from ..hsm.provision import ca_issue, sign_in_token

    pub = csr.public_key()
    assert isinstance(pub, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey))
    if validity is None:
        return ca_issue(ca_key, ca_cert, "client", pub, csr.subject, [], days)
    from cryptography.x509.oid import ExtendedKeyUsageOID

    b = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    return sign_in_token(b, ca_key)


def provision_board(
    link: HostLink,
    ca_key: Any,
    ca_cert_pem: bytes,
    subject: str | None = None,
    days: int = 365,
    bits: int = 2048,
    validity: tuple[datetime.datetime, datetime.datetime] | None = None,
    log: Callable[[str], None] | None = None,
    keygen_timeout: float = 900.0,
    key_type: str = "ec",
    signer: Signer | None = None,
) -> Provisioned:
    """Run KEYGEN -> CSR -> certificate in the token -> INSTALL on a connected link.

    key_type "ec" (ECDSA P-256, the default: made and used far faster on the board) or
    "rsa" (of `bits`). A board that already has a trust anchor takes both requests only
    signed by that anchor's CA: `signer` (default: ca_key, whose certificate must then be
    the board's anchor)."""
    log = log or (lambda s: None)
    features = link.hello.get("features") or []
    if "provision" not in features:
        raise ProvisionError(
            f"the board's firmware (link v{link.hello.get('v', 1)}) cannot provision: deploy the current firmware"
        )
    if key_type not in ("rsa", "ec"):
        raise ProvisionError(f"key type {key_type!r}: use rsa or ec")
    if key_type == "ec" and "ecdsa" not in features:
        raise ProvisionError("the board's firmware cannot make an ECDSA key: deploy the current firmware")
    if trusts(link) and not link.hello.get("rng", True):
        log("warning: the board says its RNG is not fully seeded (an ESP32 with its radio off): its key is made "
            "from a pseudo-random stream (docs/board-security.md)")
    signed_by = ca_key if signer is None else signer
    anchor_pem = ca_cert_pem if signer is None else None
    names = parse_subject(subject or default_subject())
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    received: list[bytes] = []
    timings: dict[str, float] = {}
    t = time.perf_counter()
    fields: dict = {"type": "ec", "subject": names} if key_type == "ec" else {"bits": bits, "subject": names}
    link.send(P.KEYGEN, request(link, signed_by, "keygen", fields, anchor_pem, received, log))
    der = _wait_for(link, P.CSR, "KEYGEN", keygen_timeout, received, log)
    timings["keygen+csr (board)"] = time.perf_counter() - t
    t = time.perf_counter()
    csr = verify_csr(der, names, min(bits, 2048), key_type)
    cert = issue(ca_key, ca_cert, csr, days, validity)
    timings["sign certificate (token)"] = time.perf_counter() - t
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    t = time.perf_counter()
    fields = {"ca": ca_cert_pem.decode(), "cert": cert_pem.decode()}
    link.send(P.INSTALL, request(link, signed_by, "install", fields, anchor_pem, received, log))
    ans = P.unpack(_wait_for(link, P.INSTALLED, "INSTALL", 30.0, received, log))
    timings["install (board)"] = time.perf_counter() - t
    files = ans.get("files") or {}
    want = {"ca.pem": hashlib.sha256(ca_cert_pem).hexdigest(), "client.pem": hashlib.sha256(cert_pem).hexdigest()}
    for name, digest in want.items():
        if files.get(name) != digest:
            raise ProvisionError(f"{name} on the board does not match what was sent (sha256 {files.get(name)})")
    return Provisioned(
        subject=cert.subject.rfc4514_string(), serial=cert.serial_number,
        not_after=cert.not_valid_after_utc, cert_pem=cert_pem, files=files, timings=timings, received=received,
    )


def cert_fingerprint(pem: bytes) -> str:
    return x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256()).hex()


__all__ = ["LinkError", "ProvisionError", "Provisioned", "provision_board", "verify_csr", "issue", "sign_request",
           "board_challenge", "request", "admin"]
