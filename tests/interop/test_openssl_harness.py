"""The interop harness proven on OpenSSL against OpenSSL, before our CLI is involved.

If one of these fails, the harness (tests/support/openssl_tools.py) or the OpenSSL on the
machine changed, and the matrix results mean nothing until it is fixed. They also pin
down the OpenSSL 3.0 behaviour the matrix relies on (see openssl_tools' docstring).
"""

from __future__ import annotations

import re
import socket
import ssl

import pytest

from support.openssl_tools import (
    SUITES,
    SClient,
    SServer,
    alert_seen,
    parse_connect_output,
    s_client,
)

pytestmark = pytest.mark.interop

SUITE_IDS = [openssl for _, openssl in SUITES]
# s_server's verify callback prints each certificate of the client chain it checks.
CLIENT_CERT_SEEN = re.compile(r"^depth=0 CN = hsmtls test client$", re.M)


@pytest.mark.parametrize("cipher", SUITE_IDS)
def test_handshake_and_data_each_suite(pki, cipher):
    with SServer(pki.server_cert, pki.server_key, cipher=cipher, mode="rev") as server:
        result = s_client(
            server.port,
            ca=pki.ca_cert,
            cipher=cipher,
            script=[("handshake", ""), ("send", "ping-1"), ("expect", "1-gnip")],
        )
    assert result.returncode == 0, result
    assert f"Cipher is {cipher}" in result.output, result
    assert "Protocol  : TLSv1.2" in result.output, result
    assert "Extended master secret: yes" in result.output, result
    assert "Secure Renegotiation IS supported" in result.output, result
    assert "Verify return code: 0 (ok)" in result.output, result
    assert result.handshakes == 1, result


@pytest.mark.parametrize("cipher", ["AES128-SHA", "AES256-GCM-SHA384"])
def test_suites_pass_seclevel_2(pki, cipher):
    # A distribution may raise the default to SECLEVEL=2: our suites and keys still pass.
    with SServer(
        pki.server_cert, pki.server_key, cipher=cipher + ":@SECLEVEL=2", mode="rev"
    ) as server:
        result = s_client(
            server.port,
            ca=pki.ca_cert,
            cipher=cipher + ":@SECLEVEL=2",
            script=[("send", "ping"), ("expect", "gnip")],
        )
    assert result.returncode == 0, result
    assert f"Cipher is {cipher}" in result.output, result


def test_client_certificate_required(pki):
    with SServer(
        pki.server_cert, pki.server_key, ca=pki.ca_cert, verify="require", mode="rev"
    ) as server:
        good = s_client(
            server.port,
            ca=pki.ca_cert,
            cert=pki.client_cert,
            key=pki.client_key,
            script=[("send", "ping"), ("expect", "gnip")],
        )
        assert good.returncode == 0, good
        server.wait_for(CLIENT_CERT_SEEN)
        without = s_client(server.port, ca=pki.ca_cert, script=[("send", "ping")])
        assert without.returncode != 0, without
        assert alert_seen(without.output, "handshake_failure"), without


def test_client_initiated_renegotiation(pki):
    with (
        SServer(pki.server_cert, pki.server_key, client_renegotiation=True) as server,
        SClient(server.port, ca=pki.ca_cert, cipher="AES128-GCM-SHA256") as client,
    ):
        client.wait_handshake()
        client.send_line("ping-1")
        server.wait_for("ping-1")
        client.renegotiate()
        client.send_line("ping-2")
        server.wait_for("ping-2")
        server.write_stdin("pong\n")
        client.wait_for("pong")
        assert client.close() == 0, client.transcript()
        assert client.handshakes() == 2, client.transcript()
        assert server.wait_handshakes(2) == 2, server.transcript()


def test_client_initiated_renegotiation_with_rev(pki):
    # -rev echoes lines reversed and still lets the client renegotiate.
    with SServer(pki.server_cert, pki.server_key, mode="rev", client_renegotiation=True) as server:
        result = s_client(
            server.port,
            ca=pki.ca_cert,
            cipher="AES128-SHA256",
            script=[
                ("send", "ping-1"),
                ("expect", "1-gnip"),
                ("renegotiate", ""),
                ("send", "ping-2"),
                ("expect", "2-gnip"),
            ],
        )
        assert result.returncode == 0, result
        assert result.handshakes == 2, result
        server.wait_for(re.compile(r"read finished"), count=2)


