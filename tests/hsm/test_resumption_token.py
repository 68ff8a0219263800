"""Resumption with the server key in SoftHSM2: ticket keys made, kept and rotated in
the token, sessions sealed by them, and `hsmtls serve --workers 2` resuming whichever
worker takes the reconnection."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from hsmtls.hsm.keyops import TokenKey
from hsmtls.hsm.tickets import TokenSealer, make_ticket_key, ticket_label
from hsmtls.hsm.token import Token, TokenError
from hsmtls.hsm.uri import PKCS11URI

from support.softhsm import PIN, requires_softhsm

pytestmark = requires_softhsm


def _ticket_keys(token_env, name: str) -> list:
    from pkcs11 import Attribute, ObjectClass

    session = Token(PKCS11URI({"token": token_env.label})).open(PIN)
    try:
        found = session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: ticket_label(name)})
        return [(bytes(o[Attribute.ID]), o[Attribute.SENSITIVE], o[Attribute.EXTRACTABLE], o[Attribute.NEVER_EXTRACTABLE],
                 o[Attribute.VALUE_LEN]) for o in found]
    finally:
        session.close()


def test_ticket_key_made_in_the_token_and_rotated(token_env):
    # a key of its own, so the other tests' server key keeps one ticket key
    token_env.cli("token", "keygen", "--object", "rotated")
    for _ in range(3):
        out = token_env.cli("token", "keygen", "--object", "rotated", "--ticket-key").stdout
        assert "object=rotated-ticket;type=secret-key" in out
    keys = _ticket_keys(token_env, "rotated")
    assert len(keys) == 2  # the newest and the one before it
    for _id, sensitive, extractable, never_extractable, length in keys:
        assert sensitive and not extractable and never_extractable and length == 32


def test_sealed_with_the_previous_key_opens_until_it_is_gone(token_env):
    token_env.cli("token", "keygen", "--object", "sealer")
    key = TokenKey(token_env.uri("sealer"), pin=PIN, pool_size=1)
    try:
        with pytest.raises(TokenError, match="--ticket-key"):
            TokenSealer(key)
        token = Token(PKCS11URI({"token": token_env.label}))
        make_ticket_key(token, PIN, "sealer")
        sealer = TokenSealer(key)
        sealer.relist = 0  # a running server lists the keys again once a minute
        old = sealer.seal(b"session one")
        assert sealer.open(old) == b"session one"
        assert sealer.open(old[:-1] + bytes([old[-1] ^ 1])) is None  # altered
        time.sleep(1.1)  # a new name: its first 4 bytes are the creation second
        make_ticket_key(token, PIN, "sealer")
        new = sealer.seal(b"session two")  # listed again: the rotated key is new
        assert new[:8] != old[:8]
        assert sealer.open(old) == b"session one"  # the previous key still opens
        time.sleep(1.1)
        make_ticket_key(token, PIN, "sealer")  # the first key is destroyed now
        assert sealer.open(old) is None
        assert (key.pool.logins, key.pool.reopened) == (1, 0)  # no relogin for a rotated key
    finally:
        key.close()


def _serve(token_env, *extra: str) -> tuple[subprocess.Popen, int]:
    # three tries: SoftHSM2 rewrites the token's file at another process's login or
    # keygen, and a server starting meanwhile can find it half written
    for attempt in range(3):
        try:
            return _serve_once(token_env, *extra)
        except AssertionError as e:
            if "on token" not in str(e) or attempt == 2:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")  # the last try returns or raises


def _serve_once(token_env, *extra: str) -> tuple[subprocess.Popen, int]:
    # the server's output goes to a file: a pipe nobody reads stops it once full
    log = open(token_env.dir / f"serve-{time.monotonic_ns()}.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hsmtls", "serve", "--port", "0", "--cert", "server.pem", "--key",
         token_env.uri("server"), *extra],
        cwd=token_env.dir, env=token_env.env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )
    proc.log = log  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        log.seek(0)
        m = re.search(r"^listening on [\d.]+:(\d+)", log.read(), re.M)
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    log.seek(0)
    raise AssertionError("hsmtls serve did not start: " + log.read())


def _stop(proc: subprocess.Popen) -> str:
    """Stop the server; what it printed."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.log.seek(0)  # type: ignore[attr-defined]
    return proc.log.read()  # type: ignore[attr-defined]


def _connect(token_env, port: int, *extra: str) -> str:
    return token_env.cli("connect", f"127.0.0.1:{port}", "--ca", "ca.pem", *extra).stdout


@pytest.mark.parametrize("mode", ["cache", "tickets"])
def test_resumption_across_workers(token_env, mode):
    # two workers: the kernel spreads the reconnections over both, and every one resumes
    if mode == "tickets":
        token_env.cli("token", "keygen", "--object", "server", "--ticket-key")
        extra = ["--tickets", "--session-cache", "0"]
    else:
        extra = ["--session-cache", "100"]
    proc, port = _serve(token_env, "--workers", "2", *extra)
    try:
        out = _connect(token_env, port, "--reconnect", "40")
        assert re.search(r"^resumed: no$", out, re.M), out  # the first connection
        assert re.search(r"^resumed: 40/40 ", out, re.M), out
    finally:
        _stop(proc)


def test_tickets_need_the_token_ticket_key(token_env):
    token_env.cli("token", "keygen", "--object", "noticket")
    proc = token_env.cli("serve", "--port", "0", "--cert", "server.pem", "--key", token_env.uri("noticket"),
                         "--tickets", "--workers", "1", check=False)
    assert proc.returncode != 0
    assert "keygen --object noticket --ticket-key" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_thousand_resumptions_in_a_row(token_env):
    token_env.cli("token", "keygen", "--object", "server", "--ticket-key")
    proc, port = _serve(token_env, "--workers", "1", "--tickets")
    try:
        out = token_env.cli("connect", f"127.0.0.1:{port}", "--ca", "ca.pem", "--reconnect", "1000", check=False)
    finally:
        log = _stop(proc)
    assert re.search(r"^resumed: 1000/1000 ", out.stdout, re.M), (out.stderr, log.count("resumed=yes"), [x for x in log.splitlines() if "resumed=" not in x][:20])


def test_sni_with_a_token_key_and_a_file_key(token_env, tmp_path):
    # the default certificate's key in the token, a second name's in a file: each
    # handshake's key operations go to the key of the certificate the name chose
    from hsmtls import devpki

    ca_key = devpki.new_key()
    ca = devpki.make_ca(ca_key, "other CA")
    key = devpki.new_key()
    other = devpki.write_cert(tmp_path / "other.pem", devpki.issue(ca, ca_key, key.public_key(), "other.example",
                                                                  "server", dns=("other.example",)))
    other_key = devpki.write_key(tmp_path / "other.key", key)
    proc, port = _serve(token_env, "--workers", "1", "--sni", f"other.example={other},{other_key}")
    try:
        for cipher in ("TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"):
            out = _connect(token_env, port, "--servername", "localhost", "--cipher", cipher)
            assert "peer: CN=localhost" in out, out
            out = token_env.cli("connect", f"127.0.0.1:{port}", "--insecure", "--servername", "other.example",
                                "--cipher", cipher).stdout
            assert "peer: CN=other.example" in out, out
    finally:
        log = _stop(proc)
    assert log.count("handshake complete") == 4, log
