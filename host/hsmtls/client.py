"""A blocking TLS client over a TCP socket, driving the tlscore engine."""

from __future__ import annotations

import copy
import socket
import time

from tlscore.client import ClientConnection
from tlscore.config import TLSConfig
from tlscore.events import (
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    HandshakeComplete,
    KeyOperationRequest,
)

from .backend import BACKEND
from .keys import PrivateKey, run_key_operation
from .tracing.keylog import KeyLogError, keylog_from
from .tracing.trace import TraceHook, chain_hooks


class TLSFailure(Exception):
    """The TLS connection failed; str() is a one-line reason."""

    def __init__(self, reason: str, alert: int | None = None, local: bool = True) -> None:
        super().__init__(reason)
        self.alert = alert
        self.local = local


class TLSClient:
    def __init__(
        self,
        host: str,
        port: int,
        config: TLSConfig,
        key: PrivateKey | None = None,
        timeout: float = 10.0,
        keylog: str | None = None,
        trace: TraceHook | None = None,
    ) -> None:
        # keylog: NSS key log file (default: $SSLKEYLOGFILE); trace: an extra
        # TLSConfig.trace observer (hsmtls.trace.Trace.hook). The caller's config is
        # copied, not changed, when either is set.
        try:
            self.keylog = keylog_from(keylog)
        except KeyLogError as e:
            raise TLSFailure(str(e)) from None
        hook = chain_hooks(config.trace, trace, self.keylog.hook if self.keylog else None)
        if hook is not config.trace:
            config = copy.copy(config)
            config.trace = hook
        self.config = config
        self.key = key
        self.timeout = timeout
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise TLSFailure(f"cannot connect to {host}:{port}: {e.strerror or e}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = ClientConnection(config, BACKEND)
        self.handshakes: list[HandshakeComplete] = []
        self.alerts: list[AlertReceived] = []
        self.received = bytearray()
        self.peer_closed = False

    # -- event pump --------------------------------------------------------------------

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            try:
                self.sock.sendall(data)
            except OSError as e:
                raise TLSFailure(f"connection lost while sending: {e.strerror or e}") from None

    def _handle(self, events: list) -> None:
        for ev in events:
            if isinstance(ev, KeyOperationRequest):
                if self.key is None:
                    more = self.conn.key_operation_failed(ev.op_id, "no client key configured")
                else:
                    try:
                        result = run_key_operation(self.key, ev)
                    except Exception as e:  # the key's failure becomes an alert
                        why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                        more = self.conn.key_operation_failed(ev.op_id, why)
                    else:
                        more = self.conn.key_operation_result(ev.op_id, result)
                self._flush()
                self._handle(more)
            elif isinstance(ev, HandshakeComplete):
                self.handshakes.append(ev)
            elif isinstance(ev, ApplicationData):
                self.received += ev.data
            elif isinstance(ev, AlertReceived):
                self.alerts.append(ev)
            elif isinstance(ev, ConnectionClosed):
                self._flush()
                self.peer_closed = True
                if not ev.clean:
                    if ev.local:
                        raise TLSFailure(ev.reason or "connection failed", ev.alert, True)
                    raise TLSFailure(f"server sent alert {_alert(ev.alert)}", ev.alert, False)

    def _pump(self, timeout: float | None) -> bool:
        """Read once from the socket; False on timeout."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError as e:
            raise TLSFailure(f"connection lost: {e.strerror or e}") from None
        if not data:
            self.peer_closed = True
            if self.conn.handshaking:
                raise TLSFailure("server closed the connection during the handshake")
            return True
        self._handle(self.conn.receive_data(data))
        self._flush()
        return True

    def wait_handshakes(self, n: int, renegotiation: bool = False) -> HandshakeComplete:
        """Pump until n handshakes (initial + renegotiations) have completed; a
        renegotiation also ends at the server's no_renegotiation."""
        what, during = ("renegotiation", "renegotiation") if renegotiation else ("handshake", "the handshake")
        deadline = time.monotonic() + self.timeout
        while len(self.handshakes) < n:
            if renegotiation and any(a.name == "no_renegotiation" for a in self.alerts):
                raise TLSFailure("server refused renegotiation (no_renegotiation)")
            if self.peer_closed:
                raise TLSFailure(f"server closed the connection during {during}")
            left = deadline - time.monotonic()
            if left <= 0 or not self._pump(left):
                raise TLSFailure(f"{what} timed out after {self.timeout:g} s")
        return self.handshakes[-1]

    # -- API ---------------------------------------------------------------------------

    def handshake(self) -> HandshakeComplete:
        self.conn.initiate()
        self._flush()
        self._handle(self.conn.next_events())
        return self.wait_handshakes(1)

    def renegotiate(self) -> HandshakeComplete:
        n = len(self.handshakes) + 1
        try:
            self.conn.renegotiate()
        except ValueError as e:
            raise TLSFailure(f"cannot renegotiate: {e}") from None
        self._flush()
        return self.wait_handshakes(n, renegotiation=True)

    def send(self, data: bytes) -> None:
        self.conn.send_application_data(data)
        self._flush()

    def read(self, idle_timeout: float = 1.0, until: bytes | None = None, total: float = 30.0) -> bytes:
        """Read until the peer closes, `until` arrives, or nothing came for idle_timeout."""
        deadline = time.monotonic() + total
        while not self.peer_closed and time.monotonic() < deadline:
            if until is not None and until in self.received:
                break
            if not self._pump(idle_timeout):
                break
        data = bytes(self.received)
        self.received = bytearray()
        return data

    def close(self) -> None:
        try:
            if not self.conn.closed:
                self.conn.close()
                self._flush()
        except TLSFailure:
            pass
        finally:
            self.sock.close()


def _alert(code: int | None) -> str:
    from tlscore.constants import alert_name

    return alert_name(code) if code is not None else "unknown"
