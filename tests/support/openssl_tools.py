"""Drive the OpenSSL 3.0 command line (`s_server`, `s_client`) and our own CLI from tests.

(Over 600 lines: one process harness, Monitored, and the peers built on it; the peers
share its reading, waiting and transcripts, so they stay beside it.)

Every peer here is a subprocess whose stdout and stderr are drained by background threads
into one buffer, so a test can `wait_for` a marker without dead-locking on a full pipe and
can show the whole transcript when an assertion fails. Everything binds 127.0.0.1 only.

What the OpenSSL 3.0 CLI does, found by running it (3.0.19 and 3.0.22; the harness
tests in tests/interop/test_openssl_harness.py keep these facts checked):

* Suites. The four RSA-key-exchange suites (AES128-GCM-SHA256, AES256-GCM-SHA384,
  AES128-SHA256, AES128-SHA) negotiate with `-tls1_2 -cipher NAME` at the default
  security level and at @SECLEVEL=2 with our 2048-bit keys: no `@SECLEVEL=0` needed.
  The SHA-1 in AES128-SHA is only the record MAC, which security levels do not restrict.
* s_client commands. Without `-quiet`/`-ign_eof`/`-nocommands`, a stdin line whose first
  character is `R` renegotiates (s_client prints "RENEGOTIATING" on stderr), `Q` closes
  the connection, `k`/`K` is a TLS 1.3 key update. So data lines sent through s_client
  must not start with R, Q, k or K, and each line must be written on its own (one read
  of stdin = one record; "ping\\nR\\n" in one read would be sent as data). EOF on stdin
  makes s_client send close_notify and exit ("DONE").
* s_client needs `-nbio`. On its default blocking socket, when application data arrives
  in the middle of a renegotiation (our server echoes while it renegotiates), the
  SSL_read that finishes the handshake then blocks for more data and stdin is never
  read again. SClient always passes -nbio.
* s_server commands, only in the default (not `-rev`, not `-www`) mode: a stdin line `r`
  sends HelloRequest and blocks in SSL_do_handshake until the renegotiation is over, then
  prints "SSL_do_handshake -> 1"; `R` does the same but also requests a client
  certificate. `q` ends the connection, `Q` the server, `P` and `S` are commands too, as
  are `k`, `K` and `c` alone on a line: a data line must not start with q, Q, P or S nor
  be one of those letters alone. Any other line is sent to the client. EOF on stdin while a connection is up ends s_server, so SServer
  keeps stdin open.
* Client-initiated renegotiation is refused by an OpenSSL 3.0 server by default
  (SSL_OP_ALLOW_CLIENT_RENEGOTIATION is off): the client gets a no_renegotiation alert.
  `s_server -client_renegotiation` allows it.
* `-verify`/`-Verify` include SSL_VERIFY_CLIENT_ONCE: the client certificate is asked
  for in the first handshake only, not in renegotiations; the `R` command asks anyway.
* A renegotiation is resumed (abbreviated, no Certificate messages, so no new client
  certificate) when the client offers the session; `s_server -no_resumption_on_reneg`
  forces a full handshake.
* `-state` prints one line per handshake step (`SSL_accept:SSLv3/TLS read finished`,
  `SSL_connect:SSLv3/TLS read finished`, `SSL3 alert read:fatal:unknown CA`, ...); each
  handshake, full or resumed, reads exactly one Finished, so counting those lines counts
  completed handshakes (first one + renegotiations).
* `-rev` answers a client-initiated renegotiation about a second late (its line reader
  waits); harmless, but it is where those cells spend their time.
* `-accept 127.0.0.1:0` lets the kernel pick the port and prints `ACCEPT 127.0.0.1:PORT`,
  so there is no race on a free port.
* Alerts as s_server/s_client print them: the `-state` line `SSL3 alert read:fatal:<long
  name>` (e.g. "certificate expired", "bad certificate", "unknown CA", "handshake
  failure") and the error line `... alert <short name> ... SSL alert number <code>`.
  OpenSSL itself sends bad_certificate (42) for a host name mismatch.
"""

