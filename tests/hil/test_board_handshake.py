"""The board's TLS client end to end: emulated board -> serial link -> bridge -> server.

Each suite the board offers against `hsmtls serve`, client authentication with the
board's own key, renegotiation from either side, and the same against
`openssl s_server -tls1_2`. Each test reports the board's peak heap.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time

import pytest

from hsmtls.board.bridge import handshake_once
from hsmtls.board.emulator import EmulatedBoard

from support.hil import requires_board, requires_emulator

pytestmark = [pytest.mark.micropython, requires_board]

BOARD_SUITES = [
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
]


def run(tty, port, **opts):
    opts.setdefault("server_name", "localhost")
    # full handshakes: what these tests look at (resumption: test_board_resumption.py)
    opts.setdefault("resume", False)
    r = handshake_once(tty, ("127.0.0.1", port), opts, timeout=60)
    print("board result:", {k: r.get(k) for k in ("ok", "reason", "suite", "handshake_ms", "heap_peak", "heap_base")})
    return r


@pytest.mark.parametrize("suite", BOARD_SUITES)
def test_board_handshake_each_suite_against_hsmtls_serve(board_tty, servers, suite):
    port = servers.hsmtls()
    r = run(board_tty, port, suites=[suite], send="ping\n")
    assert r["ok"], r
    assert r["suite"] == suite
    assert r["ems"] is True and r["secure_renegotiation"] is True
    assert r["server_subject"] == "CN=localhost, O=hsmtls"
    assert r["received"] == "ping\n"
    assert r["heap_peak"] > 0 and r["heap_peak"] <= r["heap_total"]


def test_board_remembers_verified_signatures(board_tty, servers):
    # the second handshake to the same server skips the RSA check of its certificate
    # (the chain's other checks still run: see test_x509's SignatureCache tests)
    port = servers.hsmtls()
    run(board_tty, port)
    r = run(board_tty, port)
    assert r["ok"], r
    assert r["cached_signatures"] == 1  # the server certificate, signed by the board's CA
    r = run(board_tty, port, signature_cache=False)
    assert r["ok"], r
    assert r.get("cached_signatures") is None


def test_board_prepares_the_premaster_for_a_server_it_knows(board_tty, servers):
    # after a handshake the board encrypts a premaster to that server's key while it
    # is idle; the next handshake to it uses that instead of an RSA operation of its own
    port = servers.hsmtls()
    r = run(board_tty, port, send="one")
    assert r["ok"], r
    time.sleep(0.5)  # idle: time for the RSA operation
    r = run(board_tty, port, send="two")
    assert r["ok"] and r["received"] == "two", r
    assert r["prepared_premaster"] is True
    assert "ServerHelloDone" in [s[0] for s in r["steps"]]
    r = run(board_tty, port, prepare_premaster=False)
    assert r["ok"], r
    assert r["prepared_premaster"] is False


def test_board_client_auth_and_renegotiation_both_ways(board_tty, servers):
    # the server asks for the board's certificate and renegotiates after the first
    # data; the board renegotiates once on its own before that
    port = servers.hsmtls("--renegotiate", client_auth=True)
    r = run(board_tty, port, client_auth=True, renegotiate=True, send="hello")
    assert r["ok"], r
    assert r["client_cert"] is True
    assert r["renegotiations"] == 2
    assert all(h["client_cert"] for h in r["handshakes"])
    assert [h["renegotiation"] for h in r["handshakes"]] == [False, True, True]
    names = [s[0] for s in r["steps"]]
    assert "sign CertificateVerify" in names


def test_board_refuses_server_it_does_not_trust(board_tty, servers, tmp_path):
    from hsmtls.devpki import DevPKI

    other = DevPKI(tmp_path / "other")
    port = servers.hsmtls()
    keep = servers.pki, servers.key_spec
    servers.pki, servers.key_spec = other, str(other.server_key)  # a server from another PKI
    try:
        bad_port = servers.hsmtls()
    finally:
        servers.pki, servers.key_spec = keep
    r = run(board_tty, bad_port)
    assert not r["ok"]
    assert "unknown_ca" in r["reason"] or "48" in r["reason"]
    assert run(board_tty, port)["ok"]  # and the board is fine afterwards


def test_board_anchor_check(board_tty, servers, board_pki, tmp_path):
    import hashlib

    from tlscore import x509

    port = servers.hsmtls()
    fp = hashlib.sha256(x509.pem_to_der_list(board_pki.ca_cert.read_bytes())[0]).hexdigest()
    assert run(board_tty, port, anchor_sha256=fp)["ok"]


@pytest.mark.interop
@pytest.mark.parametrize("suite,openssl_name", [
    ("TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"),
    ("TLS_RSA_WITH_AES_128_CBC_SHA256", "AES128-SHA256"),
    ("TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"),
])
def test_board_against_openssl_s_server(board_tty, servers, suite, openssl_name):
    port = servers.openssl("-cipher", openssl_name)
    r = run(board_tty, port, suites=[suite])
    assert r["ok"], r
    assert r["suite"] == suite and r["ems"] is True


@pytest.mark.interop
def test_board_client_auth_and_renegotiation_against_openssl(board_tty, servers):
    # OpenSSL 3.0 refuses client-initiated renegotiation unless told otherwise
    port = servers.openssl("-cipher", "AES128-GCM-SHA256", "-client_renegotiation", client_auth=True)
    r = run(board_tty, port, client_auth=True, renegotiate=True)
    assert r["ok"], r
    assert r["client_cert"] is True and r["renegotiations"] == 1


@pytest.mark.interop
@pytest.mark.parametrize("server", ["openssl", "hsmtls"])
def test_micropython_tls_on_the_board_over_the_link(board_tty, servers, server):
    # `hsmtls bench board`'s yardstick: the port's own tls module (mbedTLS, in C) with
    # its records over our link and bridge. Against `hsmtls serve` it is one more real
    # client of our server (it offers ECDHE_RSA, which our server prefers).
    port = servers.openssl() if server == "openssl" else servers.hsmtls()
    r = run(board_tty, port, engine="mbedtls")
    assert r["ok"], r
    assert r["engine"] == "mbedtls" and r["handshake_us"] > 0
    # mbedTLS checks the server as ours does; its reason reaches the host
    r = run(board_tty, port, engine="mbedtls", server_name="not-this-server")
    assert not r["ok"] and r["reason"].startswith("mbedtls: "), r
    assert "CN" in r["reason"] or "name" in r["reason"].lower(), r
    r = run(board_tty, port, engine="no-such-engine")
    assert not r["ok"] and "no such engine" in r["reason"], r
    # the link and the board are in step afterwards: our engine's next handshake works
    r = run(board_tty, port)
    assert r["ok"], r


@pytest.mark.interop
def test_micropython_tls_on_the_board_signs_with_the_boards_key(board_tty, servers):
    # the yardstick for client authentication: mbedTLS gets the board's certificate and
    # its key as DER made on the board; the server insists on a certificate
    port = servers.openssl("-cipher", "AES128-GCM-SHA256", client_auth=True)
    r = run(board_tty, port, engine="mbedtls", client_auth=True)
    assert r["ok"] and r["client_cert_loaded"] is True, r
    r = run(board_tty, port, engine="mbedtls")
    assert not r["ok"] and r["reason"].startswith("mbedtls: "), r


def test_micropython_tls_on_the_board_when_the_server_hangs_up(board_tty, servers):
    # a "server" that reads the ClientHello and closes: mbedTLS meets the end of our
    # stream, and the board says the server closed, then serves the next run
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def hang_up():
        c, _ = srv.accept()
        c.recv(4096)
        c.close()

    t = threading.Thread(target=hang_up, daemon=True)
    t.start()
    try:
        r = run(board_tty, srv.getsockname()[1], engine="mbedtls")
    finally:
        t.join(10)
        srv.close()
    assert not r["ok"] and r["reason"].startswith("mbedtls: the server closed the TCP connection"), r
    r = run(board_tty, servers.openssl(), engine="mbedtls")
    assert r["ok"], r


@requires_emulator
def test_cli_emulate_and_board_handshake(servers, board_pki, tmp_path):
    port = servers.hsmtls(client_auth=True)
    emu = subprocess.Popen(
        [sys.executable, "-m", "hsmtls", "board", "emulate", "--heap", "256k", "--link", "usb", "--rom",
         "--flash", str(tmp_path / "flash"),
         "--ca", str(board_pki.ca_cert), "--cert", str(board_pki.client_cert), "--key", str(board_pki.client_key)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        tty = emu.stdout.readline().strip()
        assert tty.startswith("/dev/")
        out = subprocess.run(
            [sys.executable, "-m", "hsmtls", "board", "handshake", "--port", tty, "--to", f"localhost:{port}",
             "--ca", str(board_pki.ca_cert), "--client-cert", "--send", "hi"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "result: ok" in out.stdout
        assert "cipher: TLS_RSA_WITH_AES_128_GCM_SHA256" in out.stdout
        assert "client_certificate: yes" in out.stdout
        assert "heap_peak:" in out.stdout and "steps_ms:" in out.stdout
        # the port's own tls module over the same link, with the board's key
        out = subprocess.run(
            [sys.executable, "-m", "hsmtls", "board", "handshake", "--port", tty, "--to", f"localhost:{port}",
             "--ca", str(board_pki.ca_cert), "--client-cert", "--engine", "mbedtls"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "result: ok" in out.stdout and "engine: mbedtls" in out.stdout, out.stdout
        assert "client_hello_to_finished_ms:" in out.stdout
        assert "client_certificate: loaded" in out.stdout
        # ... which runs the handshake alone, and says so rather than ignoring an option
        out = subprocess.run(
            [sys.executable, "-m", "hsmtls", "board", "handshake", "--port", tty, "--to", f"localhost:{port}",
             "--engine", "mbedtls", "--renegotiate"],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode != 0 and "no renegotiate" in out.stdout + out.stderr, out.stdout + out.stderr
        # the same with a trace and a capture of what crossed the bridge
        cap = tmp_path / "board.pcapng"
        out = subprocess.run(
            [sys.executable, "-m", "hsmtls", "board", "handshake", "--port", tty, "--to", f"localhost:{port}",
             "--client-cert", "--renegotiate", "--trace", "--trace-out", str(tmp_path / "t.json"),
             "--pcap", str(cap), "--no-resume"],  # the whole handshake (a resumed one has no certificates)
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        rows = [ln for ln in out.stdout.splitlines() if "→" in ln]
        for step, arrow, message in (("1", "board → server", "ClientHello"), ("2", "server → board", "ServerHello"),
                                     ("2", "server → board", "CertificateRequest"),
                                     ("4", "board → server", "ClientKeyExchange"),
                                     ("5", "board → server", "CertificateVerify"),
                                     ("8", "board → server", "ChangeCipherSpec"),
                                     ("9", "server → board", "ChangeCipherSpec")):
            assert any(re.search(rf"\b{step}\b.*{arrow}.*{message}", ln) for ln in rows), (message, out.stdout)
        assert "renegotiation #1 (step 11)" in out.stdout
        assert json.loads((tmp_path / "t.json").read_text())["board_result"]["ok"]
        if shutil.which("tshark"):
            shark = subprocess.run(["tshark", "-r", str(cap), "-d", f"tcp.port=={port},tls", "-Y",
                                    "tls.handshake.type == 1", "-T", "fields", "-e", "frame.number"],
                                   capture_output=True, text=True, timeout=60)
            assert shark.returncode == 0 and shark.stdout.split(), shark.stderr
    finally:
        emu.terminate()
        emu.wait(10)


@requires_emulator
def test_board_without_flash_files_reports_why(tmp_path, servers):
    port = servers.hsmtls()
    with EmulatedBoard(tmp_path / "empty_flash", heap="256k") as b:
        from hsmtls.board.bridge import BoardFailure, Bridge
        from hsmtls.board.hostlink import HostLink

        with HostLink(b.tty) as link:
            link.connect()
            br = Bridge(link, ("127.0.0.1", port))
            r = br.run_handshake({"server_name": "localhost"}, timeout=10)
            assert not r["ok"] and "ca.pem is missing" in r["reason"]
            with pytest.raises(BoardFailure):  # and a run that never gets a result
                b.reset()
                br.run_handshake({"server_name": "localhost"}, timeout=10)


@pytest.mark.parametrize("mfl", [512, 2048, None, 0])
def test_board_max_fragment_length(board_tty, servers, mfl):
    # RFC 6066: the board asks for small records so its receive buffer can be small;
    # 2048 unless told otherwise, nothing with mfl=0. The echo spans many records and
    # link frames each way, and the board never holds it whole (5000 bytes once ran
    # it out of memory, and then it sent no RESULT): 5000 bytes, then more than 16 KiB
    port = servers.hsmtls()
    opts = {} if mfl is None else {"mfl": mfl}
    text = "".join(chr(48 + i % 75) for i in range(20000))  # no two neighbours alike
    for n in (5000, 20000):
        r = run(board_tty, port, send=text[:n], **opts)
        assert r["ok"], r["reason"]
        assert r["handshakes"][0].get("mfl") == (2048 if mfl is None else mfl or None)
        assert r["received_bytes"] == n and r["received"] == text[:n]


@pytest.mark.interop
def test_board_max_fragment_length_with_openssl(board_tty, servers):
    r = run(board_tty, servers.openssl())
    assert r["ok"], r
    assert r["handshakes"][0].get("mfl") == 2048
