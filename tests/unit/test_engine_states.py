"""The transition tables as the whole state machine: a handler may only pick a next
state its row lists, the public dispatch hooks see every event, and nothing of one
handshake survives into a renegotiation."""

from __future__ import annotations

import pytest

from hsmtls.tlsconfig import parse_ciphers
from tlscore import constants as C
from tlscore.client import WAIT_SERVER_HELLO, ClientConnection
from tlscore.connection import CCS, CONNECTED, INITIATE, RENEGOTIATE
from tlscore.server import WAIT_FINISHED, ServerConnection

from support.engine_pair import Pair

RSA = "TLS_RSA_WITH_AES_128_GCM_SHA256"
ECDHE = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"


class _WrongPick(ServerConnection):
    def _on_client_hello(self, msg):
        ServerConnection._on_client_hello(self, msg)
        return WAIT_FINISHED  # not in WAIT_CLIENT_HELLO's row for ClientHello


def test_a_pick_outside_the_table_is_an_internal_error(make_configs, client_key, server_key):
    cc, sc = make_configs(RSA)
    p = Pair(cc, sc, client_key, server_key, server_cls=_WrongPick)
    p.handshake()
    closed = p.closed("s")
    assert closed is not None and closed.alert == C.INTERNAL_ERROR
    assert "ClientHello in state WAIT_CLIENT_HELLO picked WAIT_FINISHED" in closed.reason
    assert p.s.closed and not p.completed("c")


class _Hooked(ClientConnection):
    def __init__(self, *a):
        ClientConnection.__init__(self, *a)
        self.seen: list[tuple[str, object, str]] = []

    def before_dispatch(self, event):
        self.seen.append(("before", event, self.state))

    def after_dispatch(self, event):
        self.seen.append(("after", event, self.state))


def test_dispatch_hooks_see_every_event_and_the_state_it_led_to(make_configs, client_key, server_key):
    cc, sc = make_configs(ECDHE)
    p = Pair(cc, sc, client_key, server_key, client_cls=_Hooked)
    p.handshake()
    p.c.renegotiate()
    p.run()
    after = [(e, s) for kind, e, s in p.c.seen if kind == "after"]
    assert after[:8] == [
        (INITIATE, WAIT_SERVER_HELLO),
        (C.SERVER_HELLO, "WAIT_SERVER_CERTIFICATE"),
        (C.CERTIFICATE, "WAIT_SERVER_KEY_EXCHANGE"),
        (C.SERVER_KEY_EXCHANGE, "WAIT_CERTIFICATE_REQUEST"),
        (C.SERVER_HELLO_DONE, "WAIT_CHANGE_CIPHER_SPEC"),
        (CCS, "WAIT_FINISHED"),
        (C.FINISHED, CONNECTED),
        (RENEGOTIATE, WAIT_SERVER_HELLO),
    ]
    assert after[-1] == (C.FINISHED, CONNECTED) and len(after) == 14
    # each before has its after, in order
    assert [e for k, e, _ in p.c.seen if k == "before"] == [e for e, _ in after]


@pytest.mark.parametrize("first,second", [(ECDHE, RSA), (RSA, ECDHE)])
def test_renegotiation_keeps_nothing_of_the_handshake_before(make_configs, client_key, server_key, epki,
                                                             first, second):
    # the first handshake with client auth and one suite, the renegotiation without a
    # client certificate request and with the other: nothing per handshake carries over
    cc, sc = make_configs(None, "require", epki.client_cert)
    cc.cipher_suites = parse_ciphers([first, second])
    sc.cipher_suites = parse_ciphers([first])
    p = Pair(cc, sc, client_key, server_key)
    p.handshake()
    assert p.completed("c")[0].cipher_suite == first
    assert p.c.certificate_request is not None
    sc.cipher_suites = parse_ciphers([second])
    sc.client_auth = "none"
    p.c.renegotiate()
    p.run()
    done = p.completed("c")
    assert len(done) == 2 and done[1].cipher_suite == second and not done[1].client_certificate_requested
    assert p.c.certificate_request is None and p.c._cv_scheme is None
    if second == RSA:
        assert p.c.server_key_exchange is None
        assert p.s._ecdhe is None and p.s._ske is None
    assert p.s._ecdh_private is None and p.s._ems_hash is None
