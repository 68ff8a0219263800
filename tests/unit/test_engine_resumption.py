"""Session resumption in the engine (RFC 5246 §7.3 session IDs, RFC 5077 tickets, RFC
7627 §5.3, RFC 6066 §3), with the host's SessionStore sealing sessions in memory."""

from __future__ import annotations

import copy

import pytest

from hsmtls.sessions import RamSealer, SessionStore, SessionTable
from tlscore import constants as C
from tlscore.events import HandshakeComplete, KeyOperationRequest
from tlscore.session import Session

from support.engine_pair import Pair

RSA = "TLS_RSA_WITH_AES_128_GCM_SHA256"
ECDHE = "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"


def _configs(make_configs, epki, suite=RSA, auth="none", cache=True, tickets=False, client_tickets=True):
    cc, sc = make_configs(suite, auth, epki.client_cert if auth != "none" else None)
    sc.session_cache, sc.session_tickets = cache, tickets
    cc.session_tickets = client_tickets
    return cc, sc


def _connect(cc, sc, client_key, server_key, store, session=None) -> Pair:
    cc = copy.copy(cc)
    cc.session = session
    p = Pair(cc, sc, client_key, server_key, sessions=store)
    p.handshake()
    for ev in p.of(HandshakeComplete, "s"):
        if not ev.resumed:
            store.keep(ev.session)  # as hsmtls.server does
    return p


def _store(cache=True) -> SessionStore:
    return SessionStore(RamSealer(), SessionTable(100) if cache else None)


def _kinds(p: Pair) -> list[str]:
    return [e.kind for e in p.of(KeyOperationRequest, "s")]


@pytest.mark.parametrize("suite", [RSA, ECDHE])
@pytest.mark.parametrize("tickets", [False, True], ids=["session-id", "ticket"])
def test_abbreviated_handshake(make_configs, client_key, server_key, epki, suite, tickets):
    cc, sc = _configs(make_configs, epki, suite, "require", cache=not tickets, tickets=tickets)
    store = _store(cache=not tickets)
    first = _connect(cc, sc, client_key, server_key, store)
    (done,) = first.completed("c")
    assert not done.resumed and len(done.session.session_id) == 32
    assert (done.session.ticket is not None) == tickets
    second = _connect(cc, sc, client_key, server_key, store, done.session)
    (c_done,), (s_done,) = second.completed("c"), second.completed("s")
    assert c_done.resumed and s_done.resumed and c_done.cipher_suite == suite
    # no private-key operation at all, on either side; the client identity comes back
    assert _kinds(second) == [C_OPEN if tickets else C_FIND]
    assert not second.of(KeyOperationRequest, "c")
    assert s_done.peer_subject == first.completed("s")[0].peer_subject is not None
    assert c_done.peer_subject.startswith("CN=localhost")
    # the server's flight: ServerHello, ChangeCipherSpec, Finished; the client's keys work
    second.c.send_application_data(b"after resumption")
    second.run()
    assert second.closed("s") is None and second.closed("c") is None
    # resumed again from the resumed session
    third = _connect(cc, sc, client_key, server_key, store, c_done.session)
    assert third.completed("c")[0].resumed


C_FIND, C_OPEN, C_SEAL = "find_session", "open_ticket", "seal_ticket"


def test_every_full_handshake_gets_a_fresh_session_id(make_configs, client_key, server_key, epki):
    cc, sc = _configs(make_configs, epki)
    store = _store()
    ids = {_connect(cc, sc, client_key, server_key, store).completed("s")[0].session.session_id for _ in range(3)}
    assert len(ids) == 3 and all(len(i) == 32 for i in ids)


def test_unknown_or_foreign_session_is_a_full_handshake(make_configs, client_key, server_key, epki):
    cc, sc = _configs(make_configs, epki, tickets=True)
    store = _store()
    s = _connect(cc, sc, client_key, server_key, store).completed("c")[0].session
    other = _store()  # another server: another sealing key, another cache
    p = _connect(cc, sc, client_key, server_key, other, s)
    assert not p.completed("c")[0].resumed and p.closed("c") is None
    # a ticket altered in one byte, and one cut short
    for bad in (s.ticket[:-1] + bytes([s.ticket[-1] ^ 1]), s.ticket[:10]):
        forged = copy.copy(s)
        forged.ticket = bad
        forged.session_id = b""
        p = _connect(cc, sc, client_key, server_key, store, forged)
        assert not p.completed("c")[0].resumed and p.closed("s") is None


def test_expired_session_is_a_full_handshake(make_configs, client_key, server_key, epki):
    cc, sc = _configs(make_configs, epki)
    store = _store()
    s = _connect(cc, sc, client_key, server_key, store).completed("c")[0].session
    later = copy.copy(sc)
    t0 = s.created
    later.now = lambda: t0 + sc.session_lifetime + 1
    assert not _connect(cc, later, client_key, server_key, store, s).completed("c")[0].resumed
    later.now = lambda: t0 + sc.session_lifetime - 1
    assert _connect(cc, later, client_key, server_key, store, s).completed("c")[0].resumed


