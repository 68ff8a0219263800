"""Malformed and hostile first flights, sent to `hsmtls serve` over a raw socket.

Each case checks the exact fatal alert the server sends in plaintext (a record
`15 03 03 00 02 02 <AlertDescription>`), that it then closes the connection, and that
the same server process then completes a normal handshake (mbedTLS ssl-opt.sh style:
"error, then operate correctly"). The ClientHellos are built by hand with struct so
every length can be made to lie; a good one offers TLS_RSA_WITH_AES_128_GCM_SHA256
(0x009C) and the renegotiation SCSV, with the extended_master_secret and
signature_algorithms (rsa_pkcs1_sha256) extensions.

A bad Finished and a flipped MAC bit need the key exchange done by hand; they are
tested at the engine level, not here.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct

import pytest

from support.openssl_tools import ONE_WORKER

pytestmark = pytest.mark.interop

# ContentType and HandshakeType (RFC 5246 §6.2.1, §7.4)
CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA = 20, 21, 22, 23
CLIENT_HELLO, SERVER_HELLO, CLIENT_KEY_EXCHANGE, FINISHED = 1, 2, 16, 20
# AlertDescription
UNEXPECTED_MESSAGE = 10
RECORD_OVERFLOW = 22
HANDSHAKE_FAILURE = 40
DECODE_ERROR = 50
PROTOCOL_VERSION = 70

TLS_RSA_WITH_AES_128_GCM_SHA256 = 0x009C
TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF
EXT_SIGNATURE_ALGORITHMS = 0x000D
EXT_EXTENDED_MASTER_SECRET = 0x0017
RSA_PKCS1_SHA256 = 0x0401

MAX_CIPHERTEXT = 2**14 + 2048
SOCKET_TIMEOUT = 5.0


# -- building -----------------------------------------------------------------------------


def record(content_type: int, fragment: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", content_type, version, len(fragment)) + fragment


def handshake(msg_type: int, body: bytes) -> bytes:
    return struct.pack("!B", msg_type) + len(body).to_bytes(3, "big") + body


def vector(length_bytes: int, data: bytes) -> bytes:
    return len(data).to_bytes(length_bytes, "big") + data


def extension(ext_type: int, data: bytes) -> bytes:
    return struct.pack("!H", ext_type) + vector(2, data)


DEFAULT_EXTENSIONS = extension(EXT_EXTENDED_MASTER_SECRET, b"") + extension(
    EXT_SIGNATURE_ALGORITHMS, vector(2, struct.pack("!H", RSA_PKCS1_SHA256))
)


def client_hello_body(
    client_version: int = 0x0303,
    suites=(TLS_RSA_WITH_AES_128_GCM_SHA256, TLS_EMPTY_RENEGOTIATION_INFO_SCSV),
    extensions: bytes = DEFAULT_EXTENSIONS,
) -> bytes:
    return (
        struct.pack("!H", client_version)
        + os.urandom(32)  # random
        + vector(1, b"")  # session_id
        + vector(2, b"".join(struct.pack("!H", s) for s in suites))
        + vector(1, b"\x00")  # compression_methods: null
        + vector(2, extensions)
    )


def client_hello(**kwargs) -> bytes:
    """The ClientHello handshake message (header + body), not yet in a record."""
    return handshake(CLIENT_HELLO, client_hello_body(**kwargs))


def fragmented(message: bytes, content_type: int = HANDSHAKE) -> bytes:
    """message split over records of 1, 2, ..., 10, 1, 2, ... bytes."""
    out, i, size = [], 0, 1
    while i < len(message):
        out.append(record(content_type, message[i : i + size]))
        i += size
        size = size % 10 + 1
    return b"".join(out)


# -- reading ------------------------------------------------------------------------------


def recv_exact(sock: socket.socket, n: int) -> bytes | None:
    """n bytes, or None if the peer closed (FIN or RST) first."""
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


def read_record(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """(5-byte header, fragment) of the next record, or None at end of connection."""
    header = recv_exact(sock, 5)
    if header is None:
        return None
    fragment = recv_exact(sock, int.from_bytes(header[3:5], "big"))
    return (header, fragment) if fragment is not None else None


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=SOCKET_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_and_expect_alert(server, data: bytes, alert: int, *, flight_first: bool = False):
    """Send data on a fresh connection; the answer must be the plaintext fatal alert
    `15 03 03 00 02 02 <alert>` followed by the end of the connection. With
    flight_first, handshake records (the server's flight) may come before the alert."""
    with connect(server) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close before it read everything we sent
        got = read_record(sock)
        while flight_first and got is not None and got[0][0] == HANDSHAKE:
            got = read_record(sock)
        assert got is not None, "connection closed without an alert"
        header, fragment = got
        assert header + fragment == bytes([ALERT, 3, 3, 0, 2, 2, alert]), (
            f"expected fatal alert {alert}, got {(header + fragment).hex(' ')}"
        )
        assert closed(sock), "server kept the connection open after a fatal alert"


def good_handshake(server) -> None:
    ctx = ssl.create_default_context(cafile=str(server.pki.ca_cert))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("AES128-GCM-SHA256")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"after the fault\n")
            assert tls.recv(100) == b"after the fault\n"


