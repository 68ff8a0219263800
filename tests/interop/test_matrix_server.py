"""Our server (`hsmtls serve`) against OpenSSL's s_client and Python's ssl module.

One test per matrix cell: suite × client authentication × renegotiation (none, asked
for by the client with s_client's `R`, or started by the server with --renegotiate),
each checking that data is echoed and that the server's log line reports TLS 1.2, the
suite, extended master secret and secure renegotiation. The cells of one (auth,
renegotiation) configuration share one server process (a fresh one if a cell killed
it), which keeps the whole matrix within a few seconds; the tests with their own
server run it with its default worker processes.
"""

from __future__ import annotations

import re
import socket
import ssl

import pytest

from support.openssl_tools import ONE_WORKER, SUITES, SClient, alert_seen, s_client

pytestmark = pytest.mark.interop

AUTH = ["noauth", "clientauth"]
RENEG = ["noreneg", "client-reneg", "server-reneg"]

# "handshake complete: TLS 1.2 <suite> ems=yes secure_renegotiation=yes resumed=no client=<subject>"
LOG_LINE = re.compile(
    r"^(?P<what>handshake|renegotiation) complete: (?P<version>TLS 1\.2) (?P<suite>\S+) "
    r"ems=(?P<ems>\w+) secure_renegotiation=(?P<sr>\w+) resumed=(?P<resumed>\w+) client=(?P<client>.*?)\s*$"
)


def parse_log(line: str) -> dict[str, str]:
    m = LOG_LINE.match(line)
    assert m, f"unexpected server log line: {line!r}"
    return m.groupdict()


def check_log(line: str, iana: str, client: str) -> None:
    fields = parse_log(line)
    assert fields["version"] == "TLS 1.2", line
    assert fields["suite"] == iana, line
    assert fields["ems"] == "yes", line
    assert fields["sr"] == "yes", line
    assert fields["client"] == client, line


def _cells():
    for iana, cipher in SUITES:
        for auth in AUTH:
            for reneg in RENEG:
                yield pytest.param(iana, cipher, auth, reneg, id=f"server-{cipher}-{auth}-{reneg}")


def shared_server(pki, pool, *, clientauth: bool, renegotiate: bool = False):
    # One server per configuration for the whole module: the suite is the client's
    # choice, so the cells of one (auth, renegotiation) column share a server.
    return pool.get(
        pki.server_cert,
        pki.server_key,
        client_ca=pki.ca_cert if clientauth else None,
        verify_client="require" if clientauth else None,
        renegotiate=renegotiate,
        extra=ONE_WORKER,
    )


@pytest.mark.parametrize("iana, cipher, auth, reneg", list(_cells()))
def test_s_client_against_our_server(pki, hsmtls_server_pool, iana, cipher, auth, reneg):
    clientauth = auth == "clientauth"
    server = shared_server(
        pki, hsmtls_server_pool, clientauth=clientauth, renegotiate=reneg == "server-reneg"
    )
    mark = server.mark()
    expected_handshakes = 1 if reneg == "noreneg" else 2
    with SClient(
        server.port,
        ca=pki.ca_cert,
        cipher=cipher,
        cert=pki.client_cert if clientauth else None,
        key=pki.client_key if clientauth else None,
    ) as client:
        client.wait_handshake()
        client.send_line("ping-1")
        # --renegotiate: the server renegotiates after this first data, then echoes it.
        client.wait_for("ping-1")
        if reneg == "client-reneg":
            client.renegotiate()
        client.wait_handshake(count=expected_handshakes)
        client.send_line("ping-2")
        client.wait_for("ping-2")
        assert client.close() == 0, client.transcript()
        output = client.output()
    assert f"Cipher is {cipher}" in output
    assert "Extended master secret: yes" in output
    assert "Secure Renegotiation IS supported" in output
    assert client.handshakes() == expected_handshakes, output

    subject = pki.client_subject if clientauth else "-"
    check_log(server.wait_log("handshake complete:", start=mark), iana, subject)
    if reneg != "noreneg":
        check_log(server.wait_log("renegotiation complete:", start=mark), iana, subject)
    assert not server.log_lines("handshake failed", start=mark), server.output()[mark:]


def python_client_context(pki, cipher: str, *, client_cert: bool, max_tls12: bool = True):
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    if max_tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(cipher)
    if client_cert:
        ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return ctx


