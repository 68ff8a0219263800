"""The board does not trust its host (docs/board-security.md), tested as a hostile host
would try it: a new anchor, key or certificate only on a request signed by the board's
own CA, never replayed; the REPL only in development mode; a clock that never goes back,
so an expired server certificate stays expired. Each test fails on firmware without the
defence. (The ECDSA nonce counter: test_board_nonce_counter.py.)"""

from __future__ import annotations

import datetime
import time
import types
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from hsmlink import protocol as P
from hsmtls.board.bridge import Bridge
from hsmtls.board.emulator import EmulatedBoard
from hsmtls.board.hostlink import HostLink
from hsmtls.board.provisioning import (
    ProvisionError,
    admin,
    board_challenge,
    provision_board,
    sign_request,
)

from support.hil import provision_emulated, refused, requires_emulator

pytestmark = [pytest.mark.micropython, requires_emulator]


def flash_files(flash: Path) -> dict[str, bytes]:
    # (but the nonce counter, which an idle board with an ECDSA key moves once a boot)
    return {p.name: p.read_bytes() for p in sorted(flash.iterdir()) if p.is_file() and p.name != "client.key.boots"}


@pytest.fixture
def provisioned(hil_token, tmp_path):
    flash = tmp_path / "flash"
    board, prov = provision_emulated(flash, hil_token, key_type="ec")
    yield board, flash, prov
    board.stop()


# --- 1. anchors, certificates and keys ---------------------------------------------------


def test_a_foreign_ca_cannot_install_anything_and_nothing_changes(provisioned, hil_token):
    board, flash, _ = provisioned
    before = flash_files(flash)
    rogue, ca = hil_token.keys["rogue-ca"], hil_token.keys["ca"]
    rogue_pem = (hil_token.dir / "rogue-ca.pem").read_text()
    with HostLink(board.tty) as link:
        link.connect(10)
        assert "trust" in link.hello["features"] and link.hello["rng"] is True
        # the old, unsigned requests
        why = refused(link, P.KEYGEN, {"type": "ec"}, "KEYGEN")
        assert "must be signed by its CA" in why, why
        why = refused(link, P.INSTALL, {"ca": rogue_pem, "cert": rogue_pem}, "INSTALL")
        assert "must be signed by its CA" in why, why
        # signed, with the board's challenge, by another CA
        c = board_challenge(link)["c"]
        why = refused(link, P.KEYGEN, sign_request(rogue, "keygen", c, {"type": "ec"}), "KEYGEN")
        assert "not signed by the board's trust anchor (CN=hsmtls test CA" in why, why
        c = board_challenge(link)["c"]
        why = refused(link, P.INSTALL, sign_request(rogue, "install", c, {"ca": rogue_pem, "cert": rogue_pem}),
                      "INSTALL")
        assert "not signed by the board's trust anchor" in why, why
        # the whole provisioning, by the rogue CA (past the host's own check)
        with pytest.raises(ProvisionError, match="board refused KEYGEN: .*not signed by the board's trust anchor"):
            provision_board(link, rogue, rogue_pem.encode(), key_type="ec", signer=rogue)
        # a request the right CA signed, replayed: for an earlier challenge, then a second time
        old = sign_request(ca, "keygen", board_challenge(link)["c"], {"type": "ec"})
        board_challenge(link)
        why = refused(link, P.KEYGEN, old, "KEYGEN")
        assert "does not name this board's current challenge" in why, why
        why = refused(link, P.KEYGEN, old, "KEYGEN")
        assert "current challenge" in why, why
        # signed for one request, sent as another
        c = board_challenge(link)["c"]
        why = refused(link, P.INSTALL, sign_request(ca, "keygen", c, {"type": "ec"}), "INSTALL")
        assert "is not a INSTALL" in why, why
        # and the host's own check names the CA the board trusts
        with pytest.raises(ProvisionError, match="the board trusts another CA"):
            provision_board(link, rogue, rogue_pem.encode(), key_type="ec")
    assert flash_files(flash) == before


def test_the_boards_own_ca_provisions_it_again(provisioned, hil_token, token_server):
    board, flash, first = provisioned
    with HostLink(board.tty) as link:
        link.connect(10)
        again = provision_board(link, hil_token.keys["ca"], (hil_token.dir / "ca.pem").read_bytes(), key_type="ec")
        r = Bridge(link, ("127.0.0.1", token_server.port)).run_handshake(
            {"server_name": "localhost", "client_auth": True}, timeout=60)
    assert again.serial != first.serial and (flash / "client.pem").read_bytes() == again.cert_pem
    assert r["ok"], r


