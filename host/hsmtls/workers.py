"""`hsmtls serve --workers N`: N server processes sharing one listening port.

Each worker is a separate (spawned, not forked) process with its own event loop and its
own PKCS#11 module instance and token sessions: PKCS#11 state must not cross a fork.
The kernel spreads connections over the workers (SO_REUSEPORT). The parent reserves
the port first, so `--port 0` gives all workers the same port.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import queue
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class ServeSettings:
    host: str
    port: int
    cert: str
    key_spec: str
    client_ca: str | None = None
    verify_client: str | None = None
    app: str = "echo"
    ciphers: tuple[str, ...] = ()
    renegotiate: bool = False
    module: str | None = None
    pin_file: str | None = None
    pin: str | None = None
    crls: tuple[str, ...] = ()
    allow_sha1: bool = False
    # resumption: a cache of this many sessions (0: none), tickets, their lifetime; with
    # workers the parent hands over the shared table and the in-memory sealing key
    session_cache: int = 0
    tickets: bool = False
    session_lifetime: int = 7200
    table: Any = None
    ram_key: tuple[bytes, bytes] | None = None
    # more certificates chosen by SNI: (names or () for the certificate's own, cert, key)
    sni: tuple[tuple[tuple[str, ...], str, str], ...] = ()
    sni_strict: bool | None = None  # None: strict when there are SNI certificates
    client_auth_path: str | None = None  # http: a client certificate for requests under it


def build_server(s: ServeSettings, out: Callable[[str], None]):
    from .keys import load_private_key
    from .server import TLSServer
    from .tlsconfig import ConfigError, certificate_names, load_cert_chain, server_config

    verify_client = s.verify_client
    if s.client_auth_path is not None:
        if s.app != "http" or not s.client_ca:
            raise ConfigError("--client-auth-path needs --app http and --client-ca CA.pem")
        verify_client = verify_client or "none"  # asked for only under the path
    config = server_config(s.cert, s.client_ca, verify_client, s.ciphers, s.crls, s.allow_sha1)
    config.session_cache = s.session_cache > 0
    config.session_tickets = s.tickets
    config.session_lifetime = s.session_lifetime
    key = load_private_key(s.key_spec, s.module, s.pin_file, pin=s.pin)
    sni_keys = []
    for names, cert, key_spec in s.sni:
        chain = load_cert_chain(cert)
        config.sni_certificates.append((tuple(n.lower() for n in names) or certificate_names(cert, chain), chain))
        sni_keys.append(load_private_key(key_spec, s.module, s.pin_file, pin=s.pin))
    config.sni_strict = bool(s.sni) if s.sni_strict is None else s.sni_strict
    if s.sni:
        try:
            config.certificate_names = certificate_names(s.cert, config.certificate_chain)
        except ConfigError:
            config.certificate_names = ()  # the default serves clients without a name (or any, not strict)
    server = TLSServer(config, key, app=s.app, renegotiate=s.renegotiate, out=out,
                       sessions=session_store(s, key), sni_keys=sni_keys, client_auth_path=s.client_auth_path)
    return server


def session_store(s: ServeSettings, key: Any):
    """Who seals this server's sessions: the token's ticket key when the server key is
    in a token that has one (tickets need it), else a key in memory; None: no resumption."""
    from .keys import KeyError_
    from .sessions import RamSealer, SessionStore, SessionTable

    if not (s.session_cache or s.tickets):
        return None
    sealer: Any = None
    if getattr(key, "performer", "") == "token":
        from .hsm.tickets import TokenSealer
        from .hsm.token import TokenError

        try:
            sealer = TokenSealer(key)
        except TokenError as e:
            if s.tickets:
                raise KeyError_(f"--tickets: {e}") from None
    if sealer is None:  # (a token key without a ticket key: its cache sealed in memory, docs/server.md)
        sealer = RamSealer(*s.ram_key) if s.ram_key else RamSealer()
    table = s.table if s.table is not None else (SessionTable(s.session_cache) if s.session_cache else None)
    return SessionStore(sealer, table)


async def _exit_with_parent(parent: int) -> None:
    # a worker must not outlive `hsmtls serve` (SIGKILL of the parent included)
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    os._exit(0)


def _worker(s: ServeSettings, port: int, ready: mp.Queue, parent: int) -> None:
    def out(line: str) -> None:
        print(line, flush=True)

    try:
        server = build_server(s, out)
    except Exception as e:  # reported by the parent as one line
        ready.put(("error", str(e)))
        return
    async def main() -> None:
        watchdog = asyncio.ensure_future(_exit_with_parent(parent))
        try:
            await server.serve(s.host, port, lambda h, p: ready.put(("ready", p)), reuse_port=True)
        finally:
            watchdog.cancel()

    try:
        from .server import run_loop

        run_loop(main())
    except KeyboardInterrupt:
        pass


def run_workers(s: ServeSettings, n: int, echo: Callable[[str], None]) -> int:
    reserve = socket.socket(socket.AF_INET6 if ":" in s.host else socket.AF_INET, socket.SOCK_STREAM)
    reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        reserve.bind((s.host, s.port))  # bound, never listening: gets no connections
    except OSError as e:
        echo(f"error: cannot listen on {s.host}:{s.port}: {e.strerror or e}")
        return 1
    port = reserve.getsockname()[1]
    ctx = mp.get_context("spawn")
    ready: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(s, port, ready, os.getpid()), daemon=True) for _ in range(n)]

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds into the finally below, which stops the workers

    signal.signal(signal.SIGTERM, on_term)
    for p in procs:
        p.start()
    try:
        for _ in range(n):
            try:
                kind, value = ready.get(timeout=60)
            except queue.Empty:
                echo("error: server workers did not start within 60 s")
                return 1
            if kind == "error":
                echo(f"error: {value}")
                return 1
        reserve.close()
        print(f"listening on {s.host}:{port}", flush=True)
        print(f"{n} worker processes", flush=True)
        for p in procs:
            p.join()
        return 0 if all(p.exitcode == 0 for p in procs) else 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(5)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run through `hsmtls serve --workers N`")
