"""`hsmtls bench server` and `hsmtls bench premaster`: measured, not asserted.

bench server: full TLS 1.2 handshakes per second and p50/p99 latency at several
concurrencies, all in one run, on a throwaway SoftHSM2 token:
  (a) our server, key in the token, RSA key exchange
  (b) our server, key in the token, ECDHE_RSA
  (c) openssl s_server, key in the same token through libp11, ECDHE_RSA
      (and an RSA key exchange attempt, which fails there)
  (d) openssl s_server, key in a PEM file, RSA key exchange
The load generator is a separate process (hsmtls.loadgen: OpenSSL through Python's
ssl, no session reuse). Figures are reported as ratios (a)/(d) and (b)/(c).

bench premaster: time of premaster decryption for good and bad ciphertexts: in the
token with CKM_RSA_PKCS and with CKM_RSA_X_509 + our depadding, the whole
TokenKey.decrypt_premaster, and a PEM file key through OpenSSL's implicit rejection
(when this OpenSSL has it) and by raw RSA in Python.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ENGINE_PATHS = (
    "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so",
    "/usr/lib/aarch64-linux-gnu/engines-3/pkcs11.so",
    "/usr/lib/engines-3/pkcs11.so",
)
BENCH_PIN = "bench-1234"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


@contextmanager
def _process(args: list[str], port: int, env: dict, log: Path) -> Any:
    # output to a file: a pipe nobody reads fills up and stalls the server
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_port(port, proc, log)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


class BenchSetup:
    """Throwaway token with server and CA keys, token-signed certs, and a PEM twin."""

    def __init__(self, directory: Path) -> None:

        from . import devpki
        from .hsm.keyops import TokenKey
        from .hsm.provision import (
            ca_init,
            init_token,
            issue_localhost_server,
            keygen,
            write_softhsm_conf,
        )
        from .keys import write_private_file

        self.dir = directory
        conf = write_softhsm_conf(directory / "softhsm")
        os.environ["SOFTHSM2_CONF"] = str(conf)
        self.env = dict(os.environ, SOFTHSM2_CONF=str(conf), HSMTLS_PIN=BENCH_PIN)
        # for libp11, which reads it through the URI's pin-source: no PIN on a command line
        self.pin_file = directory / "pin"
        write_private_file(self.pin_file, BENCH_PIN.encode())
        token = init_token("bench", BENCH_PIN, "so-" + BENCH_PIN)
        keygen(token, BENCH_PIN, "server")
        keygen(token, BENCH_PIN, "ca")
        self.key_uri = "pkcs11:token=bench;object=server;type=private"
        ca_key = TokenKey("pkcs11:token=bench;object=ca;type=private", pin=BENCH_PIN, pool_size=1,
                          implicit_rejection=False)
        server_key = TokenKey(self.key_uri, pin=BENCH_PIN, pool_size=1)
        ca = ca_init(ca_key, "CN=bench CA")
        self.ca_pem = directory / "ca.pem"
        devpki.write_cert(self.ca_pem, ca)
        self.token_cert = devpki.write_cert(directory / "server-token.pem",
                                            issue_localhost_server(ca_key, ca, server_key.public_key(), 30))
        pem_key = devpki.new_key()
        self.pem_key = devpki.write_key(directory / "server.key", pem_key)
        self.pem_cert = devpki.write_cert(directory / "server-pem.pem",
                                          issue_localhost_server(ca_key, ca, pem_key.public_key(), 30))
        server_key.close()
        ca_key.close()


def openssl_engine_server_argv(setup: BenchSetup, port: int) -> list[str]:
    """openssl s_server with the token key through libp11; the PIN comes from the
    URI's pin-source (a 0600 file), so it is on no command line `ps` can show."""
    key = f"{setup.key_uri}?pin-source=file:{setup.pin_file}"
    return ["openssl", "s_server", "-quiet", "-accept", f"127.0.0.1:{port}", "-tls1_2", "-engine", "pkcs11",
            "-keyform", "engine", "-key", key, "-cert", str(setup.token_cert), "-naccept", "1000000000"]


