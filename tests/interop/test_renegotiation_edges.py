"""Renegotiation as RFC 5746 and RFC 5246 §6.2.1 allow, against `hsmtls serve`:
application data between (and inside) a renegotiation's messages is delivered, an HTTP
request split across a renegotiation is answered once whole, a client without secure
renegotiation that starts one gets a warning and goes on, and per-path client
authentication (mod_ssl's <Location> SSLVerifyClient require) renegotiates for a
certificate, or refuses with handshake_failure."""

from __future__ import annotations

import re
import socket

import pytest
from test_malformed_records import connect

from hsmtls.backend import BACKEND
from hsmtls.keys import FileKey, run_key_operation
from hsmtls.tlsconfig import client_config
from tlscore.client import ClientConnection
from tlscore.constants import (
    APPLICATION_DATA,
    CLIENT_KEY_EXCHANGE,
    EXT_RENEGOTIATION_INFO,
    FINISHED,
    HANDSHAKE,
    HANDSHAKE_FAILURE,
)
from tlscore.events import (
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    HandshakeComplete,
    KeyOperationRequest,
)

from support.openssl_tools import ONE_WORKER, SClient

pytestmark = pytest.mark.interop


class Driver:
    """Our client engine on a socket, pumped by hand: the tests choose what goes out when."""

    def __init__(self, server, conn: ClientConnection, key=None) -> None:
        self.conn, self.key = conn, key
        self.sock = connect(server)
        self.events: list = []
        self.records_in = 0

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def _take(self, events) -> None:
        for ev in events:
            self.events.append(ev)
            if isinstance(ev, KeyOperationRequest):
                self._take(self.conn.key_operation_result(ev.op_id, run_key_operation(self.key, ev)))
            elif isinstance(ev, ApplicationData):
                self.records_in += 1

    def pump_until(self, done, what: str) -> None:
        self.flush()
        while not done():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise AssertionError(f"timed out waiting for {what}; events: {self.events}") from None
            if not data:
                raise AssertionError(f"server closed waiting for {what}; events: {self.events}")
            self._take(self.conn.receive_data(data))
            self.flush()

    def of(self, cls) -> list:
        return [e for e in self.events if isinstance(e, cls)]

    def data(self) -> bytes:
        return b"".join(e.data for e in self.of(ApplicationData))

    def closed(self) -> ConnectionClosed | None:
        found = self.of(ConnectionClosed)
        return found[0] if found else None

    def close(self) -> None:
        self.sock.close()


class Interleaving(ClientConnection):
    """In a renegotiation, writes an application data record before the chosen
    messages (CCS too), and one inside its ClientHello, between two records of it."""

    before: tuple = ()
    inside = False

    def _note(self, what: str) -> None:
        self._flush_handshake()
        self.records.write(APPLICATION_DATA, b"[%s]" % what.encode(), self.out)

    def _send_handshake(self, msg):
        if self.established and msg.msg_type in self.before:
            self._note("before %d" % msg.msg_type)
        ClientConnection._send_handshake(self, msg)

    def _send_change_cipher_spec(self):
        if self.established and "CCS" in self.before:
            self._note("before CCS")
        ClientConnection._send_change_cipher_spec(self)

    def _flush_handshake(self):
        data = self._hs_out
        if self.established and self.inside and len(data) > 8:
            self.inside = False  # once: the renegotiation's ClientHello, cut in two
            self._hs_out = bytearray()
            half = len(data) // 2  # inside the first message of the flight
            self.records.write(HANDSHAKE, bytes(data[:half]), self.out)
            self.records.write(APPLICATION_DATA, b"[inside]", self.out)
            self.records.write(HANDSHAKE, bytes(data[half:]), self.out)
            return
        ClientConnection._flush_handshake(self)


@pytest.fixture
def echo(pki, hsmtls_server_pool):
    srv = hsmtls_server_pool.get(pki.server_cert, pki.server_key, extra=ONE_WORKER)
    srv.pki = pki
    return srv


@pytest.mark.parametrize("before,inside,expected", [
    ((CLIENT_KEY_EXCHANGE,), False, b"[before 16]"),
    (("CCS",), False, b"[before CCS]"),
    ((FINISHED,), False, b"[before 20]"),
    ((), True, b"[inside]"),
    ((CLIENT_KEY_EXCHANGE, "CCS", FINISHED), True, b"[inside][before 16][before CCS][before 20]"),
], ids=["before-cke", "before-ccs", "before-finished", "inside-a-message", "all"])
def test_application_data_inside_a_renegotiation_is_delivered(echo, before, inside, expected):
    conn = Interleaving(client_config(str(echo.pki.ca_cert), "localhost"), BACKEND)
    conn.before, conn.inside = before, inside
    d = Driver(echo, conn)
    try:
        conn.initiate()
        d.pump_until(lambda: d.of(HandshakeComplete), "the handshake")
        conn.send_application_data(b"hello")
        d.pump_until(lambda: d.data() == b"hello", "the echo")
        conn.renegotiate()
        d.pump_until(lambda: len(d.of(HandshakeComplete)) == 2, "the renegotiation")
        conn.send_application_data(b"bye")
        want = b"hello" + expected + b"bye"
        d.pump_until(lambda: d.data() == want or d.closed(), "the echo of everything")
        assert d.data() == want and d.closed() is None, d.events
    finally:
        d.close()


@pytest.fixture
def http(pki, hsmtls_server):
    srv = hsmtls_server(pki.server_cert, pki.server_key, app="http", client_ca=pki.ca_cert,
                        extra=[*ONE_WORKER, "--client-auth-path", "/secure"])
    srv.pki = pki
    return srv