def test_factory_reset_opens_the_first_provisioning_window(provisioned, hil_token):
    board, flash, _ = provisioned
    rogue = hil_token.keys["rogue-ca"]
    with HostLink(board.tty) as link:
        link.connect(10)
        # signed by the board's CA: the identity goes, the nonce counter and clock floor stay
        ans = admin(link, hil_token.keys["ca"], {"set": "factory_reset"}, (hil_token.dir / "ca.pem").read_bytes())
        assert ans["anchor"] is False and ans["dev"] is False
        assert not any((flash / n).exists() for n in ("ca.pem", "client.pem", "client.key"))
        # a board with no anchor takes its first identity from whoever provisions it
        assert board_challenge(link)["anchors"] == []
        provision_board(link, rogue, (hil_token.dir / "rogue-ca.pem").read_bytes(), key_type="ec")
    assert (flash / "ca.pem").read_bytes() == (hil_token.dir / "rogue-ca.pem").read_bytes()
    # the physical way: an erased flash (the emulator empties its directory)
    board.factory_reset()
    with HostLink(board.tty) as link:
        link.connect(10)
        assert board_challenge(link)["anchors"] == []


# --- 2. the REPL ---------------------------------------------------------------------------


def ask_repl(link: HostLink) -> dict | str:
    """REPL -> the board's ERROR (a dict), or its goodbye LOG (a str)."""
    link.send(P.REPL, {})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        frames, _ = link.poll(0.05)
        for t, payload in frames:
            if t == P.ERROR:
                return P.unpack(payload)
            if t == P.LOG and b"leaving link mode" in payload:
                return payload.decode()
    raise AssertionError("no answer to REPL")


def test_a_production_board_refuses_the_repl(provisioned, hil_token):
    board, _, _ = provisioned
    with HostLink(board.tty) as link:
        link.connect(10)
        assert "dev" not in link.hello
        err = ask_repl(link)
        assert isinstance(err, dict) and err["where"] == "repl" and "production mode" in err["reason"], err
        # still in link mode, still answering
        assert "heap_free" in Bridge(link, ("127.0.0.1", 0)).stats()
        # development mode, set by a request its CA signed (kept on its flash)
        ans = admin(link, hil_token.keys["ca"], {"set": "dev", "on": True}, (hil_token.dir / "ca.pem").read_bytes())
        assert ans["dev"] is True
    board.reset()
    with HostLink(board.tty) as link:
        assert link.connect(10).get("dev") is True
        assert ask_repl(link) == "leaving link mode"
    assert board.wait_repl(5)  # the emulated board's firmware ended: its REPL


def test_the_boot_button_gives_development_mode_for_one_boot(tmp_path):
    with EmulatedBoard(tmp_path / "flash", heap="256k", mpy=True, dev_button=True) as board, \
            HostLink(board.tty) as link:
        assert link.connect(10).get("dev") is True
        assert ask_repl(link) == "leaving link mode"
        assert board.wait_repl(5)
    assert not (tmp_path / "flash" / "dev").exists()


def test_deploy_says_how_to_reach_development_mode(provisioned):
    from click.testing import CliRunner

    from hsmtls.cli.board import board as board_cli

    board, _, _ = provisioned
    # (`deploy` for a real board on the emulator's tty: the link part comes first)
    r = CliRunner().invoke(board_cli, ["deploy", "--board", "esp32-devkitc", "--port", board.tty])
    assert r.exit_code == 1, r.output
    assert "production mode" in r.output and "BOOT" in r.output and "hsmtls board mode dev" in r.output, r.output
    assert board.alive


# --- 3. the clock --------------------------------------------------------------------------


@pytest.fixture
def expired_server(board_pki, servers, tmp_path):
    """hsmtls serve with a certificate from the board's CA that expired yesterday."""
    from cryptography import x509

    from hsmtls.devpki import issue, write_cert

    ca_key = serialization.load_pem_private_key(board_pki.ca_key.read_bytes(), None)
    ca = x509.load_pem_x509_certificate(board_pki.ca_cert.read_bytes())
    server_key = serialization.load_pem_private_key(board_pki.server_key.read_bytes(), None)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = write_cert(tmp_path / "expired.pem", issue(ca, ca_key, server_key.public_key(), "localhost", "server",  # type: ignore[arg-type]
                                                      dns=("localhost",), not_before=now - datetime.timedelta(days=30),
                                                      not_after=now - datetime.timedelta(days=1)))
    # (the servers fixture's class, with this certificate; it stops them at the end)
    s = type(servers)(types.SimpleNamespace(server_cert=cert, ca_cert=board_pki.ca_cert), str(board_pki.server_key))
    yield s.hsmtls()
    s.close()


