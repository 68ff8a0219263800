"""The engine, client against server in memory: every suite, client auth, renegotiation,
and every malformed input we can make, each ending in the right alert. (Just over 600
lines: one table of refusals, best read whole; resumption, states and signatures have
their own modules.)"""

from __future__ import annotations

import random

import pytest

from tlscore import constants as C
from tlscore import suites, x509
from tlscore.client import ClientConnection, PreparedPremaster
from tlscore.errors import TLSError
from tlscore.events import (
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    KeyOperationRequest,
    RenegotiationRequested,
)
from tlscore.messages import ClientHello, frame, renegotiation_info_extension
from tlscore.pkcs1 import premaster_candidate
from tlscore.server import ServerConnection, premaster_from_decryption

from support.engine_pair import Pair, record, records

SUITES = [s.name for s in suites.ALL]


def alert_sent(pair: Pair, side: str) -> int | None:
    ev = pair.closed(side)
    assert ev is not None and ev.local, f"{side} did not fail: {pair.cev if side == 'c' else pair.sev}"
    return ev.alert


# --- the happy paths ------------------------------------------------------------------


@pytest.mark.parametrize("reneg", ["none", "client", "server"])
@pytest.mark.parametrize("auth", ["none", "require"])
@pytest.mark.parametrize("suite", SUITES)
def test_handshake_data_and_renegotiation(make_configs, client_key, server_key, epki, suite, auth, reneg):
    cc, sc = make_configs(suite, auth, epki.client_cert if auth != "none" else None)
    p = Pair(cc, sc, client_key, server_key)
    p.handshake()
    (c_done,), (s_done,) = p.completed("c"), p.completed("s")
    assert c_done.cipher_suite == s_done.cipher_suite == suite
    assert c_done.extended_master_secret and c_done.secure_renegotiation
    assert c_done.encrypt_then_mac == (suites.lookup(suite).cipher == "CBC")
    assert c_done.peer_subject.startswith("CN=localhost")
    assert (s_done.peer_subject is not None) == (auth != "none")
    if reneg == "client":
        p.c.renegotiate()
    elif reneg == "server":
        p.s.renegotiate()
    p.run()
    p.c.send_application_data(b"ping" * 5000)  # more than one record
    p.run()
    p.s.send_application_data(b"pong")
    p.run()
    assert b"".join(e.data for e in p.of(ApplicationData, "s")) == b"ping" * 5000
    assert [e.data for e in p.of(ApplicationData, "c")] == [b"pong"]
    expected = 1 if reneg == "none" else 2
    assert len(p.completed("c")) == len(p.completed("s")) == expected
    if reneg != "none":
        assert p.completed("c")[-1].renegotiation and p.c.renegotiation_count == 1
    p.c.close()
    p.run()
    assert p.closed("s").clean


@pytest.mark.parametrize("suite", ["TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"])
def test_server_flight_is_one_record(make_configs, client_key, server_key, epki, suite):
    cc, sc = make_configs(suite, "require", epki.client_cert)
    p = Pair(cc, sc, client_key, server_key)
    p.start()
    p.c2s()
    flight = p.s2c()
    recs = records(flight)
    assert len(recs) == 1 and recs[0][0] == C.HANDSHAKE
    body, types = recs[0][1], []
    while body:
        types.append(body[0])
        body = body[4 + int.from_bytes(body[1:4], "big"):]
    ske = [C.SERVER_KEY_EXCHANGE] if "ECDHE" in suite else []
    assert types == [C.SERVER_HELLO, C.CERTIFICATE] + ske + [C.CERTIFICATE_REQUEST, C.SERVER_HELLO_DONE]


@pytest.mark.parametrize("size", [1, 3, 7, 100])
def test_handshake_messages_fragmented_across_records(make_configs, client_key, server_key, epki, size):
    def fragment(data: bytes) -> bytes:
        out = b""
        for ct, frag in records(data):
            if ct == C.HANDSHAKE and len(frag) > size and frag[0] in (1, 2):  # the hellos
                out += b"".join(record(ct, frag[i : i + size]) for i in range(0, len(frag), size))
            else:
                out += record(ct, frag)
        return out

    cc, sc = make_configs(None, "require", epki.client_cert)
    p = Pair(cc, sc, client_key, server_key)
    p.start()
    for _ in range(6):
        p.c2s(fragment)
        p.s2c(fragment)
    assert len(p.completed("c")) == len(p.completed("s")) == 1


