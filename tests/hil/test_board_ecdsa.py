"""The board with an ECDSA P-256 key: client authentication against `hsmtls serve` (its
key in SoftHSM2 when installed) and `openssl s_server -Verify 1`, the nonce made while
the board is idle and used once, and the key made on the board by `provision
--key-type ec` (the token's RSA CA certifies it).

The handshakes run on firmware precompiled by mpy-cross (mpy=True), as deployed: an
emulator compiling sources leaves its 256 KiB heap in pieces (largest free block ~22 KB
of ~110 KB at idle, against ~50 KB from .mpy), and long runs of handshakes then fail
now and then with out-of-memory for a 2 KB buffer, RSA or ECDSA alike. Provisioning
itself (KEYGEN) runs from sources."""

from __future__ import annotations

import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from hsmtls.board.bridge import handshake_once
from hsmtls.board.emulator import EmulatedBoard
from hsmtls.board.flash import provision

from support.hil import provision_emulated, requires_emulator

pytestmark = [pytest.mark.micropython, requires_emulator]


def run(tty, port, **opts):
    opts.setdefault("server_name", "localhost")
    # full handshakes: what these tests look at (resumption: test_board_resumption.py)
    opts.setdefault("resume", False)
    r = handshake_once(tty, ("127.0.0.1", port), opts, timeout=60)
    print("board result:", {k: r.get(k) for k in ("ok", "reason", "handshake_us", "heap_peak", "heap_base", "heap_total")})
    return r


def sign_ms(r) -> float:
    return sum(ms for name, ms in r["steps"] if name == "sign CertificateVerify")


@pytest.fixture(scope="module")
def ec_board(board_pki, tmp_path_factory):
    flash = provision(tmp_path_factory.mktemp("ec_flash"), board_pki.ca_cert, board_pki.client_ec_cert,
                      board_pki.client_ec_key)
    assert (flash / "client.key").read_text().startswith("type=ec\n")
    # one board for the module's runs, mbedTLS's among them: 320 KiB keeps a block for
    # mbedTLS's context free after the runs of our engine before it
    with EmulatedBoard(flash, heap="320k", mpy=True) as b:
        b.flash = flash  # type: ignore[attr-defined]
        yield b


def idle(seconds: float = 0.6) -> None:
    # the board prepares its next nonce between connections, a slice per loop turn
    time.sleep(seconds)


def test_ec_client_auth_against_hsmtls_serve(ec_board, servers):
    port = servers.hsmtls(client_auth=True)
    idle()
    r = run(ec_board.tty, port, client_auth=True, renegotiate=True, send="hi\n")
    assert r["ok"], r
    assert r["client_cert"] is True and r["renegotiations"] == 1
    assert r["received"] == "hi\n"
    first, second = r["handshakes"]
    # the first signature used the nonce made while idle; the renegotiation's (no idle
    # time in between) is another one (test_nonce_is_made_while_the_server_answers)
    assert first["presigned"] is True
    assert "sign CertificateVerify" in [s[0] for s in r["steps"]]


def test_nonce_is_made_while_the_server_answers(board_pki, servers, tmp_path):
    # No idle time before the renegotiation: its nonce is made a slice at a time while
    # the board waits for the server's flight, here held 40 ms on the way to the board
    # (a slow link), so it is ready before the board signs
    from hsmtls.board.faults import Faults

    flash = provision(tmp_path / "flash", board_pki.ca_cert, board_pki.client_ec_cert, board_pki.client_ec_key)
    port = servers.hsmtls(client_auth=True)
    with EmulatedBoard(flash, heap="256k", mpy=True, to_board=Faults(seed=1, delay=1.0, delay_ms=(40, 40))) as b:
        idle()
        r = run(b.tty, port, client_auth=True, renegotiate=True)
    assert r["ok"], r
    first, second = r["handshakes"]
    assert first["presigned"] is True and second["presigned"] is True, r["handshakes"]
    names = [s[0] for s in r["steps"]]
    assert "prepare CertificateVerify" in names[names.index("sign CertificateVerify") + 1:], names


def test_nonce_is_ready_again_after_idling(ec_board, servers):
    port = servers.hsmtls(client_auth=True)
    times = []
    for _ in range(3):
        idle()
        r = run(ec_board.tty, port, client_auth=True)
        assert r["ok"], r
        assert r["handshakes"][0]["presigned"] is True
        times.append(sign_ms(r))
    print("sign CertificateVerify with a prepared nonce (ms):", times)
    assert min(times) < 2.0  # microseconds of arithmetic plus a SHA-256 of the transcript