from __future__ import annotations

import codecs
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

OPENSSL = os.environ.get("OPENSSL", "openssl")
LOCALHOST = "127.0.0.1"
DEFAULT_TIMEOUT = 15.0

# (IANA name, OpenSSL name) of every suite tlscore implements.
SUITES = [
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"),
    ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256"),
    ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "ECDHE-RSA-AES256-SHA384"),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"),
    ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"),
    ("TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"),
    ("TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"),
    ("TLS_RSA_WITH_AES_128_CBC_SHA256", "AES128-SHA256"),
    ("TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"),
]
OPENSSL_NAME = dict(SUITES)
IANA_NAME = {openssl: iana for iana, openssl in SUITES}

# Lines -state prints once per completed handshake (first handshake or renegotiation).
_FINISHED_READ = {
    "server": re.compile(r"^SSL_accept:SSLv3/TLS read finished", re.M),
    "client": re.compile(r"^SSL_connect:SSLv3/TLS read finished", re.M),
}


class ProcessTimeout(AssertionError):
    """A marker did not show up in a peer's output in time (the transcript is attached)."""


class Monitored:
    """A subprocess whose stdout and stderr are collected by background threads.

    `output()` is everything read so far from both streams (interleaved as it arrived),
    `stdout()`/`stderr()` each stream alone. The process runs in its own session, so
    `terminate()` can also end whatever it spawned (a server's worker processes) and
    nothing else.
    """

    stop_signal = signal.SIGTERM

    def __init__(self, argv: Sequence[str | os.PathLike], *, name: str, cwd=None, env=None):
        self.argv = [str(a) for a in argv]
        self.name = name
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._all: list[str] = []
        self._streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            bufsize=0,
            start_new_session=True,
        )
        self._threads = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, "stderr"), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _drain(self, stream, which: str) -> None:
        # Whatever is available, not lines, so output without a newline shows up at once;
        # the incremental decoder keeps a UTF-8 sequence split across reads intact.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            chunk = stream.read(4096)
            text = decoder.decode(chunk, final=not chunk)
            if not chunk and not text:
                break
            with self._changed:
                self._all.append(text)
                self._streams[which].append(text)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    # -- reading ------------------------------------------------------------------------

    def output(self) -> str:
        with self._lock:
            return "".join(self._all)

    def stdout(self) -> str:
        with self._lock:
            return "".join(self._streams["stdout"])

    def stderr(self) -> str:
        with self._lock:
            return "".join(self._streams["stderr"])

    def transcript(self) -> str:
        rc = self.proc.poll()
        return (
            f"--- {self.name}: {' '.join(self.argv)}\n"
            f"--- exit code: {rc if rc is not None else 'still running'}\n"
            f"{self.output()}\n--- end of {self.name}"
        )

    def wait_for(
        self,
        pattern: str | re.Pattern,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        count: int = 1,
        start: int = 0,
    ) -> re.Match:
        """Wait until `pattern` (literal text, or a compiled regex) occurs `count` times in
        output()[start:]; return the last match. Raises ProcessTimeout with the transcript
        on timeout, or as soon as the process has exited without producing it."""
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matches = list(regex.finditer("".join(self._all), start))
                if len(matches) >= count:
                    return matches[count - 1]
                exited = self.proc.poll() is not None and not any(
                    t.is_alive() for t in self._threads
                )
                remaining = deadline - time.monotonic()
                if exited or remaining <= 0:
                    break
                self._changed.wait(min(remaining, 0.1))
        why = "exited without printing" if exited else f"did not print within {timeout:.0f} s"
        raise ProcessTimeout(f"{self.name} {why} {regex.pattern!r}\n{self.transcript()}")

    def mark(self) -> int:
        """Position in output(), to pass as `start=` to wait only for what comes after."""
        with self._lock:
            return sum(len(s) for s in self._all)

    # -- writing and ending ------------------------------------------------------------

    def write_stdin(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ProcessTimeout(
                f"{self.name} did not exit within {timeout:.0f} s\n{self.transcript()}"
            ) from None
        for t in self._threads:
            t.join(2)
        return rc

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        # Children left behind (a killed server's workers) share the process group that
        # start_new_session gave the process: end them too.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.close_stdin()
        for t in self._threads:
            t.join(2)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.terminate()


def _cipher_args(cipher: str | None) -> list[str]:
    return ["-cipher", cipher] if cipher else []


class SServer(Monitored):
    """`openssl s_server -tls1_2` on 127.0.0.1 and a kernel-chosen port.

    verify: None (no CertificateRequest), "request" (`-verify 1`: ask, accept none) or
    "require" (`-Verify 1`: handshake fails without a certificate); `ca` is then the
    trusted CA file. mode: None (interactive; stdin commands `r`/`R`, other lines are
    sent as data, received data is printed), "rev" (each received line is sent back
    reversed) or "www" (an HTML status page for "GET /").
    Use as a context manager; `.port` is set once s_server printed ACCEPT.
    """

    def __init__(
        self,
        cert: Path,
        key: Path,
        *,
        ca: Path | None = None,
        verify: str | None = None,
        cipher: str | None = None,
        mode: str | None = None,
        client_renegotiation: bool = False,
        no_resumption_on_reneg: bool = False,
        extra: Iterable[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
    ):
        argv = [OPENSSL, "s_server", "-tls1_2", "-state", "-accept", f"{LOCALHOST}:0"]
        argv += ["-cert", str(cert), "-key", str(key), *_cipher_args(cipher)]
        if ca is not None:
            argv += ["-CAfile", str(ca)]
        if verify == "require":
            argv += ["-Verify", "1"]
        elif verify == "request":
            argv += ["-verify", "1"]
        elif verify is not None:
            raise ValueError(f"verify must be None, 'request' or 'require', not {verify!r}")
        if mode in ("rev", "www"):
            argv.append("-" + mode)
        elif mode is not None:
            raise ValueError(f"mode must be None, 'rev' or 'www', not {mode!r}")
        if client_renegotiation:
            argv.append("-client_renegotiation")
        if no_resumption_on_reneg:
            argv.append("-no_resumption_on_reneg")
        argv += list(extra)
        super().__init__(argv, name="openssl s_server")
        try:
            m = self.wait_for(re.compile(r"^ACCEPT (\S+):(\d+)\s*$", re.M), timeout)
        except BaseException:
            self.terminate()
            raise
        self.port = int(m.group(2))

    def handshakes(self) -> int:
        """Handshakes s_server completed so far (first ones and renegotiations)."""
        return len(_FINISHED_READ["server"].findall(self.output()))

    def wait_handshakes(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Wait until `count` handshakes have completed; return how many have by then
        (the peer may see its data before our reader thread has read s_server's log)."""
        self.wait_for(_FINISHED_READ["server"], timeout, count=count)
        return self.handshakes()

    def renegotiate(self, *, request_cert: bool = False, timeout: float = DEFAULT_TIMEOUT):
        """Send HelloRequest (stdin `r`, or `R` to ask for a client certificate) and wait
        until s_server's SSL_do_handshake returns. Returns its return value (1 = done)."""
        mark = self.mark()
        self.write_stdin("R\n" if request_cert else "r\n")
        m = self.wait_for(re.compile(r"SSL_do_handshake -> (-?\d+)"), timeout, start=mark)
        return int(m.group(1))


class SClient(Monitored):
    """`openssl s_client -tls1_2 -connect 127.0.0.1:PORT` kept open for a scripted talk.

    Interactive (commands on): `send_line("ping")` writes one data line, `renegotiate()`
    writes `R`. Close with `close()`, which ends stdin so s_client sends close_notify.
    """

    def __init__(
        self,
        port: int,
        *,
        ca: Path | None = None,
        cipher: str | None = None,
        cert: Path | None = None,
        key: Path | None = None,
        servername: str | None = "localhost",
        host: str = LOCALHOST,
        extra: Iterable[str] = (),
    ):
        argv = [OPENSSL, "s_client", "-connect", f"{host}:{port}", "-tls1_2", "-state", "-nbio"]
        argv += _cipher_args(cipher)
        if ca is not None:
            argv += ["-CAfile", str(ca), "-verify_return_error"]
        if cert is not None:
            argv += ["-cert", str(cert), "-key", str(key if key is not None else cert)]
        if servername:
            argv += ["-servername", servername]
            if ca is not None:
                argv += ["-verify_hostname", servername]
        argv += list(extra)
        super().__init__(argv, name="openssl s_client")

    def wait_handshake(self, timeout: float = DEFAULT_TIMEOUT, count: int = 1) -> None:
        """Wait until `count` handshakes (first + renegotiations) have completed."""
        self.wait_for(_FINISHED_READ["client"], timeout, count=count)
        if count == 1:
            # The session summary is printed right after the first handshake; waiting
            # for it keeps the summary and the first received data apart.
            self.wait_for("Verify return code:", timeout)

    def handshakes(self) -> int:
        return len(_FINISHED_READ["client"].findall(self.output()))

    def send_line(self, text: str) -> None:
        if text[:1] in ("R", "Q", "k", "K"):
            raise ValueError(f"s_client would take {text!r} as a command, not as data")
        self.write_stdin(text + "\n")

    def renegotiate(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Renegotiate (stdin `R`) and wait until the new handshake has completed."""
        before = self.handshakes()
        self.write_stdin("R\n")
        self.wait_for("RENEGOTIATING", timeout)
        self.wait_for(_FINISHED_READ["client"], timeout, count=before + 1)

    def close(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        self.close_stdin()
        return self.wait(timeout)


@dataclass
class SClientResult:
    returncode: int
    output: str
    handshakes: int

    def __str__(self) -> str:
        return f"s_client exit code {self.returncode}\n{self.output}"


def s_client(
    port: int,
    *,
    ca: Path | None = None,
    cipher: str | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    servername: str | None = "localhost",
    script: Sequence[tuple[str, str]] = (),
    extra: Iterable[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
) -> SClientResult:
    """Run s_client through a short script and return what it printed.

    script steps: ("send", line) writes one data line; ("expect", text) waits until text
    was printed (received data or a message from s_client); ("renegotiate", "") does `R`
    and waits for the new handshake; ("handshake", "") waits for the first handshake.
    If s_client exits early (a failed handshake) the remaining steps are skipped and the
    result carries its exit code, so tests of failures can assert on it.
    """
    with SClient(
        port, ca=ca, cipher=cipher, cert=cert, key=key, servername=servername, extra=extra
    ) as client:
        for step, arg in script:
            if client.proc.poll() is not None:
                break
            try:
                if step == "send":
                    client.send_line(arg)
                elif step == "expect":
                    client.wait_for(arg, timeout)
                elif step == "renegotiate":
                    client.renegotiate(timeout)
                elif step == "handshake":
                    client.wait_handshake(timeout)
                else:
                    raise ValueError(f"unknown s_client step {step!r}")
            except (BrokenPipeError, ProcessTimeout):
                if client.proc.poll() is None:
                    raise
                break
        try:
            rc = client.close(timeout)
        except ProcessTimeout:
            client.terminate()
            rc = client.proc.returncode
        return SClientResult(rc, client.output(), client.handshakes())


def alert_seen(output: str, name: str) -> bool:
    """Did OpenSSL report a received alert `name` (RFC name, e.g. "unknown_ca")?

    Accepts both ways OpenSSL prints it: `SSL3 alert read:fatal:unknown CA` (-state) and
    `... alert unknown ca ... SSL alert number 48`.
    """
    code = ALERT_CODES[name]
    return bool(
        re.search(rf"SSL alert number {code}\b", output)
        or re.search(
            r"alert read:fatal:" + re.escape(name.replace("_", " ")), output, re.IGNORECASE
        )
    )


ALERT_CODES = {
    "close_notify": 0,
    "unexpected_message": 10,
    "bad_record_mac": 20,
    "record_overflow": 22,
    "handshake_failure": 40,
    "bad_certificate": 42,
    "unsupported_certificate": 43,
    "certificate_expired": 45,
    "certificate_unknown": 46,
    "illegal_parameter": 47,
    "unknown_ca": 48,
    "decode_error": 50,
    "decrypt_error": 51,
    "protocol_version": 70,
    "insufficient_security": 71,
    "internal_error": 80,
    "no_renegotiation": 100,
    "unrecognized_name": 112,
}


# -- our own CLI ------------------------------------------------------------------------

CONNECT_KEYS = (
    "version",
    "cipher",
    "extended_master_secret",
    "secure_renegotiation",
    "encrypt_then_mac",
    "peer",
    "renegotiations",
    "received",
)


def parse_connect_output(stdout: str) -> dict[str, str]:
    """Split `hsmtls connect` stdout into its `key: value` fields.

    `received:` is the data as text and may span several lines: it runs until the next
    line that starts with a known key, and its final newline (the one print adds) is
    dropped.
    """
    fields: dict[str, str] = {}
    current = None
    for line in stdout.splitlines(keepends=True):
        key, sep, value = line.partition(": ")
        if sep and key in CONNECT_KEYS and (current is None or key not in fields):
            current = key
            fields[key] = value
        elif current == "received":
            fields["received"] += line
        elif line.strip():
            fields.setdefault("_other", "")
            fields["_other"] += line
    for key in fields:
        if fields[key].endswith("\n"):
            fields[key] = fields[key][:-1]
    return fields


class HsmtlsServer(Monitored):
    """`hsmtls serve` started on port 0; `.port` is read from `listening on HOST:PORT`."""

    # Ctrl-C is the stop the CLI handles: the parent then stops its worker processes.
    # (SIGTERM kills the parent alone and leaves the workers running.)
    stop_signal = signal.SIGINT
    LISTENING = re.compile(r"^listening on 127\.0\.0\.1:(\d+)\s*$", re.M)

    def __init__(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, env=None):
        super().__init__(argv, name="hsmtls serve", env=env)
        try:
            self.port = int(self.wait_for(self.LISTENING, timeout).group(1))
        except BaseException:
            self.terminate()
            raise

    def log_lines(self, prefix: str, start: int = 0) -> list[str]:
        """Lines of output()[start:] that start with prefix."""
        return [line for line in self.output()[start:].splitlines() if line.startswith(prefix)]

    def wait_log(
        self, prefix: str, count: int = 1, timeout: float = DEFAULT_TIMEOUT, start: int = 0
    ) -> str:
        """Wait for the `count`-th line of output()[start:] starting with prefix; return
        that line (use `start=server.mark()` taken before the connection of interest)."""
        regex = re.compile("^" + re.escape(prefix) + ".*$", re.M)
        return self.wait_for(regex, timeout, count=count, start=start).group(0)


def start_hsmtls_server(
    cmd: Sequence[str],
    cert: Path,
    key: Path,
    *,
    client_ca: Path | None = None,
    verify_client: str | None = None,
    app: str = "echo",
    ciphers: Iterable[str] | str | None = None,
    renegotiate: bool = False,
    extra: Iterable[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
) -> HsmtlsServer:
    argv = [*cmd, "serve", "--host", LOCALHOST, "--port", "0"]
    argv += ["--cert", str(cert), "--key", str(key), "--app", app]
    if client_ca is not None:
        argv += ["--client-ca", str(client_ca)]
    if verify_client is not None:
        argv += ["--verify-client", verify_client]
    if isinstance(ciphers, str):
        ciphers = [ciphers]
    for cipher in ciphers or ():
        argv += ["--cipher", cipher]
    if renegotiate:
        argv.append("--renegotiate")
    argv += list(extra)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return HsmtlsServer(argv, timeout=timeout, env=env)


# `hsmtls serve` runs one process per core by default, sharing the port. Tests that must
# know the process that failed is the one that serves the next client, or that read the
# log in connection order, run a single one.
ONE_WORKER = ("--workers", "1")


class ServerPool:
    """`hsmtls serve` processes shared by the tests of a module, one per configuration.

    get() returns the running server for a configuration, starting it on first use and
    again if it died (so a crash fails the test that caused it, not every later one).
    Tests take `server.mark()` before their connection and read the log after it.
    """

    def __init__(self, cmd: Sequence[str]):
        self.cmd = list(cmd)
        self._servers: dict[str, HsmtlsServer] = {}
        self.current: HsmtlsServer | None = None

    def get(self, cert: Path, key: Path, **kwargs) -> HsmtlsServer:
        config = repr((str(cert), str(key), sorted(kwargs.items())))
        server = self._servers.get(config)
        if server is None or server.proc.poll() is not None:
            if server is not None:
                server.terminate()
            server = start_hsmtls_server(self.cmd, cert, key, **kwargs)
            self._servers[config] = server
        self.current = server
        return server

    def close(self) -> None:
        for server in self._servers.values():
            server.terminate()


@dataclass
class ConnectResult:
    returncode: int
    stdout: str
    stderr: str
    fields: dict[str, str]

    def __str__(self) -> str:
        return (
            f"hsmtls connect exit code {self.returncode}\n--- stdout\n{self.stdout}"
            f"--- stderr\n{self.stderr}"
        )


def hsmtls_connect(
    cmd: Sequence[str],
    port: int,
    *,
    ca: Path,
    cert: Path | None = None,
    key: Path | None = None,
    cipher: str | None = None,
    servername: str | None = "localhost",
    renegotiate: bool = False,
    send: str | None = None,
    until: str | None = None,
    idle_timeout: float | None = None,
    extra: Iterable[str] = (),
    timeout: float = 30.0,
) -> ConnectResult:
    """Run `hsmtls connect 127.0.0.1:PORT ...` to completion (a blocking call: drive any
    peer that needs input from another thread, or use start_hsmtls_connect)."""
    argv = _connect_argv(
        cmd,
        port,
        ca=ca,
        cert=cert,
        key=key,
        cipher=cipher,
        servername=servername,
        renegotiate=renegotiate,
        send=send,
        until=until,
        idle_timeout=idle_timeout,
        extra=extra,
    )
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return ConnectResult(
        proc.returncode, proc.stdout, proc.stderr, parse_connect_output(proc.stdout)
    )


def start_hsmtls_connect(cmd: Sequence[str], port: int, **kwargs) -> Monitored:
    """Like hsmtls_connect, but returns at once: for tests that must feed s_server's
    stdin (a server-initiated renegotiation) while the client runs."""
    argv = _connect_argv(cmd, port, **kwargs)
    return Monitored(argv, name="hsmtls connect")


def _connect_argv(
    cmd,
    port,
    *,
    ca,
    cert=None,
    key=None,
    cipher=None,
    servername="localhost",
    renegotiate=False,
    send=None,
    until=None,
    idle_timeout=None,
    extra=(),
):
    argv = [*cmd, "connect", f"{LOCALHOST}:{port}", "--ca", str(ca)]
    if cert is not None:
        argv += ["--cert", str(cert), "--key", str(key)]
    if cipher:
        argv += ["--cipher", cipher]
    if servername:
        argv += ["--servername", servername]
    if renegotiate:
        argv.append("--renegotiate")
    if send is not None:
        argv += ["--send", send]
    if until is not None:
        argv += ["--until", until]
    if idle_timeout is not None:
        argv += ["--idle-timeout", str(idle_timeout)]
    return argv + list(extra)