def test_key_operation_is_asynchronous(make_configs, server_key):
    cc, sc = make_configs("TLS_RSA_WITH_AES_128_GCM_SHA256")
    p = Pair(cc, sc, None, None)
    p.start()
    p.c2s()
    p.s2c()
    p.c2s()  # ClientKeyExchange, CCS, Finished all at once
    (req,) = p.of(KeyOperationRequest, "s")
    assert req.kind == "decrypt" and len(req.data) == 256
    assert p.s.data_to_send() == b""  # the engine waits; nothing decided yet
    events = p.s.key_operation_result(req.op_id, server_key.decrypt_premaster(req.data))
    p.sev += events
    p.run()
    assert len(p.completed("c")) == len(p.completed("s")) == 1


def test_prepared_premaster_used_once_and_only_for_its_key(make_configs, server_key, epki):
    from hsmtls.backend import BACKEND

    pem = epki.server_cert.read_bytes()
    key = x509.parse_certificate(x509.pem_to_der_list(pem)[0]).public_key
    prepared = PreparedPremaster()
    prepared.prepare(BACKEND, key.n, key.e)
    encrypted = prepared._encrypted
    assert prepared.ready and len(encrypted) == 256

    cc, sc = make_configs("TLS_RSA_WITH_AES_128_GCM_SHA256")
    cc.prepared_premaster = prepared
    p = Pair(cc, sc, None, server_key)
    p.handshake()
    assert len(p.completed("c")) == len(p.completed("s")) == 1  # the server agrees on the keys
    assert encrypted in b"".join(p.wire_c2s)  # ClientKeyExchange carried what was prepared
    assert not prepared.ready and prepared.used == 1

    # used up: the next handshake encrypts a fresh premaster
    cc, sc = make_configs("TLS_RSA_WITH_AES_128_GCM_SHA256")
    cc.prepared_premaster = prepared
    p = Pair(cc, sc, None, server_key)
    p.handshake()
    assert len(p.completed("c")) == 1 and encrypted not in b"".join(p.wire_c2s)

    # made for another key: left alone, the handshake encrypts to the server's own key
    prepared.prepare(BACKEND, key.n + 2, key.e)
    cc, sc = make_configs("TLS_RSA_WITH_AES_128_GCM_SHA256")
    cc.prepared_premaster = prepared
    p = Pair(cc, sc, None, server_key)
    p.handshake()
    assert len(p.completed("c")) == len(p.completed("s")) == 1
    assert prepared.ready and prepared.used == 1


def test_key_operation_failure_is_internal_error(make_configs):
    cc, sc = make_configs("TLS_RSA_WITH_AES_128_GCM_SHA256")
    p = Pair(cc, sc)
    p.start()
    p.c2s()
    p.s2c()
    p.c2s()
    (req,) = p.of(KeyOperationRequest, "s")
    p.sev += p.s.key_operation_failed(req.op_id, "CKR_DEVICE_REMOVED")
    assert alert_sent(p, "s") == C.INTERNAL_ERROR
    assert "CKR_DEVICE_REMOVED" in p.closed("s").reason
    p.s2c()
    assert [a.name for a in p.of(AlertReceived, "c")] == ["internal_error"]


# --- certificates ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "cert_attr,alert,words",
    [
        ("server_expired", C.CERTIFICATE_EXPIRED, "expired"),
        ("server_wrong_host", C.CERTIFICATE_UNKNOWN, "does not match"),
        ("server_other_ca", C.UNKNOWN_CA, "trusted"),
    ],
)
def test_bad_server_certificate(make_configs, server_key, epki, cert_attr, alert, words):
    cc, sc = make_configs(server_cert=getattr(epki, cert_attr))
    p = Pair(cc, sc, None, server_key)
    p.handshake()
    assert alert_sent(p, "c") == alert
    assert words in p.closed("c").reason
    assert [a.description for a in p.of(AlertReceived, "s")] == [alert]
    assert not p.completed("s")


