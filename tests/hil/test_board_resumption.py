"""The board resumes: it keeps its last TLS session in RAM (ID or ticket, master
secret) and offers it to the next server of that name, so a warm handshake costs no RSA
operation and parses no certificate. Against `hsmtls serve` (session cache and
tickets) and `openssl s_server`."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from hsmtls.board.bridge import handshake_once

from support.hil import requires_board

pytestmark = [pytest.mark.micropython, requires_board]

# what only a full handshake computes on the board: the chain check, premaster
# encryption (ServerHelloDone), the premaster prepared while waiting
FULL_ONLY = {"Certificate", "ServerHelloDone", "prepare ClientKeyExchange"}


@pytest.fixture(scope="module", autouse=True)
def ticket_key(server_key_spec, request):
    """`serve --tickets` with the server key in the token needs the token's ticket key."""
    if not server_key_spec.startswith("pkcs11:"):
        return
    from hsmtls.hsm.tickets import make_ticket_key
    from hsmtls.hsm.token import Token
    from hsmtls.hsm.uri import PKCS11URI

    token = request.getfixturevalue("hil_token")
    make_ticket_key(Token(PKCS11URI({"token": token.label})), token.pin, PKCS11URI.parse(server_key_spec).object)


def run(tty, port, **opts):
    opts.setdefault("server_name", "localhost")
    return handshake_once(tty, ("127.0.0.1", port), opts, timeout=60)


def _names(r) -> set[str]:
    return {name for name, _ in r["steps"]}


@pytest.mark.parametrize("server", ["hsmtls-cache", "hsmtls-tickets", "openssl"])
def test_second_handshake_is_resumed_without_rsa_or_certificates(board_tty, servers, server):
    if server == "openssl":
        port = servers.openssl()
    else:
        port = servers.hsmtls(*(["--tickets"] if server == "hsmtls-tickets" else []))
    run(board_tty, port, resume=False)  # whatever the board kept from earlier tests goes
    first = run(board_tty, port)
    assert first["ok"] and first["resumed"] is False, first
    echo = server != "openssl"  # s_server here prints what it gets, sends nothing back
    second = run(board_tty, port, **({"send": "ping\n"} if echo else {}))
    assert second["ok"] and second["resumed"] is True, second
    assert (second.get("received") or "") == ("ping\n" if echo else ""), second
    assert second["server_subject"] == first["server_subject"]
    assert not _names(second) & FULL_ONLY, second["steps"]
    third = run(board_tty, port)
    assert third["ok"] and third["resumed"] is True, third


def test_client_auth_resumes_with_the_boards_identity(board_tty, servers):
    port = servers.hsmtls(client_auth=True)
    run(board_tty, port, resume=False)
    assert run(board_tty, port, client_auth=True)["ok"]
    r = run(board_tty, port, client_auth=True)
    assert r["ok"] and r["resumed"] is True, r
    assert "sign CertificateVerify" not in _names(r)  # the session carries the identity


def test_another_server_name_gets_a_full_handshake(board_tty, servers):
    port = servers.hsmtls()
    assert run(board_tty, port)["ok"]
    r = run(board_tty, port, server_name="127.0.0.1")  # the certificate's other name
    assert r["ok"] and r["resumed"] is False, r


def test_no_resume_neither_offers_nor_keeps(board_tty, servers):
    port = servers.hsmtls()
    assert run(board_tty, port)["ok"]
    r = run(board_tty, port, resume=False)
    assert r["ok"] and r["resumed"] is False, r


def test_a_failed_resumption_is_not_offered_again(board_tty, servers):
    # the server that made the session is gone; another one, at the same name, does not
    # know the session: a full handshake, and the board keeps the new session
    port = servers.hsmtls("--session-cache", "100")
    assert run(board_tty, port)["ok"]
    other = servers.hsmtls("--session-cache", "100")
    r = run(board_tty, other)
    assert r["ok"] and r["resumed"] is False, r
    assert run(board_tty, other)["resumed"] is True


@pytest.mark.slow
def test_a_thousand_board_resumptions_in_a_row(board_tty, servers):
    port = servers.hsmtls("--tickets")
    proc = subprocess.run(
        [sys.executable, "-m", "hsmtls", "board", "handshake", "--port", board_tty, "--to", f"127.0.0.1:{port}",
         "--server-name", "localhost", "--count", "1000"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = re.search(r"^resumed: (\d+)/1000$", proc.stdout, re.M)
    assert m and int(m.group(1)) >= 999, proc.stdout  # the first may be a full handshake
