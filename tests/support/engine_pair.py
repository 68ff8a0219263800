"""A client and a server engine wired back to back in memory, for engine tests."""

from __future__ import annotations

from collections.abc import Callable

from hsmtls.backend import BACKEND
from hsmtls.keys import FileKey, run_key_operation
from tlscore.client import ClientConnection
from tlscore.config import TLSConfig
from tlscore.events import ConnectionClosed, HandshakeComplete, KeyOperationRequest
from tlscore.server import ServerConnection

Transform = Callable[[bytes], bytes]


def records(data: bytes) -> list[tuple[int, bytes]]:
    """Split wire bytes into (content_type, fragment) records."""
    out = []
    pos = 0
    while pos < len(data):
        n = int.from_bytes(data[pos + 3 : pos + 5], "big")
        out.append((data[pos], data[pos + 5 : pos + 5 + n]))
        pos += 5 + n
    return out


def record(content_type: int, fragment: bytes, version: int = 0x0303) -> bytes:
    return bytes([content_type]) + version.to_bytes(2, "big") + len(fragment).to_bytes(2, "big") + fragment


class Pair:
    def __init__(
        self,
        client_config: TLSConfig,
        server_config: TLSConfig,
        client_key: FileKey | None = None,
        server_key: FileKey | None = None,
        client_cls: type = ClientConnection,
        server_cls: type = ServerConnection,
        sessions: object = None,
    ) -> None:
        self.c = client_cls(client_config, BACKEND)
        self.s = server_cls(server_config, BACKEND)
        self.client_key = client_key
        self.server_key = server_key
        self.sessions = sessions  # the server's hsmtls.sessions.SessionStore
        self.cev: list = []
        self.sev: list = []
        self.wire_c2s: list[bytes] = []
        self.wire_s2c: list[bytes] = []

    def _answer(self, conn, key, events, sink) -> None:
        for ev in events:
            sink.append(ev)
            if isinstance(ev, KeyOperationRequest) and (key is not None or self.sessions is not None):
                result = run_key_operation(key, ev, self.sessions if conn is self.s else None)
                self._answer(conn, key, conn.key_operation_result(ev.op_id, result), sink)

    def start(self) -> None:
        self.c.initiate()
        self._answer(self.c, self.client_key, self.c.next_events(), self.cev)

    def c2s(self, transform: Transform | None = None) -> bytes:
        data = self.c.data_to_send()
        if transform is not None:
            data = transform(data)
        if data:
            self.wire_c2s.append(data)
            self._answer(self.s, self.server_key, self.s.receive_data(data), self.sev)
        return data

    def s2c(self, transform: Transform | None = None) -> bytes:
        data = self.s.data_to_send()
        if transform is not None:
            data = transform(data)
        if data:
            self.wire_s2c.append(data)
            self._answer(self.c, self.client_key, self.c.receive_data(data), self.cev)
        return data

    def run(self, rounds: int = 12) -> None:
        for _ in range(rounds):
            a = self.c2s()
            b = self.s2c()
            if not a and not b:
                return

    def handshake(self) -> None:
        self.start()
        self.run()

    def of(self, cls: type, side: str) -> list:
        return [e for e in (self.cev if side == "c" else self.sev) if isinstance(e, cls)]

    def completed(self, side: str) -> list[HandshakeComplete]:
        return self.of(HandshakeComplete, side)

    def closed(self, side: str) -> ConnectionClosed | None:
        found = self.of(ConnectionClosed, side)
        return found[0] if found else None


# --- a bad premaster, as a client that means harm sends it ------------------------------

BAD_PREMASTER_KINDS = ("bad-padding", "short", "long", "wrong-version", "wrong-key", "zero", "above-n")


def bad_premaster_ciphertext(kind: str, n: int, e: int, k: int, premaster: bytes) -> bytes:
    """A ClientKeyExchange ciphertext that must lead to a substitute premaster: a badly
    padded or wrong-sized message, a wrong version, another key, or no RSA ciphertext."""
    import os

    ps = bytes(b or 1 for b in os.urandom(k))
    if kind == "zero":
        return bytes(k)
    if kind == "above-n":
        return (n + 1).to_bytes(k, "big")
    if kind == "bad-padding":
        em = b"\x00\x01" + ps[: k - 51] + b"\x00" + premaster
    elif kind == "short":
        em = b"\x00\x02" + ps[: k - 50] + b"\x00" + premaster[:47]
    elif kind == "long":
        em = b"\x00\x02" + ps[: k - 52] + b"\x00" + premaster + b"\x07"
    elif kind == "wrong-version":
        em = b"\x00\x02" + ps[: k - 51] + b"\x00" + b"\x03\x01" + premaster[2:]
    elif kind == "wrong-key":
        n = n - 2  # not the server's modulus: any other key
        em = b"\x00\x02" + ps[: k - 51] + b"\x00" + premaster
    else:
        raise ValueError(kind)
    return pow(int.from_bytes(em, "big"), e, n).to_bytes(k, "big")


def bad_premaster_alerts(client_config: TLSConfig, server_config: TLSConfig, server_key, kind: str,
                         monkeypatch) -> tuple[bytes, ConnectionClosed | None, list[int]]:
    """Run a handshake whose ClientKeyExchange carries a `kind` bad premaster, feeding
    the server the ClientKeyExchange alone first. -> (what the server sent right after
    the ClientKeyExchange, the server's ConnectionClosed, the alerts the client got)."""
    from tlscore import client as tls_client
    from tlscore.events import AlertReceived

    k = (server_key.n.bit_length() + 7) // 8
    monkeypatch.setattr(tls_client.pkcs1, "encrypt",
                        lambda backend, n, e, pms: bad_premaster_ciphertext(kind, n, e, k, pms))
    p = Pair(client_config, server_config, None, server_key)
    p.start()
    p.c2s()
    p.s2c()
    sent = p.c.data_to_send()  # ClientKeyExchange + ChangeCipherSpec + Finished
    cke_only = sent[: 5 + int.from_bytes(sent[3:5], "big")]
    p._answer(p.s, server_key, p.s.receive_data(cke_only), p.sev)
    after_cke = p.s.data_to_send()
    p._answer(p.s, server_key, p.s.receive_data(sent[len(cke_only):]), p.sev)
    closed = p.closed("s")
    p.s2c()
    return after_cke, closed, [a.description for a in p.of(AlertReceived, "c")]