def test_bad_client_certificate_unknown_ca(make_configs, client_key, server_key, epki):
    cc, sc = make_configs(None, "require", epki.client_other_ca)
    p = Pair(cc, sc, client_key, server_key)
    p.handshake()
    assert alert_sent(p, "s") == C.UNKNOWN_CA
    assert p.closed("c").alert == C.UNKNOWN_CA and not p.closed("c").local


def test_client_without_certificate(make_configs, server_key):
    cc, sc = make_configs(None, "require", None)
    p = Pair(cc, sc, None, server_key)
    p.handshake()
    assert alert_sent(p, "s") == C.HANDSHAKE_FAILURE
    cc, sc = make_configs(None, "optional", None)
    p = Pair(cc, sc, None, server_key)
    p.handshake()
    assert p.completed("s")[0].peer_certificate is None


# --- malformed input and protocol violations ---------------------------------------------


def _server_after(data: bytes, make_configs) -> Pair:
    cc, sc = make_configs()
    p = Pair(cc, sc)
    p._answer(p.s, None, p.s.receive_data(data), p.sev)
    return p


def _client_hello(version=0x0303, record_version=0x0301, extensions=None, suites_=(0x009C, 0x00FF)):
    ch = ClientHello(version, bytes(32), b"", list(suites_), [0],
                     extensions if extensions is not None else [(C.EXT_EXTENDED_MASTER_SECRET, b"")])
    return record(C.HANDSHAKE, frame(C.CLIENT_HELLO, ch.write()), record_version)


@pytest.mark.parametrize("version", [0x0300, 0x0301, 0x0302, 0x0200])
def test_old_versions_get_protocol_version(make_configs, version):
    p = _server_after(_client_hello(version, version if version >= 0x0300 else 0x0301), make_configs)
    assert alert_sent(p, "s") == C.PROTOCOL_VERSION
    assert p.s.data_to_send() == bytes.fromhex("1503030002") + bytes([2, C.PROTOCOL_VERSION])


@pytest.mark.parametrize(
    "data,alert",
    [
        (b"GET / HTTP/1.1\r\n\r\n", C.UNEXPECTED_MESSAGE),
        (record(0x63, b"\x00"), C.UNEXPECTED_MESSAGE),
        (bytes([22, 3, 3, 0x48, 0x01]), C.RECORD_OVERFLOW),
        (record(C.APPLICATION_DATA, b"early"), C.UNEXPECTED_MESSAGE),
        (record(C.HANDSHAKE, frame(C.CLIENT_KEY_EXCHANGE, b"\x00\x02ab")), C.UNEXPECTED_MESSAGE),
        (record(C.HANDSHAKE, frame(C.FINISHED, bytes(12))), C.UNEXPECTED_MESSAGE),
        (record(C.CHANGE_CIPHER_SPEC, b"\x01"), C.UNEXPECTED_MESSAGE),
        (record(C.HANDSHAKE, b""), C.UNEXPECTED_MESSAGE),
        (record(C.HANDSHAKE, bytes([1, 0, 0, 5, 3, 3, 0, 0, 0])), C.DECODE_ERROR),
        # a server reads any ClientHello its vectors allow (> 2^16), nothing longer,
        # and no other message over max_handshake_message (2^16)
        (record(C.HANDSHAKE, bytes([1, 0x02, 0x10, 0])), C.ILLEGAL_PARAMETER),
        (record(C.HANDSHAKE, bytes([11, 0x01, 0, 1])), C.ILLEGAL_PARAMETER),
        (record(C.ALERT, b"\x02"), C.DECODE_ERROR),
        (record(C.HANDSHAKE, bytes(20000)), C.RECORD_OVERFLOW),
        (bytes([22, 9, 9, 0, 1, 0]), C.PROTOCOL_VERSION),
    ],
    ids=["http", "unknown-type", "overflow", "appdata-first", "cke-first", "finished-first",
         "ccs-first", "empty-handshake", "truncated-hello", "huge-hello", "huge-message", "short-alert",
         "plaintext-over-2^14", "not-tls-version"],
)
def test_malformed_first_flight(make_configs, data, alert):
    p = _server_after(data, make_configs)
    assert alert_sent(p, "s") == alert
    assert p.s.closed


