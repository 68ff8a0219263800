"""Certificates that must be refused, on both sides, and the service that goes on after.

Client side: `hsmtls connect` to an s_server presenting an expired certificate, one for
another host name, or one from a CA we do not trust, exits 1 with one `error:` line
naming the problem, and sends s_server the matching fatal alert. Server side: `hsmtls
serve --verify-client require` refuses a client certificate from another CA and a
client without one, logs `handshake failed: ...`, and then still serves a good client;
`--verify-client optional` serves a client without a certificate.
"""

from __future__ import annotations

import re
import socket
import ssl

import pytest

from support.openssl_tools import ONE_WORKER, SServer, alert_seen, hsmtls_connect, s_client

pytestmark = pytest.mark.interop

# ONE_WORKER: "the server still serves a good client" must be the process that failed.


@pytest.mark.parametrize(
    "cert_field, reason, alerts",
    [
        ("server_expired_cert", r"expired", ["certificate_expired"]),
        # RFC 5246 leaves the alert for a name mismatch open: OpenSSL itself sends
        # bad_certificate, certificate_unknown is as good.
        (
            "server_wrong_host_cert",
            r"does not match host",
            ["certificate_unknown", "bad_certificate"],
        ),
        (
            "server_other_ca_cert",
            r"not signed by a trusted CA|unknown_ca|unknown CA",
            ["unknown_ca"],
        ),
    ],
    ids=["expired", "wrong-host", "other-ca"],
)
def test_our_client_refuses_bad_server_certificate(pki, hsmtls_cmd, cert_field, reason, alerts):
    with SServer(getattr(pki, cert_field), pki.server_key, mode="rev") as server:
        result = hsmtls_connect(
            hsmtls_cmd, server.port, ca=pki.ca_cert, servername="localhost", send="ping\\n"
        )
        assert result.returncode == 1, result
        lines = result.stderr.strip().splitlines()
        assert lines and lines[-1].startswith("error: "), result
        assert re.search(reason, result.stderr), result
        assert "received:" not in result.stdout, result
        server.wait_for("alert read:fatal")
        assert any(alert_seen(server.output(), a) for a in alerts), server.transcript()
        assert "gnip" not in server.output()


