"""`hsmtls board status`: what the board runs and holds, read over the link: firmware,
heap, sessions, its trust anchor (by SHA-256, as `board handshake --ca` checks it), its
own certificate (the key stays on the board) and its autorun; a missing file is said."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hsmtls.board.bridge import format_status
from hsmtls.board.emulator import EmulatedBoard

from support.hil import requires_board, requires_emulator

pytestmark = [pytest.mark.micropython]


def status(port: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hsmtls", "board", "status", "--port", port, *args],
                          capture_output=True, text=True, timeout=60)


@requires_board
def test_status_names_the_boards_identity(board_tty, board_pki):
    ca = x509.load_pem_x509_certificate(board_pki.ca_cert.read_bytes())
    mine = x509.load_pem_x509_certificate(board_pki.client_cert.read_bytes())
    out = status(board_tty)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert text.startswith("board: ") and "features: provision, ecdsa, autorun, trust" in text, text
    assert f"sha256 {hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest()}" in text, text
    cn = mine.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    line = next(x for x in text.splitlines() if x.startswith("certificate: "))
    assert cn in line and " key, on the board)" in line and f"serial {mine.serial_number:x}" in line, line
    assert "days left" in line and "autorun: off" in text, text
    data = json.loads(status(board_tty, "--json").stdout)
    assert data["stats"]["cert"]["not_after"] == int(mine.not_valid_after_utc.timestamp())


@requires_emulator
def test_status_of_a_board_with_nothing_on_its_flash(tmp_path):
    with EmulatedBoard(tmp_path / "empty_flash", heap="256k", mpy=True) as b:
        out = status(b.tty)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "trust anchor: none (ca.pem is missing on the board's flash" in out.stdout, out.stdout
    assert "certificate: none (client.pem is missing on the board's flash" in out.stdout, out.stdout


def test_status_lines_say_when_a_certificate_has_expired():
    lines = format_status({"board": "esp32", "impl": "micropython 1.28.0", "v": 3, "features": ["provision"]},
                          {"heap_alloc": 1, "heap_free": 2, "cert": {"subject": "CN=b", "issuer": "CN=ca", "serial": "1f",
                                                                      "not_after": 1_000_000, "key": "ec"},
                           "autorun": {"server_name": "api.example", "every_s": 60}}, now=2_000_000)
    assert "certificate: CN=b (ECDSA P-256 key, on the board), issued by CN=ca, serial 1f, valid until 1970-01-12 (EXPIRED)" \
        in lines
    assert "autorun: a session to api.example every 60 s" in lines
