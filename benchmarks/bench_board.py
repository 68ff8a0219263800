"""Board handshake benchmark (not a test): our firmware on the emulated board against
MicroPython's own `tls` module (mbedTLS, in C) on the same interpreter, same server.

    python benchmarks/bench_board.py [-n 10] [--client-auth]      (also: hsmtls board bench)

Both clients talk to one `openssl s_server -tls1_2 -cipher AES128-GCM-SHA256` with an
RSA-2048 chain on 127.0.0.1. What differs, and is reported rather than hidden:
* ours runs over the serial link (pty, framing, acks) and the host bridge; mbedTLS
  uses a socket directly (TCP_NODELAY set with setsockopt(6, 1, 1));
* ours negotiates extended_master_secret and secure renegotiation; the unix port's
  mbedTLS is built without EMS, ETM and renegotiation;
* "board compute" is the time the board spent inside the engine (sum of steps).
Then the smallest -X heapsize at which our handshake still completes, with modules
precompiled by mpy-cross (on a real board they would be frozen and cost no RAM, so
the live session heap above the code is also reported).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from hsmtls.board.bridge import Bridge
from hsmtls.board.emulator import EmulatedBoard, micropython_binary
from hsmtls.board.flash import provision
from hsmtls.board.hostlink import HostLink
from hsmtls.devpki import DevPKI

MBEDTLS_SCRIPT = """
import socket, tls, time, gc, sys
ca = open("ca.der", "rb").read()
port = int(sys.argv[1]); n = int(sys.argv[2]); auth = sys.argv[3] == "1"
ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(ca)
if auth:
    ctx.load_cert_chain(open("client.der", "rb").read(), open("client_key.der", "rb").read())
ts = []
peak = 0
for i in range(n):
    s = socket.socket()
    s.setsockopt(6, 1, 1)
    s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    t = time.ticks_us()
    ss = ctx.wrap_socket(s, server_hostname="localhost")
    ts.append(time.ticks_diff(time.ticks_us(), t) / 1000)
    peak = max(peak, gc.mem_alloc())
    ss.close()
