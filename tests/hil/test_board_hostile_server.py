"""The board against a hostile or broken TLS server, over the real link and bridge:
whatever the server sends after the board's ClientHello (noise, an oversized record, an
SSL 3.0 ServerHello, a handshake message longer than any it would take, an alert, a
flight that stops half-way, a hang-up), the board ends the session promptly with the
alert the RFC names and a reason, sends nothing after its fatal alert, and serves the
next handshake as if nothing had happened."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from hsmtls.board.bridge import handshake_once

from support.hil import requires_board

pytestmark = [pytest.mark.micropython, requires_board]


def _record(ctype: int, body: bytes, version: bytes = b"\x03\x03") -> bytes:
    return bytes([ctype]) + version + len(body).to_bytes(2, "big") + body


def _server_hello(version: bytes = b"\x03\x03", mfl: bool = False) -> bytes:
    # ServerHello: version, random, empty session id, TLS_RSA_WITH_AES_128_GCM_SHA256, null
    # compression, renegotiation_info and extended_master_secret (as the board asked),
    # and with mfl the board's max_fragment_length (2^11) accepted
    ext = b"\xff\x01\x00\x01\x00" + b"\x00\x17\x00\x00" + (b"\x00\x01\x00\x01\x03" if mfl else b"")
    body = version + bytes(32) + b"\x00" + b"\x00\x9c" + b"\x00" + len(ext).to_bytes(2, "big") + ext
    return b"\x02" + len(body).to_bytes(3, "big") + body


class HostileServer:
    """Accepts one connection, reads the ClientHello, sends `reply`, then either closes
    or (hold=True) keeps the connection open and silent; records what the board sent
    after the reply."""

    def __init__(self, reply: bytes, hold: bool = False) -> None:
        self.reply, self.hold = reply, hold
        self.after = b""
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        c, _ = self.sock.accept()
        with c:
            c.settimeout(10)
            try:
                hello = b""  # the whole ClientHello record, however the link cut it (a
                while len(hello) < 5 or len(hello) < 5 + int.from_bytes(hello[3:5], "big"):
                    got = c.recv(4096)  # session ticket makes it span link frames)
                    if not got:
                        return
                    hello += got
                c.sendall(self.reply)
                if not self.hold:
                    return
                while True:
                    got = c.recv(4096)
                    if not got:
                        return
                    self.after += got
            except OSError:
                return

    def close(self) -> None:
        self.thread.join(15)
        self.sock.close()


def run(tty, port, **opts):
    opts.setdefault("server_name", "localhost")
    t = time.monotonic()
    r = handshake_once(tty, ("127.0.0.1", port), opts, timeout=60)
    r["host_s"] = time.monotonic() - t
    print("board result:", {k: r.get(k) for k in ("ok", "reason", "host_s")})
    return r


CASES = {
    # what the server sends -> the alert the board must send (RFC 5246 §7.2.2, RFC 6066)
    "noise": (b"\x99" + bytes(range(200)), "unexpected_message"),
    "record longer than 2^14+2048": (b"\x16\x03\x03\x48\x01" + bytes(64), "record_overflow"),
    "record over the negotiated max_fragment_length": (
        _record(22, _server_hello(mfl=True)) + _record(22, b"\x0b\x00\x08\x01" + bytes(2045)), "record_overflow"),
    "ssl3 server hello": (_record(22, _server_hello(b"\x03\x00")), "protocol_version"),
    # (as OpenSSL answers an excessive message length)
    "handshake message over any limit": (_record(22, b"\x0b\xff\xff\xff" + bytes(100)), "illegal_parameter"),
    "server hello in an alert record": (_record(21, _server_hello()), "decode_error"),
    "application data before the handshake": (_record(23, b"hello"), "unexpected_message"),
}


ALERTS = {"unexpected_message": 10, "record_overflow": 22, "illegal_parameter": 47, "decode_error": 50,
          "protocol_version": 70}


@pytest.mark.parametrize("case", list(CASES))
def test_board_alerts_a_broken_server_and_goes_on(board_tty, servers, case):
    reply, alert = CASES[case]
    srv = HostileServer(reply, hold=True)
    try:
        r = run(board_tty, srv.port)
    finally:
        srv.close()
    assert not r["ok"], r
    assert r["reason"].startswith(f"board sent alert {alert}"), r["reason"]
    assert r["host_s"] < 10, r  # promptly: not a session timeout
    # after its fatal alert the board sent nothing but that alert (7 bytes, in clear)
    assert srv.after == bytes([21, 3, 3, 0, 2, 2]) + bytes([ALERTS[alert]]), srv.after.hex()
    r = run(board_tty, servers.hsmtls())
    assert r["ok"], r


def test_board_reports_a_server_alert(board_tty, servers):
    srv = HostileServer(_record(21, b"\x02\x28"))  # fatal handshake_failure
    try:
        r = run(board_tty, srv.port)
    finally:
        srv.close()
    assert not r["ok"] and r["reason"].startswith("server sent alert handshake_failure"), r
    assert run(board_tty, servers.hsmtls())["ok"]


def test_board_times_out_a_server_that_stops_half_way(board_tty, servers):
    srv = HostileServer(_record(22, _server_hello()), hold=True)  # then nothing
    try:
        r = run(board_tty, srv.port, timeout_ms=1500)
    finally:
        srv.close()
    assert not r["ok"] and r["reason"] == "timed out in state WAIT_SERVER_CERTIFICATE", r
    assert r["host_s"] < 10, r
    assert run(board_tty, servers.hsmtls())["ok"]


def test_board_reports_a_hang_up_mid_flight(board_tty, servers):
    srv = HostileServer(_record(22, _server_hello())[:20])  # part of a record, then close
    try:
        r = run(board_tty, srv.port)
    finally:
        srv.close()
    assert not r["ok"] and "server closed the TCP connection" in r["reason"], r
    assert run(board_tty, servers.hsmtls())["ok"]


def test_board_reports_a_server_it_cannot_reach(board_tty, servers):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    for engine in ("hsmtls", "mbedtls"):
        r = run(board_tty, port, engine=engine)
        assert not r["ok"] and r["reason"].startswith("no TCP connection to the server ("), r
        assert "refused" in r["reason"].lower() and r["host_s"] < 10, r
    assert run(board_tty, servers.hsmtls())["ok"]