def test_every_signature_has_its_own_nonce(ec_board, board_pki):
    # The server records each CertificateVerify's r (= x of k*G): prepared nonces,
    # half-prepared ones and ones made on the spot (renegotiations, back-to-back
    # handshakes) must all differ, and every signature verifies.
    from cryptography.hazmat.primitives.asymmetric import utils

    from hsmtls.keys import FileKey
    from hsmtls.server import BackgroundServer, TLSServer
    from hsmtls.tlsconfig import server_config
    from tlscore.messages import CertificateVerify

    rs: list[int] = []

    def hook(conn, event, what, msg=None, size=0):
        if event == "recv" and isinstance(msg, CertificateVerify):
            rs.append(utils.decode_dss_signature(bytes(msg.signature))[0])

    config = server_config(str(board_pki.server_cert), str(board_pki.ca_cert), "require")
    config.trace = hook
    with BackgroundServer(TLSServer(config, FileKey(str(board_pki.server_key)), out=lambda s: None)) as srv:
        for pause in (0.6, 0.0, 0.0, 0.01, 0.6, 0.0):
            time.sleep(pause)
            r = run(ec_board.tty, srv.port, client_auth=True, renegotiate=True)
            assert r["ok"], r
    assert len(rs) == 12 and len(set(rs)) == 12, rs


@pytest.mark.interop
def test_ec_client_auth_against_openssl(ec_board, servers):
    port = servers.openssl(client_auth=True)
    idle()
    r = run(ec_board.tty, port, client_auth=True)
    assert r["ok"], r
    assert r["client_cert"] is True


def test_rsa_only_server_gets_a_clear_failure(ec_board, servers):
    # OpenSSL restricted to RSA client signatures: no ECDSA in CertificateRequest, so
    # the board says why instead of signing
    port = servers.openssl("-client_sigalgs", "RSA+SHA256", client_auth=True)
    r = run(ec_board.tty, port, client_auth=True)
    assert not r["ok"]
    assert "ECDSA" in r["reason"] or "signature algorithm" in r["reason"], r["reason"]


def test_on_board_ec_provisioning(hil_token, token_server, tmp_path):
    board, prov = provision_emulated(tmp_path / "flash", hil_token, key_type="ec")
    board.stop()
    with EmulatedBoard(tmp_path / "flash", heap="256k", mpy=True) as board:
        idle()
        r = run(board.tty, token_server.port, client_auth=True, renegotiate=True, send="hi\n")
    assert r["ok"], r
    assert r["client_cert"] is True and r["renegotiations"] == 1
    assert r["handshakes"][0]["presigned"] is True
    flash = tmp_path / "flash"
    key = dict(line.split("=", 1) for line in (flash / "client.key").read_text().split())
    assert set(key) == {"type", "curve", "d", "x", "y"} and key["type"] == "ec"
    assert not (flash / "client.key.new").exists()
    cert = x509.load_pem_x509_certificate((flash / "client.pem").read_bytes())
    pub = cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey) and isinstance(pub.curve, ec.SECP256R1)
    assert pub.public_numbers().x == int(key["x"], 16)
    assert cert.issuer == hil_token.ca_cert.subject
    assert cert.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.RSA_WITH_SHA256
    # the private scalar never crossed the link, in hex or as bytes
    d = int(key["d"], 16)
    for payload in prov.received:
        assert d.to_bytes(32, "big") not in payload and key["d"].encode() not in payload
    assert any(prov.subject.split(",")[-1].split("=")[1] in line for line in token_server.log)


def _cli_provision(hil_token, flash, *args):
    import os
    import subprocess
    import sys

    env = dict(os.environ, HSMTLS_PIN=hil_token.pin)
    return subprocess.run(
        [sys.executable, "-m", "hsmtls", "board", "provision", *args, "--ca-key", hil_token.uri("ca"),
         "--ca-cert", str(hil_token.dir / "ca.pem"), "--flash", str(flash), "--subject", "CN=cli ec board,O=hsmtls"],
        capture_output=True, text=True, timeout=120, env=env,
    )


@pytest.mark.parametrize("args", [["--key-type", "ec"], []], ids=["key-type-ec", "default"])
def test_cli_provision_key_type_ec(hil_token, token_server, tmp_path, args):
    # ECDSA P-256 is the board's key unless asked otherwise: on the board it is made in
    # milliseconds and signs in about 0.1 ms with a nonce made while idle (RSA: minutes
    # of Miller-Rabin on an ESP32, ~20 ms a signature here)
    flash = tmp_path / "flash"
    p = _cli_provision(hil_token, flash, *args)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "provisioned O=hsmtls,CN=cli ec board" in p.stdout
    assert (flash / "client.key").read_text().startswith("type=ec\n")
    with EmulatedBoard(flash, heap="256k", mpy=True) as board:
        idle()
        r = run(board.tty, token_server.port, client_auth=True)
    assert r["ok"], r
    assert r["handshakes"][0]["presigned"] is True


def test_cli_provision_bits_is_for_rsa(hil_token, tmp_path):
    p = _cli_provision(hil_token, tmp_path / "flash", "--key-type", "ec", "--bits", "2048")
    assert p.returncode != 0
    assert "--bits is the size of an RSA key" in p.stdout + p.stderr
    assert not (tmp_path / "flash" / "client.key").exists()


@pytest.mark.interop
def test_micropython_tls_on_the_board_signs_with_the_boards_ec_key(ec_board, servers):
    # `hsmtls bench board --client-auth --key-type ec`'s yardstick: mbedTLS with the
    # board's P-256 key (RFC 5915 DER made on the board)
    port = servers.openssl("-cipher", "AES128-GCM-SHA256", client_auth=True)
    r = run(ec_board.tty, port, engine="mbedtls", client_auth=True)
    assert r["ok"] and r["client_cert_loaded"] is True, r