def test_second_message_out_of_order_in_same_record(make_configs):
    ch = records(_client_hello())[0][1]
    p = _server_after(record(C.HANDSHAKE, ch + frame(C.FINISHED, bytes(12))), make_configs)
    assert alert_sent(p, "s") == C.UNEXPECTED_MESSAGE


def test_no_shared_suite_and_no_null_compression(make_configs):
    p = _server_after(_client_hello(suites_=(0x1301,)), make_configs)
    assert alert_sent(p, "s") == C.HANDSHAKE_FAILURE


def test_nonempty_renegotiation_info_on_initial_hello(make_configs):
    p = _server_after(_client_hello(extensions=[renegotiation_info_extension(b"x" * 12)]), make_configs)
    assert alert_sent(p, "s") == C.HANDSHAKE_FAILURE


def test_duplicate_extension(make_configs):
    ext = [(C.EXT_EXTENDED_MASTER_SECRET, b""), (C.EXT_EXTENDED_MASTER_SECRET, b"")]
    p = _server_after(_client_hello(extensions=ext), make_configs)
    assert alert_sent(p, "s") == C.ILLEGAL_PARAMETER


def _established(make_configs, client_key, server_key, suite=None, etm=True):
    cc, sc = make_configs(suite)
    cc.encrypt_then_mac = etm
    p = Pair(cc, sc, client_key, server_key)
    p.handshake()
    assert p.completed("s")
    return p


@pytest.mark.parametrize("etm", [True, False])
@pytest.mark.parametrize("suite", SUITES)
def test_flipped_mac_bit_is_bad_record_mac(make_configs, client_key, server_key, suite, etm):
    p = _established(make_configs, client_key, server_key, suite, etm)
    assert p.completed("s")[0].encrypt_then_mac == (etm and "CBC" in suite)
    p.c.send_application_data(b"attack at dawn")

    def flip(data: bytes) -> bytes:
        return data[:-1] + bytes([data[-1] ^ 0x01])

    p.c2s(flip)
    assert alert_sent(p, "s") == C.BAD_RECORD_MAC
    assert not p.of(ApplicationData, "s")


@pytest.mark.parametrize("suite", ["TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA256"])
def test_cbc_bad_padding_same_alert_as_bad_mac(make_configs, client_key, server_key, suite):
    # MAC-then-encrypt: craft a record whose padding is wrong but whose length is right
    p = _established(make_configs, client_key, server_key, suite, etm=False)
    prot = p.c.records.write_protection
    seq = p.c.records.write_seq
    iv = bytes(16)
    body = b"A" * 10 + prot._mac(seq, C.APPLICATION_DATA, b"A" * 10)
    pad = 15 - len(body) % 16
    bad_padding = bytes([pad]) * pad + bytes([pad ^ 0x40])
    fragment = iv + prot.cbc.encrypt(iv, body + bad_padding)
    p._answer(p.s, None, p.s.receive_data(record(C.APPLICATION_DATA, fragment)), p.sev)
    assert alert_sent(p, "s") == C.BAD_RECORD_MAC


def test_bad_finished_is_decrypt_error(make_configs, client_key, server_key):
    class LyingClient(ClientConnection):
        def _send_finished(self):
            self._verify_data = lambda *a: bytes(12)
            ClientConnection._send_finished(self)

    cc, sc = make_configs()
    p = Pair(cc, sc, client_key, server_key, client_cls=LyingClient)
    p.handshake()
    assert alert_sent(p, "s") == C.DECRYPT_ERROR
    assert "Finished" in p.closed("s").reason
    assert [a.name for a in p.of(AlertReceived, "c")] == ["decrypt_error"]


# --- the premaster countermeasure (RFC 5246 §7.4.7.1) -------------------------------------


