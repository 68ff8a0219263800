"""Session resumption against OpenSSL (RFC 5246 §7.3, RFC 5077): `openssl s_client`
resumes sessions of `hsmtls serve` (session IDs from the cache shared by its workers,
and tickets; -sess_out/-sess_in and -reconnect), and `hsmtls connect --reconnect`
resumes sessions of `openssl s_server`."""

from __future__ import annotations

import re
import subprocess

import pytest

from support.openssl_tools import OPENSSL, SServer, hsmtls_connect, s_client


def _server(pki, hsmtls_server, mode: str, workers: int = 1):
    extra = ["--workers", str(workers)]
    if mode == "tickets":
        extra += ["--tickets", "--session-cache", "0"]
    return hsmtls_server(pki.server_cert, pki.server_key, extra=extra)


def _s_client(port, pki, *extra: str):
    return s_client(port, ca=pki.ca_cert, extra=list(extra), script=[("send", "ping"), ("expect", "ping")])


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("mode", ["session-id", "tickets"])
def test_s_client_sess_out_sess_in(pki, hsmtls_server, tmp_path, mode, workers):
    server = _server(pki, hsmtls_server, mode, workers)
    sess = tmp_path / "session.pem"
    no_ticket = ["-no_ticket"] if mode == "session-id" else []
    first = _s_client(server.port, pki, "-sess_out", str(sess), *no_ticket)
    assert first.returncode == 0 and "New, TLSv1.2" in first.output, first
    for _ in range(4):  # with two workers, some land on the other one
        again = _s_client(server.port, pki, "-sess_in", str(sess), *no_ticket)
        assert again.returncode == 0 and "Reused, TLSv1.2" in again.output, again
    server.wait_for(re.compile(r"^handshake complete: .* resumed=yes ", re.M), 15, count=4)


@pytest.mark.parametrize("mode", ["session-id", "tickets"])
def test_s_client_reconnect(pki, hsmtls_server, mode):
    server = _server(pki, hsmtls_server, mode)
    no_ticket = ["-no_ticket"] if mode == "session-id" else []
    proc = subprocess.run(
        [OPENSSL, "s_client", "-tls1_2", "-connect", f"127.0.0.1:{server.port}", "-CAfile", str(pki.ca_cert),
         "-servername", "localhost", "-reconnect", *no_ticket],
        input=b"", capture_output=True, timeout=30,
    )
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out
    assert len(re.findall(r"^Reused, TLSv1\.2", out, re.M)) == 5, out


def test_s_client_resumption_keeps_the_client_identity(pki, hsmtls_server, tmp_path):
    server = hsmtls_server(pki.server_cert, pki.server_key, client_ca=pki.ca_cert, extra=["--workers", "1"])
    sess = tmp_path / "session.pem"
    args = ["-cert", str(pki.client_cert), "-key", str(pki.client_key)]
    assert _s_client(server.port, pki, "-sess_out", str(sess), *args).returncode == 0
    again = _s_client(server.port, pki, "-sess_in", str(sess), *args)
    assert "Reused, TLSv1.2" in again.output, again
    line = server.wait_for(re.compile(r"^handshake complete: .* resumed=yes .*$", re.M), 15).group(0)
    assert line.endswith("client=" + pki.client_subject), line


@pytest.mark.parametrize("tickets", [True, False], ids=["tickets", "session-id"])
def test_hsmtls_connect_resumes_openssl_sessions(pki, hsmtls_cmd, tickets):
    with SServer(pki.server_cert, pki.server_key, mode="rev", extra=[] if tickets else ["-no_ticket"]) as server:
        result = hsmtls_connect(hsmtls_cmd, server.port, ca=pki.ca_cert, extra=["--reconnect", "3"])
    assert result.returncode == 0, result
    assert "reconnect 3: resumed: yes" in result.stdout and re.search(r"^resumed: 3/3 ", result.stdout, re.M), result


def test_hsmtls_connect_resume_prints_resumed_yes(pki, hsmtls_server, hsmtls_cmd):
    server = _server(pki, hsmtls_server, "session-id")
    result = hsmtls_connect(hsmtls_cmd, server.port, ca=pki.ca_cert, extra=["--resume"])
    assert result.returncode == 0, result
    assert result.stdout.rstrip().endswith("resumed: yes"), result
