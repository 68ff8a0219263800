"""An asyncio TLS server around the tlscore engine.

Each connection is a ServerConnection fed from the socket; key operations (premaster
decryption, signatures) run in a worker thread so a slow or failing key never blocks
the event loop, and their failure ends only that handshake.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
from collections.abc import Callable
from typing import Any

from tlscore.config import TLSConfig
from tlscore.constants import HANDSHAKE_FAILURE
from tlscore.events import (
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    HandshakeComplete,
    KeyOperationRequest,
)
from tlscore.server import ServerConnection

from .backend import BACKEND
from .keys import PrivateKey, run_key_operation
from .sessions import SESSION_KINDS, SessionStore
from .tracing.keylog import keylog_from
from .tracing.trace import chain_hooks

log = logging.getLogger("hsmtls.server")

HANDSHAKE_TIMEOUT = 30.0
IDLE_TIMEOUT = 300.0


def describe(ev: HandshakeComplete) -> str:
    yn = {True: "yes", False: "no"}
    return (
        f"{ev.version} {ev.cipher_suite} ems={yn[ev.extended_master_secret]} "
        f"secure_renegotiation={yn[ev.secure_renegotiation]} resumed={yn[ev.resumed]} client={ev.peer_subject or '-'}"
    )


class TLSServer:
    def __init__(
        self,
        config: TLSConfig,
        key: PrivateKey,
        app: str = "echo",
        renegotiate: bool = False,
        out: Callable[[str], None] = print,
        keylog: str | None = None,
        sessions: SessionStore | None = None,
        sni_keys: list[PrivateKey] | None = None,
        client_auth_path: str | None = None,
    ) -> None:
        # keylog: NSS key log file (default: $SSLKEYLOGFILE; KeyLogError, a ConfigError,
        # if unwritable). on_connection_end(conn) is called as each connection ends
        # (hsmtls.trace.TraceHub.finish for --trace).
        self.keylog = keylog_from(keylog)
        if self.keylog is not None:
            config = copy.copy(config)
            config.trace = chain_hooks(config.trace, self.keylog.hook)
        self.on_connection_end: Callable[[ServerConnection], None] | None = None
        self.config = config
        self.key = key
        # the keys of config.sni_certificates, in order (KeyOperationRequest.key_index 1, 2, ...)
        self.keys = [key, *(sni_keys or [])]
        # resumption (config.session_cache / session_tickets): who seals the sessions
        self.sessions = sessions
        self.app = app
        # http: requests under this path need a client certificate; a connection without
        # one is renegotiated with a CertificateRequest first (mod_ssl's per-location
        # SSLVerifyClient require)
        self.client_auth_path = client_auth_path
        self.renegotiate_after_data = renegotiate
        self.out = out
        self.handshakes = 0
        self.failures = 0

    def _inline(self, key: PrivateKey, ev: KeyOperationRequest) -> bool:
        # A file key's operation (OpenSSL, about a millisecond) and a session sealed in
        # memory run on the event loop: the hand-off to a thread and back costs more
        # than it spares (`hsmtls bench server`). A token's wait runs off the loop.
        if ev.kind in SESSION_KINDS:
            return self.sessions is not None and getattr(self.sessions.sealer, "inline", False)
        return getattr(key, "performer", "") == "host"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        conn = ServerConnection(self.config, BACKEND)
        loop = asyncio.get_running_loop()
        renegotiated = False
        closing = False
        request = bytearray()  # http: the request so far (it may span records and a renegotiation)
        waiting: str | None = None  # http: the path of a request waiting for a client certificate

        async def flush() -> None:
            data = conn.data_to_send()
            if data:
                writer.write(data)
                await writer.drain()

        def answer_http(path: str) -> None:
            nonlocal closing
            body = (f"hsmtls: {conn.suite.name if conn.suite else '-'}\n"
                    f"client: {conn.peer_certificate.subject_str() if conn.peer_certificate else '-'}\n"
                    f"path: {path}\n").encode()
            conn.send_application_data(  # one record: the whole response at once
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            conn.close()
            closing = True

        def on_http_request(data: bytes) -> list:
            """The events of a refusal, if any."""
            nonlocal waiting, closing
            request.extend(data)
            # a request ends with an empty line, CRLF or bare LF (as curl and s_client -crlf,
            # or a typed request, send it)
            if waiting is not None or (b"\r\n\r\n" not in request and b"\n\n" not in request):
                return []  # not whole yet, or already waiting for a certificate
            parts = bytes(request).split(b" ", 2)
            path = parts[1].decode("ascii", "replace") if len(parts) > 2 else "/"
            need = self.client_auth_path
            if need is not None and path.startswith(need) and conn.peer_certificate is None:
                if not conn.secure_renegotiation:
                    return conn.abort(HANDSHAKE_FAILURE, f"{path} needs a client certificate, and the client "
                                      "cannot renegotiate securely")
                waiting = path
                conn.renegotiate(client_auth="require")
                return []
            answer_http(path)
            return []

        async def handle_events(events: list) -> None:
            nonlocal renegotiated, closing, waiting
            for ev in events:
                if isinstance(ev, KeyOperationRequest):
                    try:
                        key = self.keys[ev.key_index]
                        if self._inline(key, ev):
                            result = run_key_operation(key, ev, self.sessions)
                        else:
                            result = await loop.run_in_executor(None, run_key_operation, key, ev, self.sessions)
                    except Exception as e:  # token/device failure: fail this handshake only
                        why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                        log.warning("key operation failed on %s: %s", key.description, why)
                        more = conn.key_operation_failed(ev.op_id, f"{key.description}: {why}")
                    else:
                        more = conn.key_operation_result(ev.op_id, result)
                    await handle_events(more)  # (which sends what the answer let the engine write)
                elif isinstance(ev, HandshakeComplete):
                    self.handshakes += 1
                    if self.sessions is not None and not ev.resumed and ev.session is not None:
                        # kept before our Finished goes out: the client may come back at once
                        # (to another worker), and must find it
                        if getattr(self.sessions, "inline", False):
                            self.sessions.keep(ev.session)
                        else:
                            await loop.run_in_executor(None, self.sessions.keep, ev.session)
                    kind = "renegotiation complete" if ev.renegotiation else "handshake complete"
                    self.out(f"{kind}: {describe(ev)}")
                    if waiting is not None and ev.renegotiation:
                        path, waiting = waiting, None
                        answer_http(path)
                elif isinstance(ev, AlertReceived):
                    if waiting is not None and ev.name == "no_renegotiation":
                        await handle_events(conn.abort(
                            HANDSHAKE_FAILURE, f"{waiting} needs a client certificate; the client refused to renegotiate"))
                elif isinstance(ev, ApplicationData):
                    if conn.closed:
                        continue  # data that came in with the peer's close_notify
                    if (
                        self.renegotiate_after_data
                        and not renegotiated
                        and conn.secure_renegotiation
                        and not conn.handshaking
                    ):
                        renegotiated = True
                        conn.renegotiate()
                    if self.app == "http":
                        await handle_events(on_http_request(ev.data))
                    else:
                        conn.send_application_data(ev.data)
                elif isinstance(ev, ConnectionClosed):
                    closing = True
                    if not ev.clean:
                        self.failures += 1
                        what = "handshake failed" if not conn.established else "connection failed"
                        who = "" if ev.local else "peer sent "
                        from tlscore.constants import alert_name

                        self.out(f"{what}: {who}{alert_name(ev.alert)}: {ev.reason}")
            await flush()

        try:
            while not conn.closed and not closing:
                timeout = IDLE_TIMEOUT if conn.established and not conn.handshaking else HANDSHAKE_TIMEOUT
                try:
                    # (asyncio.timeout, not wait_for: wait_for makes a task of each read)
                    async with asyncio.timeout(timeout):
                        data = await reader.read(65536)
                except TimeoutError:
                    self.out(f"connection from {peer}: timed out in state {conn.state}")
                    break
                if not data:
                    if conn.handshaking:
                        self.out(f"handshake failed: client {peer} closed the connection in state {conn.state}")
                    break
                await handle_events(conn.receive_data(data))
        except (ConnectionError, OSError) as e:
            self.out(f"connection from {peer} lost: {e}")
        except Exception as e:  # never let one connection's bug take the server down
            log.exception("internal error on connection from %s", peer)
            self.out(f"connection from {peer} failed: internal error: {type(e).__name__}: {e}")
        finally:
            try:
                await flush()
                writer.close()
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
            if self.on_connection_end is not None:
                try:
                    self.on_connection_end(conn)
                except Exception:  # an observer must not take the server down
                    log.exception("connection-end observer failed")

    async def serve(
        self,
        host: str,
        port: int,
        ready: Callable[[str, int], None] | None = None,
        reuse_port: bool = False,
    ) -> None:
        server = await asyncio.start_server(
            self.handle, host, port, reuse_address=True, reuse_port=reuse_port or None, backlog=1024
        )
        sock = server.sockets[0].getsockname()
        if ready:
            ready(sock[0], sock[1])
        async with server:
            await server.serve_forever()


def run_loop(coro) -> Any:
    """asyncio.run, on uvloop's event loop when it is installed (`pip install
    'hsmtls[speed]'`) and HSMTLS_LOOP is not "asyncio"."""
    import os

    if os.environ.get("HSMTLS_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(coro)
    return asyncio.run(coro)


class BackgroundServer:
    """A TLSServer on its own event loop thread (demo, tests, benchmarks)."""

    def __init__(self, server: TLSServer) -> None:
        self.server = server
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        def ready(host: str, port: int) -> None:
            self.port = port
            self._ready.set()

        try:
            self._loop.run_until_complete(self.server.serve("127.0.0.1", 0, ready))
        except asyncio.CancelledError:
            pass

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        def stop() -> None:
            for task in asyncio.all_tasks(self._loop):
                task.cancel()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(5)
