"""Device identity end to end: the board makes its key, the token's CA certifies it, and
the token-backed server accepts it (mutual auth, renegotiation), and refuses a board
certified by another CA, holding an expired certificate, or revoked by the CA."""

from __future__ import annotations

import datetime

import pytest

from hsmtls.board.bridge import handshake_once

from support.hil import provision_emulated, requires_board, requires_emulator

pytestmark = [pytest.mark.micropython, requires_board]


def run(tty, port, **opts):
    opts.setdefault("server_name", "localhost")
    return handshake_once(tty, ("127.0.0.1", port), opts, timeout=90)


def test_provision_key_stays_on_the_board(provisioned_board, hil_token):
    p = provisioned_board.prov
    assert p.subject.startswith("O=hsmtls,CN=hsmtls board ")
    assert set(p.files) == {"ca.pem", "client.pem"}
    if provisioned_board.flash_dir is None:
        return  # a real board: its flash is not ours to read
    flash = provisioned_board.flash_dir
    key = dict(line.split("=", 1) for line in (flash / "client.key").read_text().split())
    assert set(key) == {"n", "e", "d", "p", "q", "dp", "dq", "qinv"}
    assert not (flash / "client.key.new").exists()
    # nothing the host received carries a private value (hex or big-endian bytes)
    for secret in ("d", "p", "q", "dp", "dq"):
        v = int(key[secret], 16)
        raw = v.to_bytes((v.bit_length() + 7) // 8, "big")
        for payload in p.received:
            assert raw not in payload and key[secret].encode() not in payload
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((flash / "client.pem").read_bytes())
    assert cert.public_key().public_numbers().n == int(key["n"], 16)
    assert cert.issuer == hil_token.ca_cert.subject


def test_mutual_auth_and_renegotiation_with_token_server(provisioned_board, token_server):
    r = run(provisioned_board.tty, token_server.port, client_auth=True, renegotiate=True, send="hi\n")
    assert r["ok"], r
    assert r["client_cert"] is True and r["renegotiations"] == 1
    assert [h["renegotiation"] for h in r["handshakes"]] == [False, True]
    assert r["received"] == "hi\n"
    assert "sign CertificateVerify" in [s[0] for s in r["steps"]]
    assert any(provisioned_board.prov.subject.split(",")[-1].split("=")[1] in line for line in token_server.log)


@requires_emulator
def test_board_from_another_ca_is_rejected(hil_token, token_server, tmp_path):
    board, _ = provision_emulated(tmp_path / "flash", hil_token, ca="rogue-ca")
    try:
        # the board trusts the rogue CA now, so give it ours back for the server check
        (tmp_path / "flash" / "ca.pem").write_bytes((hil_token.dir / "ca.pem").read_bytes())
        r = run(board.tty, token_server.port, client_auth=True)
    finally:
        board.stop()
    assert not r["ok"]
    assert "unknown_ca" in r["reason"], r["reason"]


@requires_emulator
def test_expired_device_certificate_is_rejected(hil_token, token_server, tmp_path):
    now = datetime.datetime.now(datetime.timezone.utc)
    board, prov = provision_emulated(tmp_path / "flash", hil_token,
                                     validity=(now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)))
    try:
        assert prov.not_after < now
        r = run(board.tty, token_server.port, client_auth=True)
        # and the server still serves a good board afterwards
    finally:
        board.stop()
    assert not r["ok"]
    assert "certificate_expired" in r["reason"], r["reason"]


@requires_emulator
def test_board_refuses_a_certificate_for_another_key(hil_token, tmp_path):
    from hsmlink import protocol as P
    from hsmtls.board.emulator import EmulatedBoard
    from hsmtls.board.hostlink import HostLink

    with EmulatedBoard(tmp_path / "flash") as board, HostLink(board.tty) as link:
        link.connect(10)
        # no KEYGEN before: there is no pending key, so any certificate is refused
        link.send(P.INSTALL, {"ca": (hil_token.dir / "ca.pem").read_text(),
                              "cert": (hil_token.dir / "server.pem").read_text()})
        import time

        deadline = time.monotonic() + 5
        errors = []
        while time.monotonic() < deadline and not errors:
            frames, _ = link.poll(0.05)
            errors += [P.unpack(p) for t, p in frames if t == P.ERROR]
    assert errors and errors[0]["where"] == "install"
    assert not (tmp_path / "flash" / "client.pem").exists()


@requires_emulator
def test_revoked_device_certificate_is_rejected(hil_token, tmp_path):
    """The CA revokes the board (a CRL signed in the token); the server refuses it."""
    from cryptography.hazmat.primitives import serialization

    from hsmtls.hsm.provision import crl_sign_in_token
    from hsmtls.server import BackgroundServer, TLSServer
    from hsmtls.tlsconfig import server_config

    board, prov = provision_emulated(tmp_path / "flash", hil_token)
    crl = tmp_path / "crl.pem"
    crl.write_bytes(crl_sign_in_token(hil_token.keys["ca"], hil_token.ca_cert, [prov.serial])
                    .public_bytes(serialization.Encoding.PEM))
    config = server_config(str(hil_token.dir / "server.pem"), str(hil_token.dir / "ca.pem"), "require",
                           crls=[str(crl)])
    log: list[str] = []
    try:
        with BackgroundServer(TLSServer(config, hil_token.keys["server"], out=log.append)) as srv:
            r = run(board.tty, srv.port, client_auth=True)
    finally:
        board.stop()
    assert not r["ok"]
    assert "certificate_revoked" in r["reason"], r["reason"]
    assert any("is revoked by its CA" in line for line in log), log