def test_ems_session_resumed_without_ems_is_handshake_failure(make_configs, client_key, server_key, epki):
    cc, sc = _configs(make_configs, epki)
    store = _store()
    s = _connect(cc, sc, client_key, server_key, store).completed("c")[0].session
    assert s.extended_master_secret
    no_ems = copy.copy(cc)
    no_ems.extended_master_secret = False
    p = _connect(no_ems, sc, client_key, server_key, store, s)
    closed = p.closed("s")
    assert closed is not None and closed.alert == C.HANDSHAKE_FAILURE and "extended_master_secret" in closed.reason


def test_non_ems_session_is_not_resumed_by_an_ems_hello(make_configs, client_key, server_key, epki):
    cc, sc = _configs(make_configs, epki)
    store = _store()
    no_ems = copy.copy(cc)
    no_ems.extended_master_secret = False
    s = _connect(no_ems, sc, client_key, server_key, store).completed("c")[0].session
    assert not s.extended_master_secret
    p = _connect(cc, sc, client_key, server_key, store, s)
    (done,) = p.completed("c")
    assert not done.resumed and done.extended_master_secret


def test_other_server_name_is_a_full_handshake(make_configs, client_key, server_key, epki):
    cc, sc = _configs(make_configs, epki)
    store = _store()
    s = _connect(cc, sc, client_key, server_key, store).completed("c")[0].session
    # the client offers the session under another name (its own check skipped): the
    # server does not resume it
    renamed = copy.copy(s)
    renamed.server_name = "other.example"
    other = copy.copy(cc)
    other.server_name = "other.example"
    other.verify_peer = False
    p = _connect(other, sc, client_key, server_key, store, renamed)
    assert not p.completed("s")[0].resumed


def test_client_does_not_offer_a_session_for_another_name(make_configs, client_key, server_key, epki):
    cc, sc = _configs(make_configs, epki)
    store = _store()
    s = _connect(cc, sc, client_key, server_key, store).completed("c")[0].session
    other = copy.copy(cc)
    other.server_name = "127.0.0.1"
    other.verify_peer = False
    p = _connect(other, sc, client_key, server_key, store, s)
    assert not p.completed("c")[0].resumed and _kinds(p).count(C_FIND) == 0


def test_renegotiated_session_is_the_one_resumed(make_configs, client_key, server_key, epki):
    cc, sc = _configs(make_configs, epki)
    store = _store()
    p = _connect(cc, sc, client_key, server_key, store)
    p.c.renegotiate()
    p.run()
    first, renegotiated = p.completed("c")
    assert renegotiated.renegotiation and not renegotiated.resumed
    assert renegotiated.session.session_id != first.session.session_id
    store.keep(p.completed("s")[1].session)
    q = _connect(cc, sc, client_key, server_key, store, renegotiated.session)
    assert q.completed("c")[0].resumed
    assert q.c.master_secret == renegotiated.session.master_secret != first.session.master_secret


def test_require_client_auth_does_not_resume_a_session_without_a_client(make_configs, client_key, server_key, epki):
    cc, sc = _configs(make_configs, epki)
    store = _store()
    s = _connect(cc, sc, client_key, server_key, store).completed("c")[0].session
    strict = copy.copy(sc)
    strict.client_auth = "require"
    strict.trust_anchors = make_configs(RSA, "require", epki.client_cert)[1].trust_anchors
    with_cert = make_configs(RSA, "require", epki.client_cert)[0]
    with_cert.session_tickets = True
    p = _connect(with_cert, strict, client_key, server_key, store, s)
    (done,) = p.completed("s")
    assert not done.resumed and done.peer_subject is not None


def test_a_ticket_that_cannot_be_sealed_still_completes(make_configs, client_key, server_key, epki):
    class Broken(RamSealer):
        def seal(self, plaintext: bytes) -> bytes:
            raise OSError("token gone")

    cc, sc = _configs(make_configs, epki, cache=False, tickets=True)
    p = _connect(cc, sc, client_key, server_key, SessionStore(Broken(), None))
    (done,) = p.completed("c")
    assert done.session.ticket is None and not done.resumed


def test_session_bytes_round_trip():
    s = Session(b"\x01" * 32, 0xC02F, bytes(range(48)), True, "localhost", b"\x30\x03\x02\x01\x00", 1796083200)
    t = Session.from_bytes(s.to_bytes(), s.session_id)
    assert (t.cipher_suite, t.master_secret, t.extended_master_secret, t.server_name, t.peer_certificate, t.created) == (
        s.cipher_suite, s.master_secret, True, "localhost", s.peer_certificate, s.created)
    for bad in (b"", b"\x02" + s.to_bytes()[1:], s.to_bytes()[:-1], s.to_bytes() + b"\x00"):
        assert Session.from_bytes(bad) is None


def test_resumption_in_the_state_tables():
    from hsmtls.tracing.states import edges

    server = {(a, label.split(" [")[0], b) for a, label, b in edges("server")}
    assert ("WAIT_CLIENT_HELLO", "ClientHello", "WAIT_SESSION") in server
    assert ("WAIT_SESSION", "session answered", "WAIT_CHANGE_CIPHER_SPEC") in server
    client = {(a, label.split(" [")[0], b) for a, label, b in edges("client")}
    assert ("WAIT_SERVER_HELLO", "ServerHello", "WAIT_CHANGE_CIPHER_SPEC") in client
    assert ("WAIT_NEW_SESSION_TICKET", "NewSessionTicket", "WAIT_CHANGE_CIPHER_SPEC") in client
    assert C.NEW_SESSION_TICKET == 4