def wait_result(bridge: Bridge, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        results = bridge.step(0.05)
        if results:
            return results[0]
    raise AssertionError("no RESULT")


def test_time_never_goes_back_and_an_expired_certificate_stays_expired(flash_dir, expired_server, tmp_path):
    import shutil

    flash = tmp_path / "flash"
    shutil.copytree(flash_dir, flash)
    then = int(time.time()) - 10 * 86400  # when the server's certificate was valid
    run = {"server_name": "localhost"}
    with EmulatedBoard(flash, heap="256k", mpy=True) as board:
        with HostLink(board.tty) as link:
            link.connect(10)
            bridge = Bridge(link, ("127.0.0.1", expired_server))
            r = bridge.run_handshake(run)  # (the host's TIME: now)
            assert not r["ok"] and "certificate_expired" in r["reason"], r
            # a hostile host turns the clock back: refused, and the clock stays
            bridge.errors = []
            link.send(P.TIME, {"t": then})
            link.send(P.RUN, run)
            r = wait_result(bridge)
            assert not r["ok"] and "certificate_expired" in r["reason"], r
            assert [e["where"] for e in bridge.errors][:1] == ["time"], bridge.errors
            assert "its clock never goes back" in bridge.errors[0]["reason"]
        # the latest time accepted is on the flash (it moved on by more than a day)
        kept = int((flash / "timefloor").read_text())
        # the floor is rewritten only when the clock moved on by more than a day (flash
        # wear): within a day of now, whichever earlier test left it
        assert time.time() - 86400 < kept <= time.time() + 2
        # after a reset: a TIME a day and more before it is still refused
        board.reset()
        with HostLink(board.tty) as link:
            link.connect(10)
            bridge = Bridge(link, ("127.0.0.1", expired_server))
            link.send(P.TIME, {"t": kept - 2 * 86400})
            link.send(P.RUN, run)
            r = wait_result(bridge)
            assert not r["ok"] and "no time from the host" in r["reason"], r
            assert bridge.errors and bridge.errors[0]["where"] == "time", bridge.errors


def test_the_ca_can_set_the_clock_back_from_a_hostile_future(provisioned, hil_token, token_server):
    board, flash, _ = provisioned
    future = int(time.time()) + 100 * 365 * 86400
    with HostLink(board.tty) as link:
        link.connect(10)
        link.send(P.TIME, {"t": future})  # accepted (the board cannot know better) and kept
        link.drain(2)
        time.sleep(0.3)
        assert int((flash / "timefloor").read_text()) == future
        bridge = Bridge(link, ("127.0.0.1", token_server.port))
        r = bridge.run_handshake({"server_name": "localhost", "client_auth": True})
        assert not r["ok"] and bridge.errors[0]["where"] == "time"  # the true time is refused now
        t0 = int(time.time())
        ans = admin(link, hil_token.keys["ca"], {"set": "time", "t": t0},
                    (hil_token.dir / "ca.pem").read_bytes())
        assert ans["time_floor"] == t0
        r = bridge.run_handshake({"server_name": "localhost", "client_auth": True})
    assert r["ok"], r


# --- the commands ----------------------------------------------------------------------------


def _cli(hil_token, *args: str, ca: str = "ca"):
    import os
    import subprocess
    import sys

    env = dict(os.environ, HSMTLS_PIN=hil_token.pin)
    pem = "ca.pem" if ca == "ca" else "rogue-ca.pem"
    return subprocess.run([sys.executable, "-m", "hsmtls", "board", *args, "--ca-key", hil_token.uri(ca),
                           "--ca-cert", str(hil_token.dir / pem)], capture_output=True, text=True, timeout=120, env=env)


def test_cli_mode_and_factory_reset(provisioned, hil_token):
    board, flash, _ = provisioned
    p = _cli(hil_token, "mode", "dev", "--port", board.tty, ca="rogue-ca")
    assert p.returncode == 1 and "the board trusts another CA" in p.stderr, p.stdout + p.stderr
    p = _cli(hil_token, "mode", "dev", "--port", board.tty)
    assert p.returncode == 0 and "the board is in development mode" in p.stdout, p.stdout + p.stderr
    assert (flash / "dev").exists()
    p = _cli(hil_token, "mode", "production", "--port", board.tty)
    assert p.returncode == 0 and "production mode" in p.stdout and not (flash / "dev").exists(), p.stdout + p.stderr
    p = _cli(hil_token, "reset-clock", "--port", board.tty)
    assert p.returncode == 0 and "the board's clock: no TIME before" in p.stdout, p.stdout + p.stderr
    p = _cli(hil_token, "factory-reset", "--yes", "--port", board.tty)
    assert p.returncode == 0 and "the board has no trust anchor now" in p.stdout, p.stdout + p.stderr
    assert not (flash / "ca.pem").exists() and not (flash / "client.key").exists()
