"""Our client (`hsmtls connect`) against OpenSSL's s_server.

One test per matrix cell: suite × client authentication (`s_server -Verify 1`) ×
renegotiation (none; asked for by our client with --renegotiate, which needs
`s_server -client_renegotiation` on OpenSSL 3.0; started by s_server with its stdin
command `r`). s_server runs with -no_resumption_on_reneg so every renegotiation is a
full handshake (but -Verify asks for the client certificate only once), and
without -legacy_renegotiation, so secure renegotiation (RFC 5746) is required. Each
cell parses connect's report: TLS 1.2, the suite, EMS and secure renegotiation on, the
server's subject, the renegotiation count and the data that came back.
"""

from __future__ import annotations

import re

import pytest

from support.openssl_tools import (
    SUITES,
    ConnectResult,
    SServer,
    hsmtls_connect,
    parse_connect_output,
    start_hsmtls_connect,
)

pytestmark = pytest.mark.interop

AUTH = ["noauth", "clientauth"]
RENEG = ["noreneg", "client-reneg", "server-reneg"]
# s_server's verify callback prints the client chain it checks.
CLIENT_CERT_SEEN = re.compile(r"^depth=0 CN = hsmtls test client$", re.M)


def _default_cell(cipher: str, auth: str, reneg: str) -> bool:
    # Every suite once without extras, and each (auth, renegotiation) mode once.
    if auth == "noauth" and reneg == "noreneg":
        return True
    index = {s[1]: i for i, s in enumerate(SUITES)}[cipher]
    return (AUTH.index(auth) * len(RENEG) + RENEG.index(reneg) + 2) % len(SUITES) == index


def _cells():
    for iana, cipher in SUITES:
        for auth in AUTH:
            for reneg in RENEG:
                marks = [] if _default_cell(cipher, auth, reneg) else [pytest.mark.slow]
                yield pytest.param(
                    iana, cipher, auth, reneg, id=f"client-{cipher}-{auth}-{reneg}", marks=marks
                )


def check_report(result, iana: str, pki, renegotiations: int) -> dict[str, str]:
    assert result.returncode == 0, result
    fields = result.fields
    assert fields.get("version") == "TLS 1.2", result
    assert fields.get("cipher") == iana, result
    assert fields.get("extended_master_secret") == "yes", result
    assert fields.get("secure_renegotiation") == "yes", result
    assert fields.get("peer") == pki.server_subject, result
    assert fields.get("renegotiations") == str(renegotiations), result
    return fields


@pytest.mark.parametrize("iana, cipher, auth, reneg", list(_cells()))
def test_our_client_against_s_server(pki, hsmtls_cmd, iana, cipher, auth, reneg):
    clientauth = auth == "clientauth"
    client_args = dict(
        ca=pki.ca_cert,
        cipher=iana,
        cert=pki.client_cert if clientauth else None,
        key=pki.client_key if clientauth else None,
    )
    with SServer(
        pki.server_cert,
        pki.server_key,
        ca=pki.ca_cert if clientauth else None,
        verify="require" if clientauth else None,
        cipher=cipher,
        # s_server's stdin commands only work in its interactive mode.
        mode=None if reneg == "server-reneg" else "rev",
        client_renegotiation=reneg == "client-reneg",
        no_resumption_on_reneg=True,
    ) as server:
        if reneg == "server-reneg":
            connect = start_hsmtls_connect(
                hsmtls_cmd,
                server.port,
                send="ping-1\\n",
                until="pong-after",
                idle_timeout=10,
                **client_args,
            )
            with connect:
                server.wait_for("ping-1")
                assert server.renegotiate() == 1, server.transcript()
                # s_server's write waits for the renegotiation to finish.
                server.write_stdin("pong-after\n")
                rc = connect.wait(30)
                result = _as_result(rc, connect)
            received = "pong-after"
        else:
            result = hsmtls_connect(
                hsmtls_cmd,
                server.port,
                renegotiate=reneg == "client-reneg",
                send="ping-1\\n",
                until="1-gnip",
                idle_timeout=5,
                **client_args,
            )
            received = "1-gnip"
        expected = 0 if reneg == "noreneg" else 1
        fields = check_report(result, iana, pki, expected)
        assert received in fields.get("received", ""), result
        assert server.wait_handshakes(1 + expected) == 1 + expected, server.transcript()
        if clientauth:
            # -Verify includes SSL_VERIFY_CLIENT_ONCE: the certificate is asked for in the
            # first handshake only, not again when renegotiating.
            assert len(CLIENT_CERT_SEEN.findall(server.output())) == 1, server.transcript()
        assert not re.search(r"alert (read|write):fatal", server.output()), server.transcript()


def _as_result(rc, monitored) -> ConnectResult:
    stdout = monitored.stdout()
    return ConnectResult(rc, stdout, monitored.stderr(), parse_connect_output(stdout))


def test_renegotiation_that_adds_a_client_certificate(pki, hsmtls_cmd):
    # s_server `R`: no certificate asked for at first, then a renegotiation that asks.
    with SServer(pki.server_cert, pki.server_key, ca=pki.ca_cert, no_resumption_on_reneg=True) as (
        server
    ):
        with start_hsmtls_connect(
            hsmtls_cmd,
            server.port,
            ca=pki.ca_cert,
            cert=pki.client_cert,
            key=pki.client_key,
            send="ping-1\\n",
            until="pong-after",
            idle_timeout=10,
        ) as connect:
            server.wait_for("ping-1")
            assert not CLIENT_CERT_SEEN.search(server.output())
            assert server.renegotiate(request_cert=True) == 1, server.transcript()
            server.write_stdin("pong-after\n")
            result = _as_result(connect.wait(30), connect)
        assert result.returncode == 0, result
        assert result.fields.get("renegotiations") == "1", result
        assert "pong-after" in result.fields.get("received", ""), result
        server.wait_for(CLIENT_CERT_SEEN)


def test_no_common_suite(pki, hsmtls_cmd):
    with SServer(pki.server_cert, pki.server_key, cipher="AES256-GCM-SHA384", mode="rev") as (
        server
    ):
        result = hsmtls_connect(
            hsmtls_cmd, server.port, ca=pki.ca_cert, cipher="TLS_RSA_WITH_AES_128_CBC_SHA"
        )
        assert result.returncode == 1, result
        assert result.stderr.startswith("error: "), result
        assert "handshake_failure" in result.stderr, result


def test_server_without_client_certificate_required_fails_cleanly(pki, hsmtls_cmd):
    # s_server -Verify 1 and a client with no certificate: s_server answers our empty
    # Certificate with an alert, which connect names.
    with SServer(
        pki.server_cert, pki.server_key, ca=pki.ca_cert, verify="require", mode="rev"
    ) as server:
        result = hsmtls_connect(hsmtls_cmd, server.port, ca=pki.ca_cert, send="ping\\n")
        assert result.returncode == 1, result
        assert re.match(r"error: .*alert", result.stderr), result
        assert "handshake_failure" in result.stderr or "certificate_required" in result.stderr, (
            result
        )