def python_exchange(ctx, port: int, data: bytes = b"ping from python\n") -> tuple[str, str, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(data)
            received = b""
            while len(received) < len(data):
                chunk = tls.recv(4096)
                if not chunk:
                    break
                received += chunk
            return tls.version(), tls.cipher()[0], received


@pytest.mark.parametrize("client_cert", [False, True], ids=["noauth", "clientauth"])
@pytest.mark.parametrize("iana, cipher", SUITES, ids=[f"python-{c}" for _, c in SUITES])
def test_python_ssl_against_our_server(pki, hsmtls_server_pool, iana, cipher, client_cert):
    server = shared_server(pki, hsmtls_server_pool, clientauth=client_cert)
    mark = server.mark()
    ctx = python_client_context(pki, cipher, client_cert=client_cert)
    version, negotiated, received = python_exchange(ctx, server.port)
    assert version == "TLSv1.2"
    assert negotiated == cipher
    assert received == b"ping from python\n"
    check_log(
        server.wait_log("handshake complete:", start=mark),
        iana,
        pki.client_subject if client_cert else "-",
    )


def test_client_offering_tls13_gets_tls12(pki, hsmtls_server):
    # A modern client offers TLS 1.3 (supported_versions) and 1.2: we answer with 1.2.
    server = hsmtls_server(pki.server_cert, pki.server_key)
    ctx = python_client_context(pki, "AES128-GCM-SHA256", client_cert=False, max_tls12=False)
    version, negotiated, received = python_exchange(ctx, server.port)
    assert (version, negotiated) == ("TLSv1.2", "AES128-GCM-SHA256")
    assert received == b"ping from python\n"


def test_server_cipher_option_picks_the_suite(pki, hsmtls_server):
    server = hsmtls_server(
        pki.server_cert, pki.server_key, ciphers=["TLS_RSA_WITH_AES_256_GCM_SHA384"]
    )
    offered = ":".join(cipher for _, cipher in SUITES)
    result = s_client(
        server.port,
        ca=pki.ca_cert,
        cipher=offered,
        script=[("send", "ping"), ("expect", "ping")],
    )
    assert result.returncode == 0, result
    assert "Cipher is AES256-GCM-SHA384" in result.output, result
    check_log(server.wait_log("handshake complete:"), "TLS_RSA_WITH_AES_256_GCM_SHA384", "-")


def test_no_common_suite_is_a_handshake_failure(pki, hsmtls_server):
    server = hsmtls_server(
        pki.server_cert, pki.server_key, ciphers=["TLS_RSA_WITH_AES_128_CBC_SHA"]
    )
    result = s_client(server.port, ca=pki.ca_cert, cipher="AES256-GCM-SHA384", timeout=5)
    assert result.returncode != 0, result
    assert alert_seen(result.output, "handshake_failure"), result
    assert server.wait_log("handshake failed:").startswith("handshake failed: handshake_failure")
    # ... and the server carries on.
    ctx = python_client_context(pki, "AES128-SHA", client_cert=False)
    assert python_exchange(ctx, server.port)[1] == "AES128-SHA"


@pytest.mark.parametrize("iana, cipher", [("TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384")], ids=["AES256-GCM-SHA384"])
def test_http_app_names_the_suite(pki, hsmtls_server, iana, cipher):
    server = hsmtls_server(pki.server_cert, pki.server_key, app="http")
    ctx = python_client_context(pki, cipher, client_cert=False)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            response = b""
            while True:
                try:
                    chunk = tls.recv(4096)
                except (ssl.SSLEOFError, ConnectionResetError):
                    break
                if not chunk:
                    break
                response += chunk
                head, sep, body = response.partition(b"\r\n\r\n")
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if sep and length and len(body) >= int(length.group(1)):
                    break
    assert response.startswith(b"HTTP/1.1 200"), response
    assert iana.encode() in response.partition(b"\r\n\r\n")[2], response


@pytest.mark.parametrize("sigalg", ["rsa_pss_rsae_sha256", "rsa_pss_rsae_sha384", "rsa_pkcs1_sha512"])
def test_client_certificate_verify_schemes(pki, hsmtls_server_pool, sigalg):
    # OpenSSL signs CertificateVerify with the one scheme it is allowed: RSA-PSS is
    # taken as readily as PKCS#1 v1.5
    server = shared_server(pki, hsmtls_server_pool, clientauth=True)
    mark = server.mark()
    result = s_client(server.port, ca=pki.ca_cert, cipher="ECDHE-RSA-AES128-SHA256", cert=pki.client_cert,
                      key=pki.client_key, extra=["-client_sigalgs", sigalg],
                      script=[("send", "ping"), ("expect", "ping")])
    assert result.returncode == 0, result
    check_log(server.wait_log("handshake complete:", start=mark), "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
              pki.client_subject)


def test_sha1_certificate_verify_refused(pki, hsmtls_server_pool):
    # SHA-1 is not offered in CertificateRequest: a client that can sign nothing else
    # has no certificate to send, and a server requiring one says handshake_failure
    server = shared_server(pki, hsmtls_server_pool, clientauth=True)
    result = s_client(server.port, ca=pki.ca_cert, cert=pki.client_cert, key=pki.client_key,
                      extra=["-client_sigalgs", "rsa_pkcs1_sha1"], script=[("send", "ping"), ("expect", "ping")],
                      timeout=5)
    assert result.returncode != 0, result
    assert alert_seen(result.output, "handshake_failure"), result
