"""Token errors inside the premaster countermeasure (hsm/keyops.py): with the server's
key in SoftHSM2, no ClientKeyExchange ends the handshake before Finished or makes the
server log in again, and the implicit-rejection key is refused unless it was made
inside the token and never left it.

The client is our engine on a real TCP socket to a real server (TLSServer on
BackgroundServer), with its RSA encryption replaced by the malformed ciphertext: the
ClientKeyExchange, ChangeCipherSpec and Finished that follow are what any client sends.
"""

from __future__ import annotations

import logging
import secrets

import pytest

from hsmtls.client import TLSClient, TLSFailure
from hsmtls.hsm.keyops import IR_SUFFIX, TokenKey
from hsmtls.hsm.token import Token, TokenError
from hsmtls.hsm.uri import PKCS11URI
from hsmtls.server import BackgroundServer, TLSServer
from hsmtls.tlsconfig import client_config, server_config
from tlscore import client as tls_client
from tlscore import constants as C

from support.softhsm import PIN, requires_softhsm

pytestmark = requires_softhsm

RSA_KX = ["TLS_RSA_WITH_AES_128_GCM_SHA256"]

# ciphertexts a peer can send that are not RSA ciphertexts under the server's key;
# SoftHSM2 answers the wrong lengths and the values >= n with CKR_GENERAL_ERROR
MALFORMED = {
    "all-zeros": lambda n, k: bytes(k),
    "short": lambda n, k: secrets.token_bytes(k - 1),
    "long": lambda n, k: b"\x01" + secrets.token_bytes(k),
    "long-leading-zero": lambda n, k: b"\x00" + (12345).to_bytes(k, "big"),
    "equal-to-n": lambda n, k: n.to_bytes(k, "big"),
    "above-n": lambda n, k: (n + 1).to_bytes(k, "big"),
    "all-ff": lambda n, k: b"\xff" * k,
    "empty": lambda n, k: b"",
}


def _serve(token_env, key: TokenKey) -> BackgroundServer:
    log: list[str] = []
    cfg = server_config(str(token_env.dir / "server.pem"), ciphers=RSA_KX)
    bg = BackgroundServer(TLSServer(cfg, key, out=log.append))
    bg.log = log  # type: ignore[attr-defined]
    return bg


def _handshake(token_env, port: int) -> None:
    c = TLSClient("127.0.0.1", port, client_config(str(token_env.dir / "ca.pem"), "localhost", ciphers=RSA_KX),
                  timeout=10)
    try:
        c.handshake()
    finally:
        c.close()


def _assert_fails_at_finished(token_env, port: int) -> None:
    with pytest.raises(TLSFailure) as failure:
        _handshake(token_env, port)
    # the server's alert, after it read our Finished: not internal_error at the key exchange
    assert failure.value.alert == C.BAD_RECORD_MAC and not failure.value.local, str(failure.value)


@pytest.fixture(scope="module")
def server_key(token_env):
    key = TokenKey(token_env.uri("server"), pin=PIN, pool_size=2)
    yield key
    key.close()


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_client_key_exchange_fails_at_finished_without_relogin(token_env, server_key, kind,
                                                                         monkeypatch):
    key = server_key
    logins, reopened = key.pool.logins, key.pool.reopened
    with _serve(token_env, key) as bg:
        _handshake(token_env, bg.port)  # a good one first: the pool's sessions exist
        with monkeypatch.context() as m:
            m.setattr(tls_client.pkcs1, "encrypt", lambda backend, n, e, pms: MALFORMED[kind](n, key.k))
            _assert_fails_at_finished(token_env, bg.port)
            _assert_fails_at_finished(token_env, bg.port)
        _handshake(token_env, bg.port)  # and the next handshake succeeds
        assert not any("internal_error" in line for line in bg.log), bg.log
    assert (key.pool.logins, key.pool.reopened) == (logins, reopened), "a ClientKeyExchange made the server log in again"
    assert key.decrypt_errors.count == 0  # refused on the host: the token was not asked


def test_same_malformed_ciphertext_same_substitute(server_key):
    for make in MALFORMED.values():
        ct = make(server_key.n, server_key.k)
        assert server_key.decrypt_premaster(ct) == server_key.decrypt_premaster(ct)


def _keypair(token_env, name: str, decrypt: bool = True) -> bytes:
    """An RSA key pair made in the token directly (as another tool would); its CKA_ID."""
    from pkcs11 import Attribute, KeyType

    token = Token(PKCS11URI({"token": token_env.label}))
    session = token.open(PIN, rw=True)
    key_id = secrets.token_bytes(8)
    try:
        session.generate_keypair(
            KeyType.RSA, 2048, id=key_id, label=name, store=True,
            public_template={Attribute.ENCRYPT: True, Attribute.VERIFY: True},
            private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.PRIVATE: True,
                              Attribute.SIGN: True, Attribute.DECRYPT: decrypt},
        )
    finally:
        session.close()
    return key_id


