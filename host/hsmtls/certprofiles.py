"""The certificate profiles, in one place: what a CA, a server and a client certificate
carry, for every issuer here (the development PKI in files, hsmtls.devpki; the CA in a
token, hsmtls.hsm.provision). Callers add names and validity, and sign.

- CA: basicConstraints CA (critical), keyUsage keyCertSign + cRLSign (critical), a
  subjectKeyIdentifier.
- server: not a CA (critical), keyUsage digitalSignature + keyEncipherment (critical:
  ECDHE_RSA signs, RSA key exchange encrypts to the key), extendedKeyUsage serverAuth,
  its names in subjectAltName.
- client: not a CA, keyUsage digitalSignature (critical), extendedKeyUsage clientAuth.
- every leaf: a subjectKeyIdentifier, and an authorityKeyIdentifier when the issuer's
  certificate is at hand.
"""

from __future__ import annotations

import datetime
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

PROFILES = ("server", "client")


def _key_usage(*, digital_signature: bool = False, key_encipherment: bool = False, ca: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature, False, key_encipherment, False, False, ca, ca, False, False)


def ca_builder(subject: x509.Name, public_key: Any, not_before: datetime.datetime,
               not_after: datetime.datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def leaf_builder(profile: str, subject: x509.Name, issuer: x509.Certificate | x509.Name, public_key: Any,
                 not_before: datetime.datetime, not_after: datetime.datetime,
                 sans: list[x509.GeneralName] | None = None) -> x509.CertificateBuilder:
    """A server or client certificate's builder; with the issuer's certificate (not only
    its name) it names the issuer's key too (authorityKeyIdentifier)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, not {profile!r}")
    server = profile == "server"
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if isinstance(issuer, x509.Certificate) else issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, key_encipherment=server), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                              else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if isinstance(issuer, x509.Certificate):
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()),  # type: ignore[arg-type]
                            critical=False)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b
