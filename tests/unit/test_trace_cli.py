"""`hsmtls serve --trace/--trace-out/--keylog` and `connect --trace` on failures, run as
the user runs them (subprocesses on loopback)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

RSA = "TLS_RSA_WITH_AES_128_GCM_SHA256"


def connect(hsmtls_cmd, pki, port, *extra, env=None):
    return subprocess.run(
        [*hsmtls_cmd, "connect", f"127.0.0.1:{port}", "--ca", str(pki.ca_cert),
         "--servername", "localhost", *extra],
        capture_output=True, text=True, timeout=60, env=env,
    )


def test_serve_trace_per_connection(pki, hsmtls_server, hsmtls_cmd, tmp_path):
    out = tmp_path / "serve.svg"
    # no --workers: tracing runs one process, whatever the core count
    server = hsmtls_server(pki.server_cert, pki.server_key, ciphers=RSA,
                           extra=("--trace", "--trace-out", str(out),
                                  "--keylog", str(tmp_path / "k.log")))
    for _ in range(2):
        r = connect(hsmtls_cmd, pki, server.port, "--renegotiate", "--send", "hi\\n", "--until", "hi")
        assert r.returncode == 0, r.stderr
    server.wait_for("TLS handshake trace", count=2)
    server.wait_for("renegotiation — round 2", count=2)
    text = server.output()
    assert text.splitlines()[0] == f"listening on 127.0.0.1:{server.port}"
    assert "worker processes" not in text
    assert text.count("handshake complete: TLS 1.2 " + RSA) == 2
    assert "decrypt premaster" in text and "client authenticates the server" in text
    deadline = time.monotonic() + 10  # the files are written as each connection ends
    while not (out.exists() and (tmp_path / "serve-2.svg").exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    svg = out.read_text()
    assert svg.startswith("<svg") and 'data-step="11"' in svg
    assert (tmp_path / "serve-2.svg").exists()
    assert len((tmp_path / "k.log").read_text().splitlines()) == 4  # 2 connections x 2 rounds


def test_serve_trace_refuses_several_workers(pki, hsmtls_cmd):
    r = subprocess.run(
        [*hsmtls_cmd, "serve", "--port", "0", "--cert", str(pki.server_cert),
         "--key", str(pki.server_key), "--trace", "--workers", "2"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == ["error: --trace/--trace-out need one server process: use --workers 1"]


@pytest.mark.slow
def test_connect_trace_shows_a_failed_handshake(pki, hsmtls_server, hsmtls_cmd, tmp_path):
    server = hsmtls_server(pki.server_wrong_host_cert, pki.server_wrong_host_key, ciphers=RSA)
    out = tmp_path / "fail.json"
    r = connect(hsmtls_cmd, pki, server.port, "--trace", "--trace-out", str(out))
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")
    assert "alert certificate_unknown" in r.stdout and "Certificate" in r.stdout
    entries = json.loads(out.read_text())["entries"]
    alert = [e for e in entries if e["kind"] == "alert"]
    assert alert and alert[0]["from"] == "client" and alert[0]["fields"]["level"] == "fatal"
    assert all(e["observed"] for e in entries)  # a failed round: nothing inferred


@pytest.mark.slow
def test_sslkeylogfile_is_honoured_by_connect(pki, hsmtls_server, hsmtls_cmd, tmp_path):
    import os

    server = hsmtls_server(pki.server_cert, pki.server_key, ciphers=RSA,
                           extra=("--keylog", str(tmp_path / "server.log")))
    env = dict(os.environ, SSLKEYLOGFILE=str(tmp_path / "env.log"))
    r = connect(hsmtls_cmd, pki, server.port, "--renegotiate", env=env)
    assert r.returncode == 0, r.stderr
    lines = (tmp_path / "env.log").read_text().splitlines()
    assert len(lines) == 2
    assert sorted(lines) == sorted((tmp_path / "server.log").read_text().splitlines())
    # --keylog wins over the environment
    r = connect(hsmtls_cmd, pki, server.port, "--keylog", str(tmp_path / "opt.log"), env=env)
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / "env.log").read_text().splitlines()) == 2
    assert len((tmp_path / "opt.log").read_text().splitlines()) == 1