def python_client(pki, *, cert=None, key=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("AES128-GCM-SHA256")
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def good_client_works(pki, server, *, with_cert: bool = True) -> None:
    ctx = python_client(
        pki,
        cert=pki.client_cert if with_cert else None,
        key=pki.client_key if with_cert else None,
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"still here\n")
            assert tls.recv(100) == b"still here\n"


@pytest.mark.parametrize(
    "client,alert",
    [("other_ca", "unknown_ca"), (None, "handshake_failure")],
    ids=["certificate-from-other-ca", "no-certificate"],
)
def test_server_requiring_a_certificate_refuses_bad_clients(pki, hsmtls_server, client, alert):
    server = hsmtls_server(
        pki.server_cert,
        pki.server_key,
        client_ca=pki.ca_cert,
        verify_client="require",
        extra=ONE_WORKER,
    )
    creds = {"cert": pki.client_other_ca_cert, "key": pki.client_other_ca_key} if client else {}
    result = s_client(
        server.port, ca=pki.ca_cert, script=[("send", "ping"), ("expect", "ping")], timeout=5, **creds
    )
    assert result.returncode != 0, result
    assert alert_seen(result.output, alert), result
    assert server.wait_log("handshake failed:").startswith(f"handshake failed: {alert}"), server.output()
    good_client_works(pki, server)  # and the server still serves a good client
    assert server.wait_log("handshake complete:")


def test_optional_client_certificate(pki, hsmtls_server):
    server = hsmtls_server(
        pki.server_cert,
        pki.server_key,
        client_ca=pki.ca_cert,
        verify_client="optional",
        extra=ONE_WORKER,
    )
    good_client_works(pki, server, with_cert=False)
    assert server.wait_log("handshake complete:").endswith("client=-")
    good_client_works(pki, server, with_cert=True)
    assert server.wait_log("handshake complete:", count=2).endswith("client=" + pki.client_subject)


def test_optional_never_reports_an_unverified_certificate(pki, hsmtls_server):
    # A certificate that fails verification is either refused (unknown_ca) or ignored;
    # it must never show up as the authenticated client.
    server = hsmtls_server(
        pki.server_cert,
        pki.server_key,
        client_ca=pki.ca_cert,
        verify_client="optional",
        extra=ONE_WORKER,
    )
    result = s_client(
        server.port,
        ca=pki.ca_cert,
        cert=pki.client_other_ca_cert,
        key=pki.client_other_ca_key,
        script=[("send", "ping"), ("expect", "ping")],
        timeout=5,
    )
    line = server.wait_for(re.compile(r"^handshake (complete|failed):.*$", re.M)).group(0)
    if line.startswith("handshake failed"):
        assert line.startswith("handshake failed: unknown_ca"), line
        assert alert_seen(result.output, "unknown_ca"), result
    else:
        assert line.endswith("client=-"), line
    good_client_works(pki, server)


# --- certificate policy end to end: keyUsage by key exchange, nameConstraints, CN -----


@pytest.fixture(scope="module")
def policy_certs(pki, tmp_path_factory):
    """Server certificates for localhost under the test CA with one keyUsage bit, one
    without subjectAltName, and a CA whose (non-critical) nameConstraints permit only
    example.com, with a localhost certificate under it."""
    import datetime as dt
    import ipaddress
    from types import SimpleNamespace

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d = tmp_path_factory.mktemp("policy")
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    server_pub = serialization.load_pem_private_key(pki.server_key.read_bytes(), None).public_key()
    now = dt.datetime.now(dt.timezone.utc)
    ku_names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")

    def ku(*bits):
        return x509.KeyUsage(**{n: n in bits for n in ku_names})

    def cn(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def cert(file, subject, issuer, *, key_usage, san=True, extra=(), ca_cert=False, pub=server_pub):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(pub)
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=ca_cert, path_length=None), critical=True)
             .add_extension(key_usage, critical=True))
        if not ca_cert:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        for ext in extra:
            b = b.add_extension(ext, critical=False)
        path = d / file
        path.write_bytes(b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        return path

    nc = x509.NameConstraints(permitted_subtrees=[x509.DNSName("example.com")], excluded_subtrees=None)
    nc_name = cn("hsmtls constrained CA")  # same key as the test CA: only the name differs
    return SimpleNamespace(
        sign_only=cert("sign_only.pem", cn("localhost"), ca.subject, key_usage=ku("digital_signature")),
        enc_only=cert("enc_only.pem", cn("localhost"), ca.subject, key_usage=ku("key_encipherment")),
        no_san=cert("no_san.pem", cn("localhost"), ca.subject, san=False,
                    key_usage=ku("digital_signature", "key_encipherment")),
        nc_ca=cert("nc_ca.pem", nc_name, nc_name, key_usage=ku("key_cert_sign"), san=False, extra=[nc],
                   ca_cert=True, pub=ca_key.public_key()),
        under_nc=cert("under_nc.pem", cn("localhost"), nc_name,
                      key_usage=ku("digital_signature", "key_encipherment")),
    )


@pytest.mark.parametrize("cert_field, cipher, reason", [
    ("sign_only", "ECDHE-RSA-AES128-GCM-SHA256", None),
    ("enc_only", "ECDHE-RSA-AES128-GCM-SHA256", r"does not allow digitalSignature \(keyUsage\)"),
    ("enc_only", "AES128-GCM-SHA256", None),
    ("sign_only", "AES128-GCM-SHA256", r"does not allow keyEncipherment \(keyUsage\)"),
], ids=["ecdhe-sign-only", "ecdhe-enc-only", "rsa-enc-only", "rsa-sign-only"])
def test_our_client_checks_key_usage_by_key_exchange(pki, hsmtls_cmd, policy_certs, cert_field, cipher, reason):
    with SServer(getattr(policy_certs, cert_field), pki.server_key, cipher=cipher, mode="rev") as server:
        result = hsmtls_connect(hsmtls_cmd, server.port, ca=pki.ca_cert, send="ping\\n", until="gnip")
        if reason is None:
            assert result.returncode == 0, result
            assert "gnip" in result.stdout
        else:
            assert result.returncode == 1 and re.search(reason, result.stderr), result
            server.wait_for("alert read:fatal")
            assert alert_seen(server.output(), "unsupported_certificate"), server.transcript()


def test_our_client_enforces_noncritical_name_constraints(hsmtls_cmd, pki, policy_certs):
    with SServer(policy_certs.under_nc, pki.server_key, mode="rev") as server:
        result = hsmtls_connect(hsmtls_cmd, server.port, ca=policy_certs.nc_ca, send="ping\\n")
        assert result.returncode == 1, result
        assert re.search(r"name localhost of certificate CN=localhost is outside the names CA "
                         r"CN=hsmtls constrained CA may certify \(nameConstraints\)", result.stderr), result
        server.wait_for("alert read:fatal")
        assert alert_seen(server.output(), "bad_certificate"), server.transcript()


def test_cn_is_a_host_name_only_with_allow_cn(hsmtls_cmd, pki, policy_certs):
    with SServer(policy_certs.no_san, pki.server_key, mode="rev") as server:
        result = hsmtls_connect(hsmtls_cmd, server.port, ca=pki.ca_cert, send="ping\\n")
        assert result.returncode == 1 and "does not match host 'localhost'" in result.stderr, result
    with SServer(policy_certs.no_san, pki.server_key, mode="rev") as server:
        result = hsmtls_connect(hsmtls_cmd, server.port, ca=pki.ca_cert, send="ping\\n", until="gnip",
                                extra=["--allow-cn"])
        assert result.returncode == 0 and "gnip" in result.stdout, result
