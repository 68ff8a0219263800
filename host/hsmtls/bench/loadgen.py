"""A TLS handshake load generator (OpenSSL through Python's ssl), run as its own process.

    python -m hsmtls.bench.loadgen --port P --cafile ca.pem --cipher AES128-GCM-SHA256 \
        --concurrency 8 --duration 5

N threads each open a connection, complete a full TLS 1.2 handshake (no session
reuse), close, and repeat; OpenSSL releases the GIL during the handshake. With
--resume each thread offers its last session (ID or ticket, as the server gave):
resumed handshakes, counted as `resumed`. Prints one JSON object: handshakes,
resumed, errors, handshakes_per_s, p50_ms, p99_ms.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import threading
import time


def _context(cafile: str, cipher: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(cipher)
    ctx.load_verify_locations(cafile)
    return ctx


def run(host: str, port: int, cafile: str, cipher: str, concurrency: int, duration: float,
        warmup: float = 0.5, resume: bool = False) -> dict:
    ctx = _context(cafile, cipher)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = time.perf_counter() + warmup
    stop = start + duration

    resumed = [0]

    def worker() -> None:
        session = None
        while True:
            t0 = time.perf_counter()
            if t0 >= stop:
                return
            try:
                with socket.create_connection((host, port), timeout=30) as raw:
                    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
                        reused = tls.session_reused
                        if resume:
                            session = tls.session
                t1 = time.perf_counter()
                if t0 >= start and t1 <= stop:
                    with lock:
                        latencies.append(t1 - t0)
                        resumed[0] += reused
            except (OSError, ssl.SSLError) as e:
                with lock:
                    errors.append(str(e)[:200])
                time.sleep(0.01)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + warmup + 60)
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "handshakes": len(latencies),
        "resumed": resumed[0],
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "handshakes_per_s": len(latencies) / duration,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "concurrency": concurrency,
        "cipher": cipher,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--cipher", required=True)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--resume", action="store_true", help="offer each thread's last session: resumed handshakes")
    a = ap.parse_args()
    print(json.dumps(run(a.host, a.port, a.cafile, a.cipher, a.concurrency, a.duration, a.warmup, a.resume)))


if __name__ == "__main__":
    main()
