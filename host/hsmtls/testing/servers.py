"""TLS servers for a board to talk to: `hsmtls serve` with its key in the token, and
`openssl s_server` as a second, independent peer. Each is a process on 127.0.0.1 with
a kernel-chosen port, stopped by `close()`. `SharedServers` keeps one `hsmtls serve` a
set of options for a whole run: for the tests of one process, or for every
pytest-xdist worker (hsmtls.testing.shared)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import shared
from .shared import stop_process
from .token import ThrowawayToken


class ServerError(Exception):
    pass


class Server:
    """A running server: `.port`, `.address` ("127.0.0.1", port), `.output()` (what it
    printed so far; `hsmtls serve` logs each connection: peer, suite, renegotiation).
    `.shared`: other tests use it too (its output has their connections as well)."""

    def __init__(self, proc: subprocess.Popen | None, port: int, argv: list[str], log: Path | None = None,
                 pgid: int | None = None) -> None:
        self.proc = proc  # None: another process of the run started it
        self.port = port
        self.argv = argv
        self.log = log  # where the process writes, if not to a pipe
        self.pgid = pgid  # its own process group (a keeper's): stopped as a group
        self.shared = False
        self._out: list[str] = []

    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return self.pgid is not None and shared.alive(self.pgid)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def output(self, wait: float = 0.0) -> str:
        """What the server printed until now (waiting up to `wait` s for more)."""
        import select

        if self.log is not None:
            time.sleep(wait)
            return self.log.read_text(errors="replace")
        stream = self.proc.stdout if self.proc is not None else None
        deadline = time.monotonic() + wait
        while stream is not None:
            r, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                break
            line = stream.readline()
            if not line:
                break
            self._out.append(line)
        return "".join(self._out)

    def close(self) -> None:
        if self.pgid is not None:
            shared.stop_group(self.pgid, leader=self.proc)
        elif self.proc is not None:
            stop_process(self.proc)
        if self.log is not None:
            self.log.unlink(missing_ok=True)


class SharedServers:
    """One `hsmtls serve` a set of options, for every test that asks for that set: the
    tests of this process, or, in a pytest-xdist worker, of every worker (the first to
    ask starts it; it is stopped when the run ends, not when that worker does). A server
    found dead is started again."""

    def __init__(self, token: ThrowawayToken) -> None:
        self.token = token
        self.run = shared.shared_dir()
        self.mine: dict[str, Server] = {}

    def get(self, **options) -> Server:
        key = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()[:16]
        server = self.mine.get(key)
        if server is not None and server.running():
            return server
        if self.run is None:
            server = serve(self.token, **options)
        else:
            with shared.locked(self.run, "servers.lock"):
                server = self._run_server(key, options)
        server.shared = True
        self.mine[key] = server
        return server

    def _run_server(self, key: str, options: dict) -> Server:
        record = self.run / "servers" / f"{key}.json"
        if record.exists():
            info = json.loads(record.read_text())
            found = Server(None, info["port"], info["argv"], Path(info["log"]), info["pgid"])
            if found.running():
                return found
        server = serve(self.token, keeper=shared.owner_pid() or os.getpid(), **options)
        record.write_text(json.dumps({"pgid": server.pgid, "port": server.port, "argv": server.argv,
                                      "log": str(server.log)}))
        return server

    def close(self) -> None:
        """Stop the servers this process owns (not the run's: its controller stops them)."""
        if self.run is None:
            for server in self.mine.values():
                server.close()
        self.mine.clear()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(token: ThrowawayToken, client_auth: bool = False, renegotiate: bool = False,
          ciphers: tuple[str, ...] | list[str] = (), crl: str | Path | None = None, app: str = "echo",
          key: str = "server", extra: tuple[str, ...] | list[str] = (), keeper: int | None = None) -> Server:
    """`hsmtls serve` with the token's server key (pkcs11: URI) and certificate; with
    `client_auth` it requires a client certificate from the token's CA; `renegotiate`: it
    sends HelloRequest after the client's first data; `crl`: revoked clients are refused."""
    return hsmtls_server(token.server_pem, token.uri(key), token.env, token.ca_pem if client_auth else None,
                         renegotiate, ciphers, crl, app, extra, keeper)


def hsmtls_server(cert: str | Path, key: str, env: dict[str, str] | None = None,
                  client_ca: str | Path | None = None, renegotiate: bool = False,
                  ciphers: tuple[str, ...] | list[str] = (), crl: str | Path | None = None, app: str = "echo",
                  extra: tuple[str, ...] | list[str] = (), keeper: int | None = None) -> Server:
    """`hsmtls serve --host 127.0.0.1 --port 0` with any certificate and key (a PEM file or
    a pkcs11: URI, the PIN in `env`'s HSMTLS_PIN). `keeper`: the server runs in a process
    group of its own, under hsmtls.testing.keeper, for as long as process `keeper` lives."""
    argv = [sys.executable, "-m", "hsmtls", "serve", "--host", "127.0.0.1", "--port", "0", "--workers", "1",
            "--cert", str(cert), "--key", key, "--app", app]
    if client_ca:
        argv += ["--client-ca", str(client_ca)]
    if renegotiate:
        argv.append("--renegotiate")
    for c in ciphers:
        argv += ["--cipher", c]
    if crl:
        argv += ["--crl", str(crl)]
    argv += list(extra)
    run = argv if keeper is None else [sys.executable, "-m", "hsmtls.testing.keeper", str(keeper), "--", *argv]
    out = ""
    for _ in range(3):
        # its log goes to a file, which never fills up as an unread pipe would (a line
        # per handshake: a thousand handshakes would stop the server)
        fd, name = tempfile.mkstemp(prefix="hsmtls_serve_", suffix=".log")
        log = Path(name)
        proc = subprocess.Popen(run, stdout=fd, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=keeper is not None)
        os.close(fd)
        deadline = time.monotonic() + 60
        m = None
        while time.monotonic() < deadline:
            out = log.read_text(errors="replace")
            m = re.search(r"^listening on [^ ]+:(\d+)", out, re.M)
            if m or proc.poll() is not None:
                break
            time.sleep(0.02)
        if m:
            return Server(proc, int(m.group(1)), argv, log, proc.pid if keeper is not None else None)
        if keeper is not None:
            shared.stop_group(proc.pid, wait=1.0, leader=proc)
        elif proc.poll() is None:
            proc.kill()
        proc.wait()
        log.unlink(missing_ok=True)
        # SoftHSM2's file store rewrites token.object at each login: a server reading
        # it meanwhile finds no token or a broken one, and the next try does not
        if "on token" not in out and "no token labelled" not in out:
            break
    raise ServerError(f"hsmtls serve did not start: {out.strip()}")


def openssl_server(cert: str | Path, key: str | Path, client_ca: str | Path | None = None,
                   extra: tuple[str, ...] | list[str] = (), timeout: float = 5.0) -> Server:
    """`openssl s_server -tls1_2` with a PEM key; with `client_ca` it requires a client
    certificate from that CA."""
    if shutil.which("openssl") is None:
        raise ServerError("openssl is not installed (apt install openssl)")
    port = _free_port()
    argv = ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-tls1_2", "-cert", str(cert), "-key", str(key),
            "-quiet", *extra]
    if client_ca:
        argv += ["-Verify", "1", "-CAfile", str(client_ca)]
    # s_server prints what it receives: to a file, which never fills up as a pipe would
    fd, name = tempfile.mkstemp(prefix="hsmtls_s_server_", suffix=".log")
    log = Path(name)
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=fd, stderr=subprocess.STDOUT)
    os.close(fd)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = log.read_text(errors="replace").strip()
            log.unlink(missing_ok=True)
            raise ServerError(f"openssl s_server exited: {said}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return Server(proc, port, argv, log)
        except OSError:
            time.sleep(0.02)
    proc.kill()
    proc.wait()
    log.unlink(missing_ok=True)
    raise ServerError(f"openssl s_server did not listen on 127.0.0.1:{port} within {timeout:.0f} s")
