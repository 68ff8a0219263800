"""The record layer and the ClientHello at their edges, against `hsmtls serve`.

Each case talks to the server over a raw socket. Where a whole handshake must
complete, the client is our own engine (tlscore's ClientConnection) with its
ClientHello reshaped before it is framed, so the transcript still matches, and its
records cut as the case needs on the wire: the server sees exactly the bytes a
hostile or unusual client would send. Refusals check the exact plaintext alert.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct

import pytest
from test_malformed_records import (
    ALERT,
    CHANGE_CIPHER_SPEC,
    DECODE_ERROR,
    HANDSHAKE,
    PROTOCOL_VERSION,
    SERVER_HELLO,
    UNEXPECTED_MESSAGE,
    client_hello,
    client_hello_body,
    connect,
    extension,
    good_handshake,
    handshake,
    read_record,
    record,
    send_and_expect_alert,
    vector,
)

from hsmtls.backend import BACKEND
from hsmtls.tlsconfig import client_config
from tlscore import pkcs1
from tlscore.client import ClientConnection
from tlscore.constants import CLIENT_HELLO
from tlscore.events import ApplicationData, ConnectionClosed, HandshakeComplete

from support.openssl_tools import ONE_WORKER

pytestmark = pytest.mark.interop

EXT_PADDING = 21  # RFC 7685
EXT_SUPPORTED_VERSIONS = 43  # RFC 8446 §4.2.1
EXT_KEY_SHARE = 51
X25519 = 0x001D
TLS13_SUITES = (0x1301, 0x1302, 0x1303)


@pytest.fixture
def server(pki, hsmtls_server_pool):
    # as in test_malformed_records: one server for the module, which still serves a
    # normal client after each case
    srv = hsmtls_server_pool.get(pki.server_cert, pki.server_key, extra=ONE_WORKER)
    srv.pki = pki
    yield srv
    good_handshake(srv)


# -- a real handshake with a reshaped ClientHello -------------------------------------------


def split_records(data: bytes, size: int) -> bytes:
    """Every record of data re-cut into records of at most `size` bytes (plaintext
    records only: the handshake's first flight)."""
    out, pos = [], 0
    while pos < len(data):
        ctype, n = data[pos], int.from_bytes(data[pos + 3 : pos + 5], "big")
        body = data[pos + 5 : pos + 5 + n]
        out += [record(ctype, body[i : i + size]) for i in range(0, n, size)]
        pos += 5 + n
    return b"".join(out)


class ShapedClient(ClientConnection):
    """Our client engine, whose ClientHello `reshape(msg)` may change before it is sent."""

    reshape = staticmethod(lambda msg: None)

    def _send_handshake(self, msg):
        if msg.msg_type == CLIENT_HELLO:
            self.reshape(msg)
        ClientConnection._send_handshake(self, msg)


class VersionedPremaster:
    """config.prepared_premaster: an RSA premaster that carries `version`, as the
    client_version of the ClientHello it follows must be (RFC 5246 §7.4.7.1)."""

    def __init__(self, version: int) -> None:
        self.version = version

    def take(self, n: int, e: int) -> tuple[bytes, bytes]:
        pms = self.version.to_bytes(2, "big") + os.urandom(46)
        return pms, pkcs1.encrypt(BACKEND, n, e, pms)


def engine_handshake(server, reshape=lambda msg: None, cut=None, payloads=(b"ping",),
                     ciphers=None, premaster_version=None, max_fragment=None, cls=None):
    """Handshake with `hsmtls serve`, the first flight cut by `cut(bytes)`, then send
    each of payloads as one application data record; -> (the application data that came
    back, in how many records): the server echoes."""
    cfg = client_config(str(server.pki.ca_cert), "localhost", ciphers=ciphers)
    if premaster_version is not None:
        cfg.prepared_premaster = VersionedPremaster(premaster_version)
    conn = (cls or ShapedClient)(cfg, BACKEND)
    if max_fragment is not None:  # every record we send, encrypted ones too
        conn.records.max_fragment = max_fragment
    conn.reshape = reshape
    conn.initiate()
    echoed = b""
    with connect(server) as sock:
        sock.sendall(cut(conn.data_to_send()) if cut else conn.data_to_send())
        done = False
        while not done:
            data = sock.recv(65536)
            assert data, f"server closed in state {conn.state}"
            for ev in conn.receive_data(data):
                assert not isinstance(ev, ConnectionClosed), ev
                done = done or isinstance(ev, HandshakeComplete)
            sock.sendall(conn.data_to_send())
        for p in payloads:
            conn.send_application_data(p)
        sock.sendall(conn.data_to_send())
        want = b"".join(payloads)
        while len(echoed) < len(want):
            data = sock.recv(65536)
            assert data, "server closed instead of echoing"
            for ev in conn.receive_data(data):
                assert not isinstance(ev, ConnectionClosed), ev
                if isinstance(ev, ApplicationData):
                    echoed += ev.data
    return echoed, conn.records.read_seq - 1  # records after the server's Finished


# -- 1. zero-length records (RFC 5246 §6.2.1) ---------------------------------------------


def test_zero_length_application_data_is_ignored(server):
    # empty records before, between and after data: the echo is the data, unchanged,
    # and the server answers each empty record with nothing
    got = engine_handshake(server, payloads=(b"", b"a", b"", b"", b"b", b""))
    assert got == (b"ab", 2)


@pytest.mark.parametrize("content_type", [HANDSHAKE, ALERT, CHANGE_CIPHER_SPEC])
def test_zero_length_other_records_are_refused(server, content_type):
    # "Implementations MUST NOT send zero-length fragments of Handshake, Alert, or
    # ChangeCipherSpec content types."
    send_and_expect_alert(server, record(content_type, b""), UNEXPECTED_MESSAGE)


class EmptyBeforeFinished(ShapedClient):
    """Sends an empty encrypted handshake record right before its Finished."""

    def _send_finished(self):
        self._flush_handshake()
        self.records.write(HANDSHAKE, b"", self.out)
        ShapedClient._send_finished(self)


def test_zero_length_encrypted_handshake_record_is_refused(server):
    # the rule is about the plaintext: an empty handshake fragment under AES-GCM is
    # 24 bytes on the wire
    with pytest.raises(AssertionError, match="alert=10,"):
        engine_handshake(server, cls=EmptyBeforeFinished)


@pytest.mark.parametrize("body", [b"\x02", b"\x01\x01", b"\x00"], ids=["two", "long", "zero"])
def test_change_cipher_spec_not_one_byte_1(server, body):
    send_and_expect_alert(
        server, record(HANDSHAKE, client_hello()) + record(CHANGE_CIPHER_SPEC, body),
        UNEXPECTED_MESSAGE, flight_first=True,
    )


# -- 2. handshake messages over many records, and many in one -----------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_first_flight_in_tiny_records(server, size):
    # ClientHello, then ClientKeyExchange, in records of `size` bytes (the client's
    # ChangeCipherSpec is one byte anyway, and its Finished is encrypted: one record)
    assert engine_handshake(server, cut=lambda b: split_records(b, size))[0] == b"ping"


@pytest.mark.parametrize("size", [1, 2, 5])
def test_whole_handshake_in_tiny_records(server, size):
    # the encrypted Finished too, and the application data
    got = engine_handshake(server, max_fragment=size, ciphers=["TLS_RSA_WITH_AES_128_CBC_SHA"])
    assert got[0] == b"ping"


def test_client_hello_one_byte_per_record_in_one_segment(server):
    with connect(server) as sock:
        sock.sendall(split_records(record(HANDSHAKE, client_hello()), 1))
        got = read_record(sock)
        assert got is not None and got[0][0] == HANDSHAKE and got[1][0] == SERVER_HELLO


def test_two_client_hellos_in_one_record(server):
    # two messages in one record: the second ClientHello is not expected there
    send_and_expect_alert(
        server, record(HANDSHAKE, client_hello() + client_hello()), UNEXPECTED_MESSAGE,
        flight_first=True,
    )


# -- 3. client_version above TLS 1.2 (RFC 5246 Appendix E.1) -------------------------------


@pytest.mark.parametrize("suite", ["TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"])
@pytest.mark.parametrize("version", [0x0304, 0x0401, 0xFEFE])
def test_higher_client_version_negotiates_tls12(server, version, suite):
    def reshape(msg):
        msg.client_version = version

    # an RSA premaster carries the hello's client_version, not the one negotiated
    got = engine_handshake(server, reshape, ciphers=[suite], premaster_version=version)
    assert got[0] == b"ping"


# -- 4. very large ClientHellos -----------------------------------------------------------


def _padding(msg):
    # a padding extension that fills the extensions block to about 2^16 bytes
    msg.extensions.insert(0, (EXT_PADDING, bytes(65280)))


def _many_extensions(msg):
    # unassigned extension types, each empty: 4 bytes apiece
    msg.extensions[:0] = [(0x4000 + i, b"") for i in range(4000)]


def _many_suites(msg):
    # 8,192 cipher suites, ours among them
    msg.cipher_suites[:0] = [0xFF00 - i for i in range(8192 - len(msg.cipher_suites))]


LARGE = {"padding-65280": _padding, "4000-extensions": _many_extensions, "8192-suites": _many_suites}


@pytest.mark.parametrize("shape", LARGE, ids=list(LARGE))
def test_large_client_hello_completes(server, shape):
    assert engine_handshake(server, LARGE[shape])[0] == b"ping"


def test_large_client_hello_one_byte_per_record(server):
    # 65,280 bytes of padding, one byte per record: about 400 KB on the wire
    got = engine_handshake(server, _padding, cut=lambda b: split_records(b, 1))
    assert got[0] == b"ping"


def test_client_hello_over_2_16_bytes_completes(server):
    # both a maximal extensions block and many cipher suites: the message is past 2^16
    def reshape(msg):
        _many_suites(msg)
        _padding(msg)

    assert engine_handshake(server, reshape)[0] == b"ping"


def _bad_extensions():
    pad = extension(EXT_PADDING, bytes(65000))
    yield "padding-runs-past-block", struct.pack("!HH", EXT_PADDING, 65000) + bytes(64999)
    yield "padding-then-truncated-header", pad + b"\x00"
    yield "block-shorter-than-claimed", None


@pytest.mark.parametrize("name", [n for n, _ in _bad_extensions()])
def test_malformed_large_extensions_get_decode_error(server, name):
    ext = dict(_bad_extensions())[name]
    if ext is None:
        body = client_hello_body(extensions=extension(EXT_PADDING, bytes(65000)))
        body = body[:-10]  # the extensions block claims 10 bytes more than follow
        hello = handshake(1, body)
    else:
        hello = client_hello(extensions=ext)
    wire = b"".join(record(HANDSHAKE, hello[i : i + 2**14]) for i in range(0, len(hello), 2**14))
    send_and_expect_alert(server, wire, DECODE_ERROR)


# -- 5. TLS 1.3-capable clients -----------------------------------------------------------


def _tls13_capable(versions):
    def reshape(msg):
        msg.cipher_suites[:0] = list(TLS13_SUITES)
        msg.extensions.append(
            (EXT_SUPPORTED_VERSIONS, vector(1, b"".join(struct.pack("!H", v) for v in versions)))
        )
        msg.extensions.append((EXT_KEY_SHARE, vector(2, struct.pack("!HH", X25519, 32) + bytes(32))))

    return reshape


def test_tls13_capable_client_hello_negotiates_tls12(server):
    assert engine_handshake(server, _tls13_capable((0x0304, 0x0303)))[0] == b"ping"


def test_supported_versions_without_tls12_gets_protocol_version(server):
    exts = (
        extension(EXT_SUPPORTED_VERSIONS, vector(1, b"\x03\x04"))
        + extension(EXT_KEY_SHARE, vector(2, struct.pack("!HH", X25519, 32) + bytes(32)))
    )
    hello = client_hello(extensions=exts, suites=TLS13_SUITES + (0x009C,))
    send_and_expect_alert(server, record(HANDSHAKE, hello), PROTOCOL_VERSION)


@pytest.mark.parametrize("body", [b"\x03\x03\x03", b"\x00", b"\x02\x03\x03\x00"],
                         ids=["odd-length", "empty", "trailing-byte"])
def test_malformed_supported_versions_gets_decode_error(server, body):
    hello = client_hello(extensions=extension(EXT_SUPPORTED_VERSIONS, body))
    send_and_expect_alert(server, record(HANDSHAKE, hello), DECODE_ERROR)


def test_python_default_context_gets_tls12(server):
    ctx = ssl.create_default_context(cafile=str(server.pki.ca_cert))  # offers TLS 1.3
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() == "TLSv1.2"
            tls.sendall(b"hello 1.3 client\n")
            assert tls.recv(100) == b"hello 1.3 client\n"

