"""A throwaway test PKI made with `cryptography` (demo and tests).

Not for production: real deployments keep the CA key in the token (`hsmtls ca ...`).
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from .certprofiles import ca_builder, leaf_builder
from .keys import write_private_file

UTC = datetime.timezone.utc


def new_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def name(cn: str, org: str | None = "hsmtls") -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def make_ca(key: rsa.RSAPrivateKey, cn: str, days: int = 365) -> x509.Certificate:
    now = datetime.datetime.now(UTC)
    b = ca_builder(name(cn), key.public_key(), now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days))
    return b.sign(key, hashes.SHA256())


def issue(
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    cn: str,
    profile: str,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> x509.Certificate:
    """A leaf certificate of `profile` ("server" or "client": hsmtls.certprofiles)."""
    now = datetime.datetime.now(UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    b = leaf_builder(profile, name(cn), ca_cert, public_key, not_before or now - datetime.timedelta(hours=1),
                     not_after or now + datetime.timedelta(days=90), sans)
    return b.sign(ca_key, hashes.SHA256())


def write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def write_key(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Path:
    write_private_file(path, key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    return path


class DevPKI:
    """CA + server (localhost, 127.0.0.1) + client certificates written to a directory;
    the client has an RSA key (client.pem/.key) and an ECDSA P-256 one
    (client_ec.pem/.key)."""

    def __init__(self, directory: Path, ca_name: str = "hsmtls demo CA") -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.dir = d
        ca_key = new_key()
        ca = make_ca(ca_key, ca_name)
        server_key, client_key = new_key(), new_key()
        self.ca_cert = write_cert(d / "ca.pem", ca)
        self.ca_key = write_key(d / "ca.key", ca_key)
        self.server_cert = write_cert(
            d / "server.pem",
            issue(ca, ca_key, server_key.public_key(), "localhost", "server",
                  dns=("localhost",), ips=("127.0.0.1",)),
        )
        self.server_key = write_key(d / "server.key", server_key)
        self.client_cert = write_cert(
            d / "client.pem", issue(ca, ca_key, client_key.public_key(), "hsmtls demo client", "client")
        )
        self.client_key = write_key(d / "client.key", client_key)
        client_ec_key = new_ec_key()
        self.client_ec_cert = write_cert(
            d / "client_ec.pem",
            issue(ca, ca_key, client_ec_key.public_key(), "hsmtls demo client (ECDSA)", "client"),
        )
        self.client_ec_key = write_key(d / "client_ec.key", client_ec_key)