def test_openssl_server_refuses_client_renegotiation_by_default(pki):
    # OpenSSL 3.0 quirk: without -client_renegotiation the server answers a client's
    # renegotiation with a no_renegotiation alert, and s_client gives up.
    with SServer(pki.server_cert, pki.server_key, mode="rev") as server:
        result = s_client(
            server.port,
            ca=pki.ca_cert,
            script=[("send", "ping-1"), ("expect", "1-gnip"), ("renegotiate", "")],
            timeout=5,
        )
    assert result.handshakes == 1, result
    assert "no renegotiation" in result.output, result


@pytest.mark.parametrize("request_cert", [False, True], ids=["r", "R"])
def test_server_initiated_renegotiation(pki, request_cert):
    with (
        SServer(
            pki.server_cert, pki.server_key, ca=pki.ca_cert, no_resumption_on_reneg=True
        ) as server,
        SClient(server.port, ca=pki.ca_cert, cert=pki.client_cert, key=pki.client_key) as client,
    ):
        client.wait_handshake()
        client.send_line("ping-1")
        server.wait_for("ping-1")
        assert not CLIENT_CERT_SEEN.search(server.output())
        assert server.renegotiate(request_cert=request_cert) == 1, server.transcript()
        server.write_stdin("pong-after\n")
        client.wait_for("pong-after")
        client.wait_handshake(count=2)
        assert server.wait_handshakes(2) == 2, server.transcript()
        # `R` asks for a certificate in the renegotiation (and the client sends it), `r`
        # does not.
        assert bool(CLIENT_CERT_SEEN.search(server.output())) == request_cert
        assert client.close() == 0, client.transcript()


@pytest.mark.parametrize(
    "cert_field, alert",
    [
        ("server_expired_cert", "certificate_expired"),
        ("server_wrong_host_cert", "bad_certificate"),
        ("server_other_ca_cert", "unknown_ca"),
    ],
)
def test_alert_from_refused_certificate_shows_in_s_server(pki, cert_field, alert):
    # The alert OpenSSL's client sends for each broken certificate, as s_server prints
    # it: proves alert_seen() reads the output test_bad_certs relies on.
    with SServer(getattr(pki, cert_field), pki.server_key) as server:
        result = s_client(server.port, ca=pki.ca_cert, script=[("send", "ping")], timeout=5)
        assert result.returncode != 0, result
        server.wait_for("alert read:fatal")
        assert alert_seen(server.output(), alert), server.transcript()


@pytest.mark.parametrize("iana, cipher", SUITES, ids=SUITE_IDS)
def test_python_ssl_client_each_suite(pki, iana, cipher):
    with SServer(pki.server_cert, pki.server_key, mode="rev") as server:
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(cipher)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.version() == "TLSv1.2"
                assert tls.cipher()[0] == cipher
                tls.sendall(b"ping\n")
                assert tls.recv(100) == b"gnip\n"


def test_parse_connect_output():
    out = (
        "version: TLS 1.2\n"
        "cipher: TLS_RSA_WITH_AES_128_GCM_SHA256\n"
        "extended_master_secret: yes\n"
        "secure_renegotiation: yes\n"
        "encrypt_then_mac: no\n"
        "peer: CN=localhost\n"
        "renegotiations: 1\n"
        "received: 1-gnip\n"
        "peer: not a field, part of the data\n"
    )
    fields = parse_connect_output(out)
    assert fields["version"] == "TLS 1.2"
    assert fields["cipher"] == "TLS_RSA_WITH_AES_128_GCM_SHA256"
    assert fields["peer"] == "CN=localhost"
    assert fields["renegotiations"] == "1"
    assert fields["received"] == "1-gnip\npeer: not a field, part of the data"
    assert parse_connect_output("received: \n")["received"] == ""
