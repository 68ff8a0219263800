"""The test PKI (tests/support/pki.py) is what the interop tests assume: checked with OpenSSL's
own `openssl verify`, so a broken fixture fails here and not as a puzzling interop cell."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI missing")


def verify(ca, cert, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca), *extra, str(cert)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.mark.parametrize("which", ["server_cert", "client_cert", "server_wrong_host_cert"])
def test_good_chain_verifies(pki, which):
    result = verify(pki.ca_cert, getattr(pki, which))
    assert result.returncode == 0, result.stdout + result.stderr
    assert ": OK" in result.stdout


def test_server_cert_names_localhost_and_loopback(pki):
    for flag, value in (("-verify_hostname", "localhost"), ("-verify_ip", "127.0.0.1")):
        result = verify(pki.ca_cert, pki.server_cert, flag, value)
        assert result.returncode == 0, result.stdout + result.stderr
    result = verify(pki.ca_cert, pki.server_cert, "-purpose", "sslserver")
    assert result.returncode == 0, result.stdout + result.stderr
    result = verify(pki.ca_cert, pki.client_cert, "-purpose", "sslclient")
    assert result.returncode == 0, result.stdout + result.stderr


def test_expired_fails(pki):
    result = verify(pki.ca_cert, pki.server_expired_cert)
    assert result.returncode != 0
    assert "certificate has expired" in result.stdout + result.stderr


def test_wrong_host_fails_for_localhost(pki):
    result = verify(pki.ca_cert, pki.server_wrong_host_cert, "-verify_hostname", "localhost")
    assert result.returncode != 0
    assert "hostname mismatch" in result.stdout + result.stderr


@pytest.mark.parametrize("which", ["server_other_ca_cert", "client_other_ca_cert"])
def test_other_ca_fails_against_our_ca_and_verifies_against_its_own(pki, which):
    result = verify(pki.ca_cert, getattr(pki, which))
    assert result.returncode != 0
    assert "unable to get local issuer certificate" in result.stdout + result.stderr
    result = verify(pki.other_ca_cert, getattr(pki, which))
    assert result.returncode == 0, result.stdout + result.stderr


def test_extensions(pki):
    ca = load(pki.ca_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign

    server = load(pki.server_cert)
    ku = server.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert server.subject.rfc4514_string() == pki.server_subject == "CN=localhost"

    client = load(pki.client_cert)
    ku = client.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_encipherment
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert client.subject.rfc4514_string() == pki.client_subject

    wrong = load(pki.server_wrong_host_cert)
    san = wrong.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.DNSName("wrong.example")]

    # the other CA is a distinct CA, not the same one re-issued
    assert load(pki.other_ca_cert).public_key() != ca.public_key()
    assert load(pki.server_other_ca_cert).issuer == load(pki.other_ca_cert).subject


def test_keys_are_pkcs8_rsa_2048(pki):
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    for field in ("ca_key", "server_key", "client_key", "other_ca_key"):
        data = getattr(pki, field).read_bytes()
        assert data.startswith(b"-----BEGIN PRIVATE KEY-----"), field
        assert load_pem_private_key(data, None).key_size == 2048


def test_key_matches_certificate(pki):
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    pairs = [
        ("server_cert", "server_key"),
        ("client_cert", "client_key"),
        ("server_expired_cert", "server_expired_key"),
        ("server_wrong_host_cert", "server_wrong_host_key"),
        ("server_other_ca_cert", "server_other_ca_key"),
        ("client_other_ca_cert", "client_other_ca_key"),
        ("ca_cert", "ca_key"),
        ("other_ca_cert", "other_ca_key"),
    ]
    for cert, key in pairs:
        public = load_pem_private_key(getattr(pki, key).read_bytes(), None).public_key()
        assert load(getattr(pki, cert)).public_key() == public, cert
