"""Build tlscore configurations from files named on the command line."""

from __future__ import annotations

import time

from tlscore import suites, x509
from tlscore.config import TLSConfig
from tlscore.errors import TLSError


class ConfigError(Exception):
    """A file or setting given by the user is unusable; the message says which and why."""


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}") from None


def load_cert_chain(path: str) -> list[bytes]:
    ders = x509.pem_to_der_list(_read(path, "certificate file"))
    if not ders:
        raise ConfigError(f"no PEM certificate found in {path}")
    return ders


def certificate_names(path: str, chain: list[bytes]) -> tuple[str, ...]:
    """The DNS names a server certificate is for (its subjectAltName), for SNI."""
    try:
        leaf = x509.parse_certificate(chain[0])
    except TLSError as e:
        raise ConfigError(f"{path}: not a usable certificate: {e.reason}") from None
    names = tuple(n.lower() for n in leaf.san_dns)
    if not names:
        raise ConfigError(f"{path} names no DNS name (subjectAltName): give its names with --sni NAME=CERT,KEY")
    return names


def load_anchors(path: str) -> list:
    anchors = [x509.parse_certificate(d) for d in load_cert_chain(path)]
    return anchors


def load_crls(paths: list[str] | tuple[str, ...], issuers: list) -> set[tuple[bytes, int]]:
    """Revoked (issuer, serial) pairs from CRL files, each checked against its CA."""
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives.asymmetric import rsa

    revoked: set[tuple[bytes, int]] = set()
    for path in paths:
        data = _read(path, "CRL file")
        try:
            crl = cx509.load_pem_x509_crl(data) if b"-----BEGIN" in data else cx509.load_der_x509_crl(data)
        except ValueError as e:
            raise ConfigError(f"{path} is not a CRL: {e}") from None
        issuer_der = crl.issuer.public_bytes()
        ca = next((a for a in issuers if bytes(a.subject) == issuer_der), None)
        if ca is None or not isinstance(ca.public_key, x509.RSAPublicKey):
            raise ConfigError(f"CRL {path} is from {crl.issuer.rfc4514_string()}, which is not one of the CAs given")
        if not crl.is_signature_valid(rsa.RSAPublicNumbers(ca.public_key.e, ca.public_key.n).public_key()):
            raise ConfigError(f"the signature on CRL {path} does not verify with its CA")
        if crl.next_update_utc is not None and crl.next_update_utc.timestamp() < time.time():
            raise ConfigError(
                f"CRL {path} is out of date (next update was {crl.next_update_utc:%Y-%m-%d}): get a fresh one"
            )
        revoked.update((issuer_der, r.serial_number) for r in crl)
    return revoked


def parse_ciphers(names: list[str] | tuple[str, ...] | None) -> list:
    if not names:
        return list(suites.ALL)
    out = []
    for n in names:
        for part in n.split(":"):
            s = suites.lookup(part.strip())
            if s is None:
                known = ", ".join(x.name for x in suites.ALL)
                raise ConfigError(f"unknown cipher suite {part!r}; known: {known}")
            out.append(s)
    return out


def server_config(
    cert: str,
    client_ca: str | None = None,
    verify_client: str | None = None,
    ciphers: list[str] | tuple[str, ...] | None = None,
    crls: list[str] | tuple[str, ...] = (),
    allow_sha1: bool = False,
) -> TLSConfig:
    mode = verify_client or ("require" if client_ca else "none")
    if mode != "none" and not client_ca:
        raise ConfigError("--verify-client needs --client-ca CA.pem to check client certificates")
    anchors = load_anchors(client_ca) if client_ca else []
    if crls and not anchors:
        raise ConfigError("--crl needs --client-ca: a CRL is checked against the CA that signed it")
    return TLSConfig(
        certificate_chain=load_cert_chain(cert),
        trust_anchors=anchors,
        client_auth=mode,
        cipher_suites=parse_ciphers(ciphers),
        revoked=load_crls(crls, anchors) if crls else None,
        allow_sha1=allow_sha1,
    )


def client_config(
    ca: str | None,
    server_name: str | None,
    cert: str | None = None,
    ciphers: list[str] | tuple[str, ...] | None = None,
    crls: list[str] | tuple[str, ...] = (),
    allow_cn: bool = False,
) -> TLSConfig:
    if ca is not None and not server_name:
        raise ConfigError("verifying the server needs its name (--servername)")
    anchors = load_anchors(ca) if ca else []
    return TLSConfig(
        allow_cn=allow_cn,
        revoked=load_crls(crls, anchors) if crls else None,
        trust_anchors=anchors,
        verify_peer=ca is not None,
        server_name=server_name,
        certificate_chain=load_cert_chain(cert) if cert else [],
        cipher_suites=parse_ciphers(ciphers),
        session_tickets=True,  # ask for a ticket, as OpenSSL's clients do
    )