def test_token_error_on_a_well_formed_ciphertext_takes_the_substitute(token_env, caplog):
    # A real token error for a ciphertext below n: the key loses CKA_DECRYPT after the
    # server loaded it, so C_Decrypt answers CKR_KEY_FUNCTION_NOT_PERMITTED. The
    # handshake still fails only at Finished, the session and login are kept, and the
    # error is logged once, not once per handshake.
    from pkcs11 import Attribute, ObjectClass

    _keypair(token_env, "nodecrypt")
    key = TokenKey(token_env.uri("nodecrypt"), pin=PIN, pool_size=1)
    try:
        ct = (12345).to_bytes(key.k, "big")
        key.decrypt_premaster(ct)
        session = Token(PKCS11URI({"token": token_env.label})).open(PIN, rw=True)
        try:
            (priv,) = session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: "nodecrypt"})
            priv[Attribute.DECRYPT] = False
        finally:
            session.close()
        with caplog.at_level(logging.WARNING, logger="hsmtls.hsm"):
            results = [key.decrypt_premaster(ct) for _ in range(3)]
        assert key.decrypt_errors.count == 3
        assert results[0] == results[1] == results[2] and results[0][0] == 0 and len(results[0][2]) == 46
        lines = [r.getMessage() for r in caplog.records if "failed a premaster decryption" in r.getMessage()]
        assert len(lines) == 1 and "0x68" in lines[0], lines  # CKR_KEY_FUNCTION_NOT_PERMITTED
        assert (key.pool.logins, key.pool.reopened) == (1, 0)
        with _serve(token_env, key) as bg, pytest.MonkeyPatch.context() as m:
            # the certificate is the "server" key's: any premaster fails at Finished; what
            # matters is that it is bad_record_mac there, not internal_error here. The
            # client sends `ct` (below this key's n, so the token is asked): a ciphertext
            # made under the certificate's key would be >= n about half the time and be
            # refused on the host without reaching the token
            m.setattr(tls_client.pkcs1, "encrypt", lambda backend, n, e, pms: ct)
            _assert_fails_at_finished(token_env, bg.port)
        assert key.decrypt_errors.count == 4 and (key.pool.logins, key.pool.reopened) == (1, 0)
    finally:
        key.close()


def test_dead_session_still_fails_the_operation_and_reopens(token_env, server_key):
    # the other side of the line: an error that means the session is gone is not
    # swallowed into a substitute, it fails the operation and the pool logs in again
    from pkcs11 import exceptions as p11e

    key = server_key
    ct = (12345).to_bytes(key.k, "big")
    key.decrypt_premaster(ct)
    logins = key.pool.logins
    with key.pool.session() as w:
        w.session.close()  # behind the pool's back
    with pytest.raises(p11e.SessionHandleInvalid):
        key.decrypt_premaster(ct)
    assert key.pool.logins == logins + 1
    key.decrypt_premaster(ct)


# --- the implicit-rejection key must have been made in the token and never left it ---------


def _replace_ir_key(token_env, name: str, key_id: bytes, attrs: dict) -> None:
    from pkcs11 import Attribute, KeyType, ObjectClass

    token = Token(PKCS11URI({"token": token_env.label}))
    session = token.open(PIN, rw=True)
    label = name + IR_SUFFIX
    attrs = dict(attrs)
    key_type = attrs.pop("key_type", KeyType.GENERIC_SECRET)
    key_id = attrs.pop(Attribute.ID, key_id)
    try:
        for obj in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}):
            obj.destroy()
        template = {Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                    Attribute.SIGN: True, **attrs}
        session.generate_key(key_type, 256 if key_type == KeyType.AES else 512, id=key_id, label=label,
                             store=True, template=template)
    finally:
        session.close()


def _wrong_ir_keys() -> dict:
    from pkcs11 import Attribute, KeyType

    return {  # case: (attributes that make it wrong, what the refusal says)
        "extractable": ({Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False}, "is extractable"),
        "not-private": ({Attribute.PRIVATE: False}, "is not private"),
        "not-sensitive": ({Attribute.SENSITIVE: False}, "is not sensitive"),
        "wrong-id": ({Attribute.ID: b"other-id"}, "has not the RSA key's id"),
        "not-generic": ({"key_type": KeyType.AES}, "is not a generic secret"),
    }


@pytest.mark.parametrize("case", ["extractable", "not-private", "not-sensitive", "wrong-id", "not-generic"])
def test_wrongly_made_implicit_rejection_key_is_refused(token_env, case):
    attrs, problem = _wrong_ir_keys()[case]
    name = f"irkey-{case}"
    key_id = _keypair(token_env, name)
    _replace_ir_key(token_env, name, key_id, attrs)
    with pytest.raises(TokenError, match=problem):
        TokenKey(token_env.uri(name), pin=PIN, pool_size=1)
    # `hsmtls serve` says it in one line, with the command that fixes it
    fix = f"hsmtls token keygen --object {name} --implicit-rejection-only"
    proc = token_env.cli("serve", "--port", "0", "--cert", "server.pem", "--key", token_env.uri(name), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and problem in proc.stderr and fix in proc.stderr, proc.stderr
    token_env.cli(*fix.split()[1:])
    TokenKey(token_env.uri(name), pin=PIN, pool_size=1).close()


def test_missing_implicit_rejection_key_is_made_with_the_key_id(token_env):
    from pkcs11 import Attribute, ObjectClass

    from hsmtls.hsm.keyops import implicit_rejection_key_problems

    key_id = _keypair(token_env, "irkey-missing")
    key = TokenKey(token_env.uri("irkey-missing"), pin=PIN, pool_size=1)
    try:
        assert key.has_ir_key
        with key.pool.session() as w:
            (ir,) = w.session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY,
                                           Attribute.LABEL: "irkey-missing" + IR_SUFFIX})
            assert bytes(ir[Attribute.ID]) == key_id and implicit_rejection_key_problems(ir) == []
    finally:
        key.close()
