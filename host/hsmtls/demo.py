"""`hsmtls demo`: the whole handshake on this machine, with nothing configured.

For now (before the token and board issues land) it makes a throwaway PKI, starts our
token-less server with client authentication required, and runs our client through a
mutually authenticated handshake, a client-initiated and a server-initiated
renegotiation, and an echo; then OpenSSL's s_client against the same server when the
`openssl` command is there. Exits non-zero if any step fails.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .client import TLSClient, TLSFailure
from .devpki import DevPKI
from .keys import FileKey
from .server import BackgroundServer, TLSServer
from .tlsconfig import client_config, server_config


def _openssl_s_client(port: int, pki: DevPKI, timeout: float = 20.0) -> str:
    """Handshake, send a line, wait for its echo (through a server renegotiation)."""
    proc = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2",
         "-CAfile", str(pki.ca_cert), "-cert", str(pki.client_cert),
         "-key", str(pki.client_key), "-servername", "localhost"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            lines.append(line)
            if line.startswith("---") and any("Verify return code" in x for x in lines) and proc.stdin:
                if not any("from openssl" in x for x in lines[:-1]):
                    proc.stdin.write(b"from openssl\n")
                    proc.stdin.flush()
            if line.strip() == "from openssl" or time.monotonic() > deadline:
                break
    finally:
        proc.kill()
        proc.wait()
    return "".join(lines)


def run_demo(echo: Callable[[str], None] = print) -> int:
    failures = 0
    with tempfile.TemporaryDirectory(prefix="hsmtls-demo-") as tmp:
        t0 = time.perf_counter()
        pki = DevPKI(Path(tmp))
        echo(f"[host] throwaway PKI in {tmp} ({(time.perf_counter() - t0) * 1000:.0f} ms)")
        log: list[str] = []
        config = server_config(str(pki.server_cert), str(pki.ca_cert), "require")
        server = TLSServer(config, FileKey(str(pki.server_key)), renegotiate=True, out=log.append)
        with BackgroundServer(server) as bg:
            echo(f"[host] server on 127.0.0.1:{bg.port}, key: {server.key.description}, client auth required")
            cc = client_config(str(pki.ca_cert), "localhost", str(pki.client_cert))
            try:
                t0 = time.perf_counter()
                client = TLSClient("127.0.0.1", bg.port, cc, FileKey(str(pki.client_key)))
                hs = client.handshake()
                ms = (time.perf_counter() - t0) * 1000
                echo(f"[client] steps 1-10: handshake complete in {ms:.1f} ms: {hs.version} {hs.cipher_suite} ems={hs.extended_master_secret} secure_renegotiation={hs.secure_renegotiation}")
                echo(f"[client] server certificate: {hs.peer_subject}")
                t0 = time.perf_counter()
                client.renegotiate()
                echo(f"[client] step 11: client-initiated renegotiation in {(time.perf_counter() - t0) * 1000:.1f} ms")
                client.send(b"hello through hsmtls\n")
                data = client.read(idle_timeout=2.0, until=b"hello through hsmtls\n")
                echo(f"[client] step 10: echoed back: {data.decode().strip()!r}")
                # the server answers a client's first data with a HelloRequest (step 11)
                client.send(b"second line\n")
                data += client.read(idle_timeout=2.0, until=b"second line\n")
                client.wait_handshakes(3)
                echo(f"[client] step 11: server-initiated renegotiations: {client.conn.renegotiation_count - 1}")
                if b"second line" not in data or client.conn.renegotiation_count != 2:
                    failures += 1
                client.close()
            except TLSFailure as e:
                echo(f"[client] FAILED: {e}")
                failures += 1
            if shutil.which("openssl"):
                out = _openssl_s_client(bg.port, pki)
                ok = "Verify return code: 0 (ok)" in out and "from openssl" in out
                suite = next((ln.split("Cipher is")[-1].strip() for ln in out.splitlines() if "Cipher is" in ln), "?")
                echo(f"[openssl] s_client -tls1_2 against our server: {'ok' if ok else 'FAILED'} ({suite})")
                failures += 0 if ok else 1
            time.sleep(0.2)
        for line in log:
            echo(f"[server] {line}")
    echo("demo: " + ("all steps passed" if not failures else f"{failures} step(s) FAILED"))
    return 1 if failures else 0
