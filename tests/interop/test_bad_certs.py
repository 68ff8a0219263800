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
from openssl_tools import ONE_WORKER, SServer, alert_seen, hsmtls_connect, s_client

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