def _loadgen(port: int, ca: Path, cipher: str, concurrency: int, duration: float, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "hsmtls.loadgen", "--port", str(port), "--cafile", str(ca), "--cipher", cipher,
         "--concurrency", str(concurrency), "--duration", str(duration)],
        capture_output=True, text=True, env=env, timeout=duration + 120,
    )
    if out.returncode != 0:
        return {"handshakes": 0, "errors": 1, "first_error": out.stderr.strip()[-200:],
                "handshakes_per_s": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan")}
    return json.loads(out.stdout)


def bench_server(concurrencies: list[int], duration: float, workers: int | None,
                 echo: Callable[[str], None]) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="hsmtls-bench-"))
    results: dict[str, dict[int, dict]] = {}
    notes: list[str] = []
    try:
        setup = BenchSetup(tmp)
        env = setup.env
        engine = next((p for p in ENGINE_PATHS if Path(p).exists()), None)
        ours = [sys.executable, "-m", "hsmtls", "serve", "--host", "127.0.0.1", "--cert", str(setup.token_cert),
                "--key", setup.key_uri]
        if workers:
            ours += ["--workers", str(workers)]
        configs: list[tuple[str, str, Callable[[int], list[str]] | None]] = [
            ("a", "AES128-GCM-SHA256",
             lambda p: ours + ["--port", str(p), "--cipher", "TLS_RSA_WITH_AES_128_GCM_SHA256"]),
            ("b", "ECDHE-RSA-AES128-GCM-SHA256",
             lambda p: ours + ["--port", str(p), "--cipher", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]),
            ("c", "ECDHE-RSA-AES128-GCM-SHA256", (lambda p: openssl_engine_server_argv(setup, p)) if engine else None),
            ("d", "AES128-GCM-SHA256",
             lambda p: ["openssl", "s_server", "-quiet", "-accept", f"127.0.0.1:{p}", "-tls1_2",
                        "-key", str(setup.pem_key), "-cert", str(setup.pem_cert), "-naccept", "1000000000"]),
        ]
        from .progress import steps

        cells = sum(len(concurrencies) for _, _, make in configs if make is not None)
        with steps(cells, "bench server") as progress:
            for name, cipher, make in configs:
                if make is None:
                    notes.append("(c) skipped: libp11's OpenSSL engine is not installed (apt install libengine-pkcs11-openssl)")
                    continue
                port = _free_port()
                with _process(make(port), port, env, tmp / f"server-{name}.log"):
                    if name == "c":  # RSA key exchange through libp11: expected to fail
                        r = _loadgen(port, setup.ca_pem, "AES128-GCM-SHA256", 1, 1.0, env)
                        ok = r["handshakes"] > 0
                        notes.append(
                            "(c) RSA key exchange through libp11: "
                            + ("succeeded (!)" if ok else f"fails as expected ({r['errors']} errors: {r['first_error']})")
                        )
                    results[name] = {}
                    for c in concurrencies:
                        r = _loadgen(port, setup.ca_pem, cipher, c, duration, env)
                        results[name][c] = r
                        progress(f"({name}) c={c}")
                        echo(f"  ({name}) {cipher:30s} c={c:<3d} {r['handshakes_per_s']:8.1f} hs/s  "
                             f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  errors {r['errors']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"results": results, "notes": notes}


def print_server_table(data: dict, echo: Callable[[str], None]) -> None:
    res = data["results"]
    labels = {
        "a": "(a) hsmtls, token key, RSA kx",
        "b": "(b) hsmtls, token key, ECDHE_RSA",
        "c": "(c) openssl s_server + libp11, ECDHE_RSA",
        "d": "(d) openssl s_server, PEM key, RSA kx",
    }
    concs = sorted({c for r in res.values() for c in r})
    echo("")
    echo("| server | " + " | ".join(f"c={c} hs/s (p50/p99 ms)" for c in concs) + " |")
    echo("|---|" + "---|" * len(concs))
    for k, label in labels.items():
        if k not in res:
            continue
        cells = [f"{res[k][c]['handshakes_per_s']:.0f} ({res[k][c]['p50_ms']:.1f}/{res[k][c]['p99_ms']:.1f})"
                 for c in concs]
        echo(f"| {label} | " + " | ".join(cells) + " |")
    for num, den in (("a", "d"), ("b", "c")):
        if num in res and den in res:
            ratios = []
            for c in concs:
                d = res[den][c]["handshakes_per_s"]
                ratios.append(f"c={c}: {res[num][c]['handshakes_per_s'] / d:.2f}x" if d else f"c={c}: n/a")
            echo(f"({num})/({den}) throughput: " + ", ".join(ratios))
    for note in data["notes"]:
        echo(note)


def _bad_and_good(k: int, n: int, e: int) -> tuple[bytes, bytes]:
    def encrypt(em: bytes) -> bytes:
        return pow(int.from_bytes(em, "big"), e, n).to_bytes(k, "big")

    ps = bytes([0x5A]) * (k - 51)
    return (encrypt(b"\x00\x02" + ps + b"\x00" + b"\x03\x03" + bytes(46)),
            encrypt(b"\x00\x01" + ps + b"\x00" + b"\x03\x03" + bytes(46)))


def _time_good_bad(name: str, fn: Callable[[bytes], Any], good: bytes, bad: bytes, rounds: int,
                   echo: Callable[[str], None]) -> dict[str, float]:
    times: dict[str, list[float]] = {"good": [], "bad": []}
    for i in range(rounds):  # interleaved, so drift hits both alike
        for label, ct in (("good", good), ("bad", bad)) if i % 2 else (("bad", bad), ("good", good)):
            t0 = time.perf_counter_ns()
            fn(ct)
            times[label].append((time.perf_counter_ns() - t0) / 1000)
    row = {label: statistics.median(v) for label, v in times.items()}
    row["bad_minus_good_us"] = row["bad"] - row["good"]
    echo(f"  {name:36s} median good {row['good']:8.1f} us  bad {row['bad']:8.1f} us  "
         f"difference {row['bad_minus_good_us']:+7.1f} us")
    return row


def bench_premaster(rounds: int, echo: Callable[[str], None]) -> dict:
    """Good vs bad ciphertexts: through CKM_RSA_PKCS and CKM_RSA_X_509 in SoftHSM2, the
    whole TokenKey.decrypt_premaster (with the implicit-rejection HMAC), and a PEM
    file key's two ways (OpenSSL's implicit rejection, raw RSA in Python)."""
    from pkcs11 import Mechanism
    from pkcs11 import exceptions as p11e

    from . import devpki
    from .hsm.keyops import TokenKey
    from .keys import FileKey, depad_premaster

    tmp = Path(tempfile.mkdtemp(prefix="hsmtls-bench-"))
    try:
        from .hsm.provision import init_token, keygen, write_softhsm_conf

        os.environ["SOFTHSM2_CONF"] = str(write_softhsm_conf(tmp / "softhsm"))
        token = init_token("bench", BENCH_PIN, "so-" + BENCH_PIN)
        keygen(token, BENCH_PIN, "server")
        key = TokenKey("pkcs11:token=bench;object=server;type=private", pin=BENCH_PIN, pool_size=1)
        k = key.k
        good, bad = _bad_and_good(k, key.n, key.e)
        out: dict[str, dict[str, float]] = {}
        with key.pool.session() as w:
            priv = key._private(w)

            def pkcs(ct: bytes) -> None:
                try:
                    priv.decrypt(ct, mechanism=Mechanism.RSA_PKCS)
                except p11e.PKCS11Error:
                    pass

            def raw(ct: bytes) -> None:
                depad_premaster(bytes(priv.decrypt(ct, mechanism=Mechanism.RSA_X_509)), k)

            for name, fn in (("CKM_RSA_PKCS", pkcs), ("CKM_RSA_X_509+depad", raw)):
                out[name] = _time_good_bad(name, fn, good, bad, rounds, echo)
        out["TokenKey.decrypt_premaster"] = _time_good_bad("TokenKey.decrypt_premaster", key.decrypt_premaster,
                                                           good, bad, rounds, echo)
        # ciphertexts the host refuses before the token (public: their sender knows)
        malformed = {"= n": key.n.to_bytes(k, "big"), "k-1 bytes": good[1:], "all zeros": bytes(k)}
        row = {}
        for name, ct in malformed.items():
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter_ns()
                key.decrypt_premaster(ct)
                times.append((time.perf_counter_ns() - t0) / 1000)
            row[name] = statistics.median(times)
        out["TokenKey.decrypt_premaster malformed"] = row
        echo("  TokenKey, malformed (no token call)  median " + ", ".join(f"{n} {t:.1f} us" for n, t in row.items())
             + f"; logins {key.pool.logins}, token errors {key.decrypt_errors.count}")
        key.close()
        file_key = FileKey(str(devpki.write_key(tmp / "server.key", devpki.new_key())))
        good, bad = _bad_and_good(file_key.k, file_key.n, file_key.e)
        ways = [(False, "file key, raw RSA in Python")]
        if file_key.openssl_rejects_implicitly:
            ways.insert(0, (True, "file key, OpenSSL implicit rejection"))
        else:
            echo("  (this OpenSSL has no implicit rejection: file keys use raw RSA in Python)")
        for openssl, name in ways:
            file_key.openssl_rejects_implicitly = openssl
            out[name] = _time_good_bad(name, file_key.decrypt_premaster, good, bad, rounds, echo)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