print("times", " ".join("%.2f" % x for x in ts))
print("gcpeak", peak)
"""


def _openssl(pki: DevPKI, client_auth: bool) -> tuple[subprocess.Popen, int]:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    args = ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-tls1_2", "-cipher", "AES128-GCM-SHA256",
            "-cert", str(pki.server_cert), "-key", str(pki.server_key), "-quiet"]
    if client_auth:
        args += ["-Verify", "1", "-CAfile", str(pki.ca_cert)]
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return p, port
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("openssl s_server did not start")


def ours(flash: Path, port: int, n: int, client_auth: bool, heap: str, mpy: bool = True,
         measure_heap: bool = True) -> dict:
    walls, board_ms, compute, peaks, bases = [], [], [], [], []
    with EmulatedBoard(flash, heap=heap, mpy=mpy) as b, HostLink(b.tty) as link:
        link.connect()
        br = Bridge(link, ("127.0.0.1", port))
        for _ in range(n):
            t = time.perf_counter()
            r = br.run_handshake({"server_name": "localhost", "client_auth": client_auth,
                                  "suites": ["TLS_RSA_WITH_AES_128_GCM_SHA256"],
                                  "measure_heap": measure_heap}, timeout=30)
            walls.append((time.perf_counter() - t) * 1000)
            if not r.get("ok"):
                return {"ok": False, "reason": r.get("reason")}
            board_ms.append(r["handshake_ms"])
            compute.append(sum(ms for name, ms in r["steps"]))
            peaks.append(r.get("heap_peak") or 0)
            bases.append(r.get("heap_base") or 0)
    return {"ok": True, "wall_ms": statistics.median(walls), "board_ms": statistics.median(board_ms),
            "compute_ms": statistics.median(compute), "heap_peak": max(peaks), "heap_base": min(bases)}


def mbedtls(pki: DevPKI, port: int, n: int, client_auth: bool) -> dict:
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509 import load_pem_x509_certificate

    with tempfile.TemporaryDirectory() as d:
        dd = Path(d)
        (dd / "ca.der").write_bytes(load_pem_x509_certificate(pki.ca_cert.read_bytes()).public_bytes(serialization.Encoding.DER))
        (dd / "client.der").write_bytes(load_pem_x509_certificate(pki.client_cert.read_bytes()).public_bytes(serialization.Encoding.DER))
        key = serialization.load_pem_private_key(pki.client_key.read_bytes(), None)
        (dd / "client_key.der").write_bytes(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
        (dd / "m.py").write_text(MBEDTLS_SCRIPT)
        out = subprocess.run([micropython_binary(), "m.py", str(port), str(n), "1" if client_auth else "0"],
                             cwd=d, capture_output=True, text=True, timeout=120)
    if out.returncode:
        return {"ok": False, "reason": out.stdout + out.stderr}
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    times = [float(x) for x in lines["times"].split()]
    return {"ok": True, "wall_ms": statistics.median(times), "gc_peak": int(lines["gcpeak"])}


def smallest_heap(flash: Path, port: int, client_auth: bool) -> int | None:
    lo, hi = 64, 512  # KiB
    if not ours(flash, port, 1, client_auth, f"{hi}k").get("ok"):
        return None
    while hi - lo > 4:
        mid = (lo + hi) // 2
        try:
            ok = ours(flash, port, 1, client_auth, f"{mid}k").get("ok")
        except Exception:
            ok = False
        if ok:
            hi = mid
        else:
            lo = mid
    return hi


def run(n: int = 10, client_auth: bool = False, echo=print) -> dict:
    if shutil.which("openssl") is None:
        raise SystemExit("openssl is needed for the benchmark server")
    with tempfile.TemporaryDirectory() as d:
        pki = DevPKI(Path(d) / "pki")
        flash = provision(Path(d) / "flash", pki.ca_cert, pki.client_cert, pki.client_key)
        srv, port = _openssl(pki, client_auth)
        try:
            a = ours(flash, port, n, client_auth, "256k")
            fast = ours(flash, port, n, client_auth, "256k", measure_heap=False)
            b = mbedtls(pki, port, n, client_auth)
            heap = smallest_heap(flash, port, client_auth)
        finally:
            srv.kill()
    res = {"ours": a, "ours_no_heap_probe": fast, "mbedtls": b, "smallest_heap_kib": heap}
    echo(f"client auth: {'yes' if client_auth else 'no'}; {n} handshakes each; openssl s_server, RSA-2048, AES128-GCM-SHA256")
    if a.get("ok") and b.get("ok"):
        echo(f"ours (emulated board, serial link + bridge): median {a['wall_ms']:.1f} ms host wall, "
             f"{a['board_ms']} ms board-side, {a['compute_ms']} ms in the engine")
        if fast.get("ok"):
            echo(f"ours without the per-step gc.collect() heap probe: median {fast['wall_ms']:.1f} ms host wall, "
                 f"{fast['board_ms']} ms board-side ({fast['wall_ms'] / b['wall_ms']:.1f}x mbedTLS)")
        echo(f"MicroPython tls (mbedTLS, direct socket):   median {b['wall_ms']:.2f} ms")
        echo(f"ratio ours/mbedTLS: wall {a['wall_ms'] / b['wall_ms']:.1f}x, engine compute {a['compute_ms'] / b['wall_ms']:.1f}x")
        echo(f"heap: ours live peak {a['heap_peak']} B (code and state before the session {a['heap_base']} B, "
             f"so {a['heap_peak'] - a['heap_base']} B for the handshake); mbedTLS GC-heap peak {b['gc_peak']} B "
             "(its ~30 KB of C malloc is outside the GC heap)")
    else:
        echo(f"failed: ours={a} mbedtls={b}")
    echo(f"smallest -X heapsize that completes (mpy-cross modules): {heap} KiB")
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--client-auth", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    run(args.n, args.client_auth)