def test_premaster_selection():
    good = b"\x03\x03" + bytes(range(46))
    sub = bytes([0xEE]) * 46
    assert premaster_from_decryption(1, good, 0x0303, sub) == good
    fallback = b"\x03\x03" + sub
    assert premaster_from_decryption(0, good, 0x0303, sub) == fallback  # bad padding
    for bad in (b"\x03\x01" + good[2:], b"\x02\x03" + good[2:]):  # wrong version
        assert premaster_from_decryption(1, bad, 0x0303, sub) == fallback
    # a message decrypted elsewhere, of any length: only 48 bytes can be good
    for other in (b"", good[:47], good + b"\x00"):
        assert premaster_from_decryption(*premaster_candidate(other), 0x0303, sub) == fallback
    assert premaster_from_decryption(*premaster_candidate(good), 0x0303, sub) == good
    with pytest.raises(TLSError):  # a key's answer of the wrong shape is a bug, not a premaster
        premaster_from_decryption(1, good[:47], 0x0303, sub)


def test_corrupt_premaster_fails_only_at_finished(make_configs, client_key, server_key):
    """A bad EncryptedPreMasterSecret must look like any wrong key: no alert at the
    ClientKeyExchange, the same path on, and bad_record_mac at the client's Finished."""
    cc, sc = make_configs("TLS_RSA_WITH_AES_128_GCM_SHA256")
    p = Pair(cc, sc, client_key, server_key)
    p.start()
    p.c2s()
    p.s2c()

    def corrupt_cke(data: bytes) -> bytes:
        ct, frag = records(data)[0]
        assert frag[0] == C.CLIENT_KEY_EXCHANGE
        frag = frag[:10] + bytes([frag[10] ^ 0xFF]) + frag[11:]
        return record(ct, frag) + data[5 + len(records(data)[0][1]):]

    p.c2s(corrupt_cke)
    assert len(p.of(KeyOperationRequest, "s")) == 1
    assert alert_sent(p, "s") == C.BAD_RECORD_MAC  # the client's Finished did not decrypt
    assert not p.completed("s")


# --- secure renegotiation only ------------------------------------------------------------


class LegacyClient(ClientConnection):
    """A client that does not speak RFC 5746 (no renegotiation_info, no SCSV)."""

    def _send_handshake(self, msg):
        if isinstance(msg, ClientHello):
            msg.extensions = [e for e in msg.extensions if e[0] != C.EXT_RENEGOTIATION_INFO]
        ClientConnection._send_handshake(self, msg)


def test_insecure_renegotiation_refused(make_configs, client_key, server_key):
    cc, sc = make_configs()
    p = Pair(cc, sc, client_key, server_key, client_cls=LegacyClient)
    p.handshake()
    assert not p.completed("s")[0].secure_renegotiation
    with pytest.raises(ValueError):
        p.s.renegotiate()
    # force a renegotiation ClientHello from the legacy client anyway
    p.c.secure_renegotiation = True
    p.c.renegotiate()
    p.run()
    assert [e.accepted for e in p.of(RenegotiationRequested, "s")] == [False]
    assert [a.name for a in p.of(AlertReceived, "c")] == ["no_renegotiation"]
    assert len(p.completed("s")) == 1
    p.c.send_application_data(b"still here")
    p.run()
    assert [e.data for e in p.of(ApplicationData, "s")] == [b"still here"]


def test_renegotiation_with_wrong_verify_data(make_configs, client_key, server_key):
    cc, sc = make_configs()
    p = Pair(cc, sc, client_key, server_key)
    p.handshake()
    p.c.client_verify_data = bytes(12)
    p.c.renegotiate()
    p.run()
    assert alert_sent(p, "s") == C.HANDSHAKE_FAILURE


def test_client_refuses_hello_request_without_secure_renegotiation(make_configs, client_key, server_key):
    class LegacyServer(ServerConnection):
        def _on_client_hello(self, msg):
            msg.extensions = [e for e in msg.extensions if e[0] != C.EXT_RENEGOTIATION_INFO]
            msg.cipher_suites = [s for s in msg.cipher_suites if s != C.TLS_EMPTY_RENEGOTIATION_INFO_SCSV]
            return ServerConnection._on_client_hello(self, msg)

    cc, sc = make_configs()
    p = Pair(cc, sc, client_key, server_key, server_cls=LegacyServer)
    p.handshake()
    assert not p.completed("c")[0].secure_renegotiation
    p.s.secure_renegotiation = True
    p.s.renegotiate()
    p.run()
    assert [e.accepted for e in p.of(RenegotiationRequested, "c")] == [False]
    assert [a.name for a in p.of(AlertReceived, "s")] == ["no_renegotiation"]
    assert not p.c.closed and not p.s.closed