def _http_client(srv, cert: bool = True, **settings) -> tuple[Driver, ClientConnection]:
    pki = srv.pki
    cfg = client_config(str(pki.ca_cert), "localhost", str(pki.client_cert) if cert else None)
    for k, v in settings.items():
        setattr(cfg, k, v)
    conn = ClientConnection(cfg, BACKEND)
    return Driver(srv, conn, FileKey(str(pki.client_key), signing_only=True) if cert else None), conn


def test_http_request_split_across_a_renegotiation_is_answered_whole(http):
    d, conn = _http_client(http)
    try:
        conn.initiate()
        d.pump_until(lambda: d.of(HandshakeComplete), "the handshake")
        conn.send_application_data(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        conn.renegotiate()
        d.pump_until(lambda: len(d.of(HandshakeComplete)) == 2, "the renegotiation")
        conn.send_application_data(b"\r\n")
        d.pump_until(lambda: d.closed(), "the answer and close_notify")
        assert d.data().startswith(b"HTTP/1.1 200 OK") and b"path: /\n" in d.data(), d.data()
        assert d.records_in == 1  # one record: the response was sent once whole
    finally:
        d.close()


def test_path_needs_a_certificate_and_gets_it_by_renegotiation(http):
    d, conn = _http_client(http)
    try:
        conn.initiate()
        d.pump_until(lambda: d.of(HandshakeComplete), "the handshake")
        assert not d.of(HandshakeComplete)[0].client_certificate_requested  # none asked at first
        conn.send_application_data(b"GET / HTTP/1.1\r\n\r\n")
        d.pump_until(lambda: d.closed(), "the answer")
        assert b"client: -\n" in d.data() and len(d.of(HandshakeComplete)) == 1
    finally:
        d.close()
    d, conn = _http_client(http)
    try:
        conn.initiate()
        d.pump_until(lambda: d.of(HandshakeComplete), "the handshake")
        conn.send_application_data(b"GET /secure/page HTTP/1.1\r\n\r\n")
        d.pump_until(lambda: d.closed(), "the answer")
        first, second = d.of(HandshakeComplete)
        assert second.renegotiation and second.client_certificate_requested
        assert b"client: CN=hsmtls test client\n" in d.data() and b"path: /secure/page\n" in d.data(), d.data()
    finally:
        d.close()
    assert http.wait_log("renegotiation complete:").endswith("client=CN=hsmtls test client")


def test_openssl_s_client_gets_the_path_with_its_certificate(http):
    pki = http.pki
    with SClient(http.port, ca=pki.ca_cert, cert=pki.client_cert, key=pki.client_key, extra=["-crlf"]) as c:
        c.send_line("GET /secure HTTP/1.1")
        c.send_line("")
        c.wait_for(re.compile(r"^client: CN=hsmtls test client$", re.M), 15)


def test_path_without_a_certificate_is_handshake_failure(http):
    d, conn = _http_client(http, cert=False)
    try:
        conn.initiate()
        d.pump_until(lambda: d.of(HandshakeComplete), "the handshake")
        conn.send_application_data(b"GET /secure HTTP/1.1\r\n\r\n")
        d.pump_until(lambda: d.closed(), "the refusal")
        assert [a.name for a in d.of(AlertReceived)] == ["handshake_failure"]
    finally:
        d.close()


def test_path_for_a_client_that_refuses_to_renegotiate_is_handshake_failure(http):
    d, conn = _http_client(http, allow_renegotiation=False)
    try:
        conn.initiate()
        d.pump_until(lambda: d.of(HandshakeComplete), "the handshake")
        conn.send_application_data(b"GET /secure HTTP/1.1\r\n\r\n")
        d.pump_until(lambda: d.closed(), "the refusal")
        assert d.closed().alert == HANDSHAKE_FAILURE and not d.closed().local, d.events
    finally:
        d.close()


class NoRenegotiationInfo(ClientConnection):
    """A client without RFC 5746: no renegotiation_info, no SCSV."""

    def _send_handshake(self, msg):
        if hasattr(msg, "extensions") and hasattr(msg, "cipher_suites"):
            msg.extensions = [(t, v) for t, v in msg.extensions if t != EXT_RENEGOTIATION_INFO]
        ClientConnection._send_handshake(self, msg)


def _insecure_client(srv) -> tuple[Driver, ClientConnection]:
    conn = NoRenegotiationInfo(client_config(str(srv.pki.ca_cert), "localhost"), BACKEND)
    return Driver(srv, conn), conn


def test_path_for_a_client_without_secure_renegotiation_is_handshake_failure(http):
    d, conn = _insecure_client(http)
    try:
        conn.initiate()
        d.pump_until(lambda: d.of(HandshakeComplete), "the handshake")
        assert not d.of(HandshakeComplete)[0].secure_renegotiation
        conn.send_application_data(b"GET /secure HTTP/1.1\r\n\r\n")
        d.pump_until(lambda: d.closed(), "the refusal")
        assert d.closed().alert == HANDSHAKE_FAILURE, d.events
    finally:
        d.close()


def test_insecure_client_renegotiating_gets_a_warning_and_goes_on(echo):
    d, conn = _insecure_client(echo)
    try:
        conn.initiate()
        d.pump_until(lambda: d.of(HandshakeComplete), "the handshake")
        conn.secure_renegotiation = True  # it starts one anyway (what an old client does)
        conn.renegotiate()
        d.pump_until(lambda: d.of(AlertReceived), "the server's answer")
        assert [(a.level, a.name) for a in d.of(AlertReceived)] == [(1, "no_renegotiation")]
        conn.send_application_data(b"still here")
        d.pump_until(lambda: d.data() == b"still here" or d.closed(), "the echo")
        assert d.data() == b"still here" and d.closed() is None
    finally:
        d.close()
