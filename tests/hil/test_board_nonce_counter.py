"""The ECDSA nonce counter (docs/board-security.md, section 4): a board whose counter
file cannot be read or written refuses to sign, and says why, instead of going on with a
count that may repeat (with an RNG that repeats after a reset, a repeated nonce gives the
key away); a key made on the board takes the same counter, so it is refused as well.
Fails on firmware that treats an unwritable counter as 0."""

from __future__ import annotations

import pytest

from hsmlink import protocol as P
from hsmtls.board.bridge import Bridge
from hsmtls.board.emulator import EmulatedBoard
from hsmtls.board.flash import provision
from hsmtls.board.hostlink import HostLink
from hsmtls.board.provisioning import board_challenge, sign_request

from support.hil import refused, requires_emulator

pytestmark = [pytest.mark.micropython, requires_emulator]


def test_no_signature_when_the_nonce_counter_cannot_be_written(board_pki, servers, tmp_path):
    from hsmtls.keys import FileKey

    flash = provision(tmp_path / "flash", board_pki.ca_cert, board_pki.client_ec_cert, board_pki.client_ec_key)
    (flash / "client.key.boots").mkdir()  # neither read nor written as a file
    port = servers.hsmtls(client_auth=True)
    with EmulatedBoard(flash, heap="320k", mpy=True) as board, HostLink(board.tty) as link:
        link.connect(10)
        bridge = Bridge(link, ("127.0.0.1", port))
        r = bridge.run_handshake({"server_name": "localhost", "client_auth": True}, timeout=60)
        assert not r["ok"], r
        assert "sign CertificateVerify" in [s[0] for s in r["steps"]] and "nonce counter" in r["reason"], r
        flash_errors = [e for e in bridge.errors if "nonce counter" in e.get("reason", "")]
        assert flash_errors and "flash: cannot read the nonce counter" in flash_errors[0]["reason"], bridge.errors
        assert {e["where"] for e in flash_errors} <= {"sign", "nonce"}
        # a key made on the board takes the same counter: no key either
        ca = FileKey(str(board_pki.ca_key))
        why = refused(link, P.KEYGEN, sign_request(ca, "keygen", board_challenge(link)["c"], {"type": "ec"}),
                      "KEYGEN")
    assert "nonce counter" in why, why
    assert not (flash / "client.key.new").exists()