@pytest.fixture
def server(pki, hsmtls_server_pool):
    # One server process for the module (restarted if a test killed it); each test
    # ends by showing that it still serves a normal client.
    srv = hsmtls_server_pool.get(pki.server_cert, pki.server_key, extra=ONE_WORKER)
    srv.pki = pki
    yield srv
    good_handshake(srv)


# -- the cases ----------------------------------------------------------------------------


def test_builder_sanity(server):
    # The hand-built ClientHello is good: the server answers with a ServerHello (the
    # record version of a first ClientHello is commonly 0x0301; both are accepted).
    for record_version in (0x0303, 0x0301):
        with connect(server) as sock:
            sock.sendall(record(HANDSHAKE, client_hello(), version=record_version))
            got = read_record(sock)
            assert got is not None, "no answer to a valid ClientHello"
            header, fragment = got
            assert header[:3] == bytes([HANDSHAKE, 3, 3]), header.hex(" ")
            assert fragment[0] == SERVER_HELLO, fragment[:4].hex(" ")


@pytest.mark.parametrize("version", [0x0300, 0x0301, 0x0302], ids=["SSLv3", "TLS1.0", "TLS1.1"])
def test_old_protocol_version(server, version):
    hello = client_hello(client_version=version)
    send_and_expect_alert(server, record(HANDSHAKE, hello, version=version), PROTOCOL_VERSION)


def _lying_client_hellos():
    good = client_hello_body()
    fixed = 2 + 32  # client_version + random
    suites_at = fixed + 1  # after the empty session_id
    # cipher_suites claims 256 bytes, 4 follow
    yield "suites-length", good[:suites_at] + b"\x01\x00" + good[suites_at + 2 :]
    # session_id claims 32 bytes and the body ends after 10
    yield "session-id-length", good[:fixed] + b"\x20" + b"\x00" * 10
    # extensions block claims more than is left
    ext_at = len(good) - len(DEFAULT_EXTENSIONS) - 2
    yield "extensions-length", good[:ext_at] + b"\x01\x00" + good[ext_at + 2 :]
    # one extension's length runs past the end of the block
    bad_ext = struct.pack("!HH", EXT_SIGNATURE_ALGORITHMS, 40) + b"\x00\x02\x04\x01"
    yield "extension-length", good[:ext_at] + vector(2, bad_ext)
    # body shorter than the fixed fields
    yield "short-body", good[:20]


@pytest.mark.parametrize(
    "body", [b for _, b in _lying_client_hellos()], ids=[n for n, _ in _lying_client_hellos()]
)
def test_client_hello_with_lying_lengths(server, body):
    # The handshake header's own length is true, so the server has the whole message and
    # must find the inner lie rather than wait for more bytes.
    send_and_expect_alert(server, record(HANDSHAKE, handshake(CLIENT_HELLO, body)), DECODE_ERROR)


def test_unknown_content_type(server):
    send_and_expect_alert(server, record(0x63, b"hello"), UNEXPECTED_MESSAGE)


def test_record_overflow(server):
    too_long = MAX_CIPHERTEXT + 1
    data = struct.pack("!BHH", HANDSHAKE, 0x0303, too_long) + b"\x00" * too_long
    send_and_expect_alert(server, data, RECORD_OVERFLOW)


def test_application_data_before_handshake(server):
    send_and_expect_alert(
        server, record(APPLICATION_DATA, b"GET / HTTP/1.1\r\n"), UNEXPECTED_MESSAGE
    )


def test_change_cipher_spec_before_handshake(server):
    send_and_expect_alert(server, record(CHANGE_CIPHER_SPEC, b"\x01"), UNEXPECTED_MESSAGE)


def test_client_key_exchange_first(server):
    cke = handshake(CLIENT_KEY_EXCHANGE, vector(2, os.urandom(256)))
    send_and_expect_alert(server, record(HANDSHAKE, cke), UNEXPECTED_MESSAGE)


def test_fragmented_client_hello_is_reassembled(server):
    with connect(server) as sock:
        sock.sendall(fragmented(client_hello()))
        got = read_record(sock)
        assert got is not None, "no answer to a fragmented ClientHello"
        header, fragment = got
        assert header[0] == HANDSHAKE and fragment[0] == SERVER_HELLO, (
            f"expected ServerHello, got {(header + fragment[:8]).hex(' ')}"
        )


def test_second_message_in_record_out_of_order(server):
    # ClientHello then Finished in one record: the server may answer the hello with its
    # flight, then must refuse the Finished.
    finished = handshake(FINISHED, os.urandom(12))
    send_and_expect_alert(
        server, record(HANDSHAKE, client_hello() + finished), UNEXPECTED_MESSAGE, flight_first=True
    )


def test_no_common_cipher_suite(server):
    rc4_sha = 0x0005
    hello = client_hello(suites=(rc4_sha, TLS_EMPTY_RENEGOTIATION_INFO_SCSV))
    send_and_expect_alert(server, record(HANDSHAKE, hello), HANDSHAKE_FAILURE)


def test_not_tls_at_all(server):
    # An HTTP request on the TLS port: an alert or a close, but never a hang.
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        try:
            got = read_record(sock)
        except TimeoutError:
            pytest.fail(f"server neither answered nor closed within {SOCKET_TIMEOUT} s")
        if got is not None:
            header, fragment = got
            assert header[0] == ALERT and fragment[0] == 2, (header + fragment).hex(" ")
            assert closed(sock)
