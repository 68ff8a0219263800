"""`hsmtls serve` drops a client that stalls: in the handshake after HANDSHAKE_TIMEOUT,
once established after IDLE_TIMEOUT, saying which state it waited in; a client that
keeps sending is not dropped."""

from __future__ import annotations

import socket
import ssl
import time

import hsmtls.server as server_module
from hsmtls.server import BackgroundServer, TLSServer
from hsmtls.tlsconfig import server_config


def _wait_for(log: list[str], text: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for line in log:
            if text in line:
                return line
        time.sleep(0.02)
    raise AssertionError(f"no {text!r} in {log}")


def test_stalled_handshake_and_idle_connection_are_dropped(epki, server_key, monkeypatch):
    monkeypatch.setattr(server_module, "HANDSHAKE_TIMEOUT", 0.3)
    monkeypatch.setattr(server_module, "IDLE_TIMEOUT", 0.6)
    log: list[str] = []
    with BackgroundServer(TLSServer(server_config(str(epki.server_cert)), server_key, out=log.append)) as bg:
        # a TCP connection that never sends its ClientHello
        with socket.create_connection(("127.0.0.1", bg.port)) as raw:
            line = _wait_for(log, "timed out", 5)
            assert "in state" in line and "HELLO" in line.upper(), line
            raw.settimeout(2)
            assert raw.recv(10) == b""  # closed by the server
        log.clear()
        # an established connection: kept while it talks, dropped once it is idle
        ctx = ssl.create_default_context(cafile=str(epki.ca_cert))
        with socket.create_connection(("127.0.0.1", bg.port)) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            for _ in range(4):  # 0.8 s in all, each gap under the idle timeout
                time.sleep(0.2)
                tls.sendall(b"x")
                assert tls.recv(1) == b"x"
            assert not any("timed out" in s for s in log), log
            _wait_for(log, "timed out", 5)