# --- robustness: nothing escapes receive_data ------------------------------------------------


def test_mutated_flights_never_raise(make_configs, client_key, server_key):
    rng = random.Random(1234)
    cc, sc = make_configs(None, "require", None)
    base = Pair(cc, sc, client_key, server_key)
    base.start()
    hello = base.c.data_to_send()
    for _ in range(300):
        data = bytearray(hello)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        cc, sc = make_configs(None, "require", None)
        p = Pair(cc, sc, client_key, server_key)
        events = p.s.receive_data(bytes(data))  # must not raise
        assert all(not isinstance(e, ConnectionClosed) or e.alert is not None for e in events)


# --- more protocol violations after the keys are in use ----------------------------------------


def test_bad_server_finished_is_decrypt_error_on_the_client(make_configs, client_key, server_key):
    class LyingServer(ServerConnection):
        def _send_finished(self):
            self._verify_data = lambda *a: bytes(12)
            ServerConnection._send_finished(self)

    cc, sc = make_configs()
    p = Pair(cc, sc, client_key, server_key, server_cls=LyingServer)
    p.handshake()
    assert alert_sent(p, "c") == C.DECRYPT_ERROR
    assert [a.name for a in p.of(AlertReceived, "s")] == ["decrypt_error"]


def test_flipped_bit_in_encrypted_finished(make_configs, client_key, server_key):
    cc, sc = make_configs()
    p = Pair(cc, sc, client_key, server_key)
    p.start()
    p.c2s()
    p.s2c()

    def flip_last(data: bytes) -> bytes:  # the Finished record is the last one
        return data[:-3] + bytes([data[-3] ^ 0x20]) + data[-2:]

    p.c2s(flip_last)
    assert alert_sent(p, "s") == C.BAD_RECORD_MAC


@pytest.mark.parametrize("suite", ["TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA"])
def test_replayed_and_truncated_records(make_configs, client_key, server_key, suite):
    p = _established(make_configs, client_key, server_key, suite)
    p.c.send_application_data(b"once")
    first = p.c2s()
    p.run()
    assert [e.data for e in p.of(ApplicationData, "s")] == [b"once"]
    p._answer(p.s, None, p.s.receive_data(first), p.sev)  # the same record again
    assert alert_sent(p, "s") == C.BAD_RECORD_MAC
    q = _established(make_configs, client_key, server_key, suite)
    q._answer(q.s, None, q.s.receive_data(record(C.APPLICATION_DATA, bytes(10))), q.sev)
    assert alert_sent(q, "s") == C.BAD_RECORD_MAC


@pytest.mark.parametrize(
    "key_fixture,cert_attr,flip",
    [("client_key", "client_cert", 5),  # RSA: a byte of the signature value
     ("client_ec_key", "client_ec_cert", -1)],  # ECDSA: the last byte of s, DER stays valid
    ids=["rsa", "ecdsa"],
)
def test_bad_certificate_verify_signature(make_configs, server_key, epki, request, key_fixture, cert_attr, flip):
    class BadSigner(ClientConnection):
        def _on_certificate_verify_signed(self, op, signature):
            sig = bytearray(signature)
            sig[flip] ^= 1
            ClientConnection._on_certificate_verify_signed(self, op, bytes(sig))

    cc, sc = make_configs(None, "require", getattr(epki, cert_attr))
    p = Pair(cc, sc, request.getfixturevalue(key_fixture), server_key, client_cls=BadSigner)
    p.handshake()
    assert alert_sent(p, "s") == C.DECRYPT_ERROR
    assert "CertificateVerify" in p.closed("s").reason


def test_renegotiation_may_not_drop_extended_master_secret(make_configs, client_key, server_key):
    cc, sc = make_configs()
    p = Pair(cc, sc, client_key, server_key)
    p.handshake()
    assert p.completed("s")[0].extended_master_secret
    p.c.config.extended_master_secret = False
    p.c.renegotiate()
    p.run()
    assert alert_sent(p, "s") == C.HANDSHAKE_FAILURE
    assert "extended_master_secret" in p.closed("s").reason


