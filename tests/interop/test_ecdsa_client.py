"""ECDSA P-256 client certificates (RSA CA, EC leaf) across implementations: OpenSSL's
s_client and Python's ssl against `hsmtls serve --client-ca`, and `hsmtls connect` with
an EC key against `openssl s_server -Verify 1`, renegotiation included."""

from __future__ import annotations

import socket
import ssl
import subprocess

import pytest

from hsmtls.devpki import DevPKI

from support.openssl_tools import ONE_WORKER, OPENSSL, SClient

pytestmark = pytest.mark.interop

SUBJECT = "CN=hsmtls demo client (ECDSA), O=hsmtls"


@pytest.fixture(scope="module")
def dpki(tmp_path_factory) -> DevPKI:
    return DevPKI(tmp_path_factory.mktemp("ecdsa-pki"))


@pytest.mark.parametrize("suite", ["TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"])
def test_s_client_with_ec_key_against_our_server(dpki, hsmtls_server, suite):
    server = hsmtls_server(dpki.server_cert, dpki.server_key, client_ca=dpki.ca_cert, verify_client="require",
                           ciphers=suite, extra=ONE_WORKER)
    with SClient(server.port, ca=dpki.ca_cert, cert=dpki.client_ec_cert, key=dpki.client_ec_key) as client:
        client.wait_handshake()
        client.send_line("ping-1")
        client.wait_for("ping-1")
        client.renegotiate()
        client.send_line("ping-2")
        client.wait_for("ping-2")
        assert client.close() == 0, client.transcript()
    line = server.wait_log("renegotiation complete:")
    assert line.endswith("client=" + SUBJECT), line


def test_python_ssl_with_ec_key_against_our_server(dpki, hsmtls_server):
    server = hsmtls_server(dpki.server_cert, dpki.server_key, client_ca=dpki.ca_cert, verify_client="require",
                           extra=ONE_WORKER)
    ctx = ssl.create_default_context(cafile=str(dpki.ca_cert))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(dpki.client_ec_cert), str(dpki.client_ec_key))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"hello\n")
            assert tls.recv(100) == b"hello\n"
    assert server.wait_log("handshake complete:").endswith("client=" + SUBJECT)


def test_hsmtls_connect_with_ec_key_against_openssl(dpki, hsmtls_cmd, free_port):
    srv = subprocess.Popen(
        [OPENSSL, "s_server", "-accept", f"127.0.0.1:{free_port}", "-tls1_2", "-cert", str(dpki.server_cert),
         "-key", str(dpki.server_key), "-Verify", "1", "-CAfile", str(dpki.ca_cert), "-verify_return_error",
         "-rev"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        import time

        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", free_port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        out = subprocess.run(
            [*hsmtls_cmd, "connect", f"127.0.0.1:{free_port}", "--ca", str(dpki.ca_cert), "--servername", "localhost",
             "--cert", str(dpki.client_ec_cert), "--key", str(dpki.client_ec_key), "--send", "olleh\\n",
             "--until", "hello"],
            capture_output=True, text=True, timeout=30,
        )
    finally:
        srv.kill()
        server_out = srv.communicate()[0]
    assert out.returncode == 0, out.stdout + out.stderr + server_out
    assert "hello" in out.stdout


def test_hsmtls_serve_refuses_an_ec_server_key(dpki, hsmtls_cmd, tmp_path):
    # the server's key decrypts the premaster: an EC key is refused when loaded
    out = subprocess.run(
        [*hsmtls_cmd, "serve", "--port", "0", "--cert", str(dpki.server_cert), "--key", str(dpki.client_ec_key)],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode != 0
    assert "not an RSA key" in out.stdout + out.stderr
