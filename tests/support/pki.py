"""A throwaway test PKI written as PEM files, for the interop and bad-certificate tests.

`make_pki(directory)` creates two CAs ("hsmtls test CA" and "hsmtls other test CA",
each with its own key), a good server and client certificate under the first, the
broken server certificates the client must refuse (expired, wrong host name, signed by
the other CA) and a client certificate under the other CA. Names are CN only, so a
subject reads `CN=localhost` in every notation. Every key is RSA 2048 written as
unencrypted PKCS#8 ("BEGIN PRIVATE KEY"), every signature SHA-256. RSA key generation
dominates the cost, so each key is generated once: the broken server certificates reuse
the server key, the other CA's client certificate the client key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from hsmtls.certprofiles import ca_builder, leaf_builder

KEY_BITS = 2048
SERVER_NAME = "localhost"
CA_NAME = "hsmtls test CA"
OTHER_CA_NAME = "hsmtls other test CA"
WRONG_HOST_NAME = "wrong.example"
CLIENT_NAME = "hsmtls test client"


@dataclass(frozen=True)
class PKI:
    """Paths of the PEM files; `*_cert` is a certificate, `*_key` a PKCS#8 private key."""

    dir: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    server_expired_cert: Path
    server_expired_key: Path
    server_wrong_host_cert: Path
    server_wrong_host_key: Path
    other_ca_cert: Path
    other_ca_key: Path
    server_other_ca_cert: Path
    server_other_ca_key: Path
    client_other_ca_cert: Path
    client_other_ca_key: Path

    # Subjects as `hsmtls connect` prints them (`peer: CN=localhost`).
    server_subject: str = "CN=" + SERVER_NAME
    client_subject: str = "CN=" + CLIENT_NAME


def _name(common_name: str) -> x509.Name:
    # CN only, so the subject reads the same in every notation (`CN=localhost`).
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _ca_cert(key: rsa.RSAPrivateKey, name: x509.Name, now: dt.datetime) -> x509.Certificate:
    # the profiles every issuer here uses (hsmtls.certprofiles)
    return ca_builder(name, key.public_key(), now - dt.timedelta(days=1),
                      now + dt.timedelta(days=3650)).sign(key, hashes.SHA256())


def _leaf_cert(
    *,
    subject: x509.Name,
    public_key: rsa.RSAPublicKey,
    issuer_cert: x509.Certificate,
    issuer_key: rsa.RSAPrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    server: bool,
    san: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    return leaf_builder("server" if server else "client", subject, issuer_cert, public_key, not_before, not_after,
                        san).sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> PKI:
    """Generate the whole test PKI into `directory` (created if missing) and return its paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    good_from, good_until = now - dt.timedelta(days=1), now + dt.timedelta(days=825)
    localhost_san = [
        x509.DNSName(SERVER_NAME),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]

    ca_key, other_ca_key = _key(), _key()
    server_key, client_key = _key(), _key()
    ca = _ca_cert(ca_key, _name(CA_NAME), now)
    other_ca = _ca_cert(other_ca_key, _name(OTHER_CA_NAME), now)

    def server(issuer, issuer_key, *, not_before=good_from, not_after=good_until, host=SERVER_NAME):
        # The wrong-host certificate carries the wrong name in CN too, so that neither a
        # SAN check nor a (deprecated) CN fallback can accept it for "localhost".
        san = localhost_san if host == SERVER_NAME else [x509.DNSName(host)]
        return _leaf_cert(
            subject=_name(host),
            public_key=server_key.public_key(),
            issuer_cert=issuer,
            issuer_key=issuer_key,
            not_before=not_before,
            not_after=not_after,
            server=True,
            san=san,
        )

    def client(issuer, issuer_key):
        return _leaf_cert(
            subject=_name(CLIENT_NAME),
            public_key=client_key.public_key(),
            issuer_cert=issuer,
            issuer_key=issuer_key,
            not_before=good_from,
            not_after=good_until,
            server=False,
        )

    server_key_path = _write_key(d / "server.key", server_key)
    client_key_path = _write_key(d / "client.key", client_key)
    return PKI(
        dir=d,
        ca_cert=_write_cert(d / "ca.pem", ca),
        ca_key=_write_key(d / "ca.key", ca_key),
        server_cert=_write_cert(d / "server.pem", server(ca, ca_key)),
        server_key=server_key_path,
        client_cert=_write_cert(d / "client.pem", client(ca, ca_key)),
        client_key=client_key_path,
        server_expired_cert=_write_cert(
            d / "server_expired.pem",
            server(
                ca,
                ca_key,
                not_before=now - dt.timedelta(days=30),
                not_after=now - dt.timedelta(days=1),
            ),
        ),
        server_expired_key=server_key_path,
        server_wrong_host_cert=_write_cert(
            d / "server_wrong_host.pem",
            server(ca, ca_key, host=WRONG_HOST_NAME),
        ),
        server_wrong_host_key=server_key_path,
        other_ca_cert=_write_cert(d / "other_ca.pem", other_ca),
        other_ca_key=_write_key(d / "other_ca.key", other_ca_key),
        server_other_ca_cert=_write_cert(d / "server_other_ca.pem", server(other_ca, other_ca_key)),
        server_other_ca_key=server_key_path,
        client_other_ca_cert=_write_cert(d / "client_other_ca.pem", client(other_ca, other_ca_key)),
        client_other_ca_key=client_key_path,
    )


if __name__ == "__main__":  # handy for manual interop sessions: python tests/support/pki.py DIR
    import sys

    pki = make_pki(Path(sys.argv[1] if len(sys.argv) > 1 else "pki"))
    for field, value in vars(pki).items():
        print(f"{field}: {value}")