def test_change_cipher_spec_after_finished_and_data_after_close(make_configs, client_key, server_key):
    p = _established(make_configs, client_key, server_key)
    p.c._write_record(C.CHANGE_CIPHER_SPEC, b"\x01")
    p.c2s()
    assert alert_sent(p, "s") == C.UNEXPECTED_MESSAGE
    q = _established(make_configs, client_key, server_key)
    q.c.close()
    q.c2s()
    assert q.closed("s").clean and q.s.closed
    assert q.s.receive_data(record(C.APPLICATION_DATA, b"late")) == []


def test_renegotiations_are_capped(make_configs, client_key, server_key):
    cc, sc = make_configs("TLS_RSA_WITH_AES_128_GCM_SHA256")
    sc.max_renegotiations = 2
    p = Pair(cc, sc, client_key, server_key)
    p.handshake()
    for _ in range(2):
        p.c.renegotiate()
        p.run()
    assert p.s.renegotiation_count == 2
    p.c.renegotiate()
    p.run()
    assert [e.accepted for e in p.of(RenegotiationRequested, "s")] == [True, True, False]
    assert [a.name for a in p.of(AlertReceived, "c")] == ["no_renegotiation"]
    assert not p.s.closed and not p.c.closed and p.s.renegotiation_count == 2


# --- CertificateVerify from the running hash (TLSConfig.sign_digest, the board's way) --


@pytest.mark.parametrize("ems", [True, False])
@pytest.mark.parametrize("suite", SUITES)
def test_client_signs_certificate_verify_digest_without_keeping_the_transcript(
    make_configs, client_key, server_key, epki, suite, ems
):
    cc, sc = make_configs(suite, "require", epki.client_cert)
    cc.sign_digest = True
    cc.extended_master_secret = sc.extended_master_secret = ems
    p = Pair(cc, sc, client_key, server_key)
    p.start()
    assert p.c.transcript.data is not None  # before the suite fixes the hash
    p.c2s()
    p.s2c()
    assert p.c.transcript.data is None  # from ServerHello on: running hashes only
    p.run()
    (c_done,), (s_done,) = p.completed("c"), p.completed("s")  # the server checked it
    assert c_done.extended_master_secret is ems and s_done.peer_subject
    (req,) = p.of(KeyOperationRequest, "c")
    prf_hash = next(s for s in suites.ALL if s.name == suite).prf_hash
    assert (req.kind, req.scheme, req.hash_name) == ("sign_digest", "rsa_pkcs1_" + prf_hash, prf_hash)
    assert len(req.data) == {"sha256": 32, "sha384": 48}[prf_hash]
    # and again in a renegotiation
    p.c.renegotiate()
    p.run()
    assert len(p.completed("s")) == 2
    assert [r.kind for r in p.of(KeyOperationRequest, "c")] == ["sign_digest"] * 2


def test_sign_digest_takes_only_the_prf_hash(make_configs, client_key, server_key, epki, monkeypatch):
    # a server that asks for SHA-384 signatures only: a client that signs the running
    # SHA-256 hash has no scheme to offer, and says so
    import tlscore.server

    monkeypatch.setattr(tlscore.server, "SERVER_SIGNATURE_SCHEMES", (C.RSA_PKCS1_SHA384,))
    cc, sc = make_configs("TLS_RSA_WITH_AES_128_GCM_SHA256", "require", epki.client_cert)
    cc.sign_digest = True
    p = Pair(cc, sc, client_key, server_key)
    p.handshake()
    assert alert_sent(p, "c") == C.HANDSHAKE_FAILURE
    assert "no signature algorithm in common" in p.closed("c").reason
    # the same server, with a client that signs messages: SHA-384 it is
    cc, sc = make_configs("TLS_RSA_WITH_AES_128_GCM_SHA256", "require", epki.client_cert)
    p = Pair(cc, sc, client_key, server_key)
    p.handshake()
    assert p.of(KeyOperationRequest, "c")[0].scheme == "rsa_pkcs1_sha384"
