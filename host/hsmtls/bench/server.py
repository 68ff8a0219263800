"""`hsmtls bench server` and `hsmtls bench premaster`: measured, not asserted.

bench server: full TLS 1.2 handshakes per second and p50/p99 latency at several
concurrencies, all in one run, on a throwaway SoftHSM2 token, RSA key exchange and
ECDHE_RSA each: our server with a PEM key and with the token key; nginx (nginx.py)
with a PEM key and with the token key through libp11, as many workers as ours; and
`openssl s_server` (one connection at a time) with a PEM key and through libp11. A
server that cannot serve a cell says why (its log's error) instead of a figure. Our
rows are also given as a ratio to nginx with a PEM key, same suite, same run. The load
generator is a separate process (hsmtls.bench.loadgen: OpenSSL through Python's ssl, no
session reuse). With --workers-sweep, our server alone at several worker counts.

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
from dataclasses import dataclass
from functools import partial
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

        from hsmtls import devpki
        from hsmtls.hsm.keyops import TokenKey
        from hsmtls.hsm.provision import (
            ca_init,
            init_token,
            issue_localhost_server,
            keygen,
            write_softhsm_conf,
        )
        from hsmtls.keys import write_private_file

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
        from hsmtls.hsm.tickets import make_ticket_key

        make_ticket_key(token, BENCH_PIN, "server")  # the resumed rows' tickets, sealed in the token
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


def _loadgen(port: int, ca: Path, cipher: str, concurrency: int, duration: float, env: dict,
             resume: bool = False) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "hsmtls.bench.loadgen", "--port", str(port), "--cafile", str(ca), "--cipher", cipher,
         "--concurrency", str(concurrency), "--duration", str(duration), *(["--resume"] if resume else [])],
        capture_output=True, text=True, env=env, timeout=duration + 120,
    )
    if out.returncode != 0:
        return {"handshakes": 0, "errors": 1, "first_error": out.stderr.strip()[-200:],
                "handshakes_per_s": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan")}
    return json.loads(out.stdout)


# (label, the suite as the load generator offers it, as our server takes it)
SUITES = {
    "rsa": ("RSA kx", "AES128-GCM-SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256"),
    "ecdhe": ("ECDHE_RSA", "ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    # resumed handshakes (tickets; the load generator offers each thread's last session)
    "resumed": ("ECDHE_RSA resumed", "ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
}


@dataclass
class Row:
    """One server in one configuration: a row of the table, a cell per concurrency."""

    id: str  # "<server>-<key>-<suite>", e.g. "nginx-pem-rsa"
    label: str
    suite: str  # a SUITES key
    start: Callable[[int, Path], Any]  # (port, row's directory) -> context manager running the server
    log: str = "server.log"  # in the row's directory: where its failure reason is read


def _argv_row(row_id: str, label: str, suite: str, make: Callable[[int], list[str]], env: dict) -> Row:
    return Row(row_id, label, suite, lambda port, d: _process(make(port), port, env, d / "server.log"))


def _with_port(argv: list[str], port: int) -> list[str]:
    return [*argv, "--port", str(port)]


def _hsmtls_rows(setup: BenchSetup, workers: int) -> list[Row]:
    rows = []
    for key, cert, spec in (("PEM", setup.pem_cert, str(setup.pem_key)), ("token", setup.token_cert, setup.key_uri)):
        for suite, (name, _, iana) in SUITES.items():
            argv = [sys.executable, "-m", "hsmtls", "serve", "--host", "127.0.0.1", "--cert", str(cert),
                    "--key", spec, "--workers", str(workers), "--cipher", iana,
                    *(["--tickets"] if suite == "resumed" else ["--session-cache", "0"])]
            rows.append(_argv_row(f"hsmtls-{key.lower()}-{suite}", f"hsmtls, {key} key, {name}", suite,
                                  partial(_with_port, argv), setup.env))
    return rows


def _nginx_rows(setup: BenchSetup, workers: int, nginx: str, engine: bool) -> list[Row]:
    from hsmtls.bench.nginx import nginx_argv, nginx_conf

    keys = [("pem", "PEM key", setup.pem_cert, str(setup.pem_key))]
    if engine:
        keys.append(("libp11", "token key via libp11", setup.token_cert,
                     f"engine:pkcs11:{setup.key_uri}?pin-source=file:{setup.pin_file}"))
    rows = []
    for key, key_label, cert, spec in keys:
        for suite, (name, cipher, _) in SUITES.items():
            def start(port: int, d: Path, cert=cert, spec=spec, cipher=cipher, key=key, suite=suite) -> Any:
                (d / "nginx.conf").write_text(nginx_conf(d, port, workers, cert, spec, cipher,
                                                         engine=key == "libp11", root=os.geteuid() == 0,
                                                         resume=suite == "resumed"))
                return _process(nginx_argv(nginx, d), port, setup.env, d / "stderr.log")

            rows.append(Row(f"nginx-{key}-{suite}", f"nginx, {key_label}, {name}", suite, start, log="error.log"))
    return rows


def _run_rows(rows: list[Row], concurrencies: list[int], duration: float, setup: BenchSetup, tmp: Path,
              label: str, echo: Callable[[str], None]) -> dict[str, dict]:
    """Each row's cells; a row whose server does not start, or whose cell completes no
    handshake, is not measured further: its result says why ("failed")."""
    from hsmtls.bench.nginx import failure_reason
    from hsmtls.progress import steps

    out: dict[str, dict] = {}
    with steps(len(rows) * len(concurrencies), label) as progress:
        for row in rows:
            _, cipher, _ = SUITES[row.suite]
            d = tmp / row.id
            d.mkdir()
            cells: dict[int, dict] = {}
            failed = None
            port = _free_port()
            exited = None
            try:
                with row.start(port, d) as proc:
                    for c in concurrencies:
                        r = _loadgen(port, setup.ca_pem, cipher, c, duration, setup.env, resume=row.suite == "resumed")
                        cells[c] = r
                        progress(f"{row.id} c={c}")
                        echo(f"  {row.label:42s} c={c:<3d} {r['handshakes_per_s']:8.1f} hs/s  "
                             f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  errors {r['errors']}"
                             + (f"  resumed {r.get('resumed', 0)}/{r['handshakes']}" if row.suite == "resumed" else ""))
                        if r["handshakes"] == 0:
                            failed = r["first_error"] or "no handshake completed"
                            break
                    exited = proc.poll()
            except RuntimeError as e:  # the server did not start
                failed = str(e)
            if failed is not None:
                log = d / row.log
                text = log.read_text(errors="replace") if log.exists() else ""
                failed = failure_reason(text) or failed.strip().splitlines()[-1][:200]
                if exited is not None:  # it died under load: its last words say more than the client's
                    last = text.strip().splitlines()[-1][:200] if text.strip() else "nothing logged"
                    failed = f"server exited ({exited}) mid-run: {last}"
                echo(f"  {row.label:42s} fails: {failed}")
            out[row.id] = {"label": row.label, "suite": row.suite, "cells": cells, "failed": failed}
    return out


def bench_server(concurrencies: list[int], duration: float, workers: int | None,
                 echo: Callable[[str], None]) -> dict:
    """Ours (PEM key and token key) beside nginx (PEM key, token key via libp11) and
    `openssl s_server` (PEM key, token key via libp11), each suite, in one run."""
    from hsmtls.bench.nginx import MISSING, nginx_path
    from hsmtls.workers import default_workers

    n = workers or default_workers()
    tmp = Path(tempfile.mkdtemp(prefix="hsmtls-bench-"))
    notes: list[str] = []
    try:
        setup = BenchSetup(tmp)
        engine = next((p for p in ENGINE_PATHS if Path(p).exists()), None)
        if not engine:
            notes.append("libp11 rows skipped: libp11's OpenSSL engine is not installed "
                         "(apt install libengine-pkcs11-openssl)")
        rows = _hsmtls_rows(setup, n)
        nginx = nginx_path()
        if nginx:
            rows += _nginx_rows(setup, n, nginx, engine is not None)
        else:
            notes.append(MISSING)
        if engine:
            rows += [_argv_row(f"s_server-libp11-{suite}", f"openssl s_server + libp11, {name}", suite,
                               lambda p: openssl_engine_server_argv(setup, p), setup.env)
                     for suite, (name, _, _) in SUITES.items() if suite != "resumed"]
        rows.append(_argv_row(
            "s_server-pem-rsa", "openssl s_server, PEM key, RSA kx", "rsa",
            lambda p: ["openssl", "s_server", "-quiet", "-accept", f"127.0.0.1:{p}", "-tls1_2",
                       "-key", str(setup.pem_key), "-cert", str(setup.pem_cert), "-naccept", "1000000000"],
            setup.env))
        for note in notes:
            echo(note)
        results = _run_rows(rows, concurrencies, duration, setup, tmp, "bench server", echo)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"workers": {"hsmtls": n, "nginx": n, "openssl s_server": 1}, "results": results, "notes": notes}


def bench_workers_sweep(worker_counts: list[int], concurrencies: list[int], duration: float,
                        echo: Callable[[str], None]) -> dict:
    """Our server alone at each worker count, PEM key and token key, both suites: for sizing."""
    tmp = Path(tempfile.mkdtemp(prefix="hsmtls-bench-"))
    sweep: dict[int, dict] = {}
    try:
        setup = BenchSetup(tmp)
        for n in worker_counts:
            echo(f"workers={n}")
            d = tmp / f"workers-{n}"
            d.mkdir()
            sweep[n] = _run_rows(_hsmtls_rows(setup, n), concurrencies, duration, setup, d, f"workers={n}", echo)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"sweep": sweep}


def _cell(r: dict) -> str:
    return f"{r['handshakes_per_s']:.0f} ({r['p50_ms']:.1f}/{r['p99_ms']:.1f})"


def print_server_table(data: dict, echo: Callable[[str], None]) -> None:
    """One row per server; ours also as a ratio to nginx with a PEM key, same suite."""
    res = data["results"]
    concs = sorted({c for r in res.values() for c in r["cells"]})
    w = data["workers"]
    echo("")
    echo(f"workers: hsmtls {w['hsmtls']}, nginx {w['nginx']} (worker_processes), "
         "openssl s_server 1 (one connection at a time)")
    echo("| server | " + " | ".join(f"c={c} hs/s (p50/p99 ms)" for c in concs)
         + " | " + " | ".join(f"÷ nginx PEM, c={c}" for c in concs) + " |")
    echo("|---|" + "---|" * 2 * len(concs))
    for row_id, row in res.items():
        cells = [_cell(row["cells"][c]) if row["cells"].get(c, {}).get("handshakes") else "" for c in concs]
        if row["failed"] is not None:
            i = cells.index("") if "" in cells else len(cells) - 1
            cells[i] = f"fails: {row['failed']}"
            cells[i + 1:] = ["–"] * (len(cells) - i - 1)
        ratios = ["" for _ in concs]
        nginx_pem = res.get(f"nginx-pem-{row['suite']}")
        if row_id.startswith("hsmtls-") and nginx_pem:
            for i, c in enumerate(concs):
                mine, theirs = row["cells"].get(c), nginx_pem["cells"].get(c)
                if mine and theirs and theirs["handshakes_per_s"]:
                    ratios[i] = f"{mine['handshakes_per_s'] / theirs['handshakes_per_s']:.2f}×"
        echo(f"| {row['label']} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    for note in data["notes"]:
        echo(note)


def print_sweep_table(data: dict, echo: Callable[[str], None]) -> None:
    """hs/s per worker count, one row per key and suite."""
    sweep = data["sweep"]
    first = next(iter(sweep.values()))
    concs = sorted({c for r in first.values() for c in r["cells"]})
    per = ", ".join(f"c={c}" for c in concs)
    echo("")
    echo("| hsmtls serve, hs/s at " + per + " | " + " | ".join(f"--workers {n}" for n in sweep) + " |")
    echo("|---|" + "---|" * len(sweep))
    for row_id, row in first.items():
        cells = []
        for rows in sweep.values():
            r = rows[row_id]
            cells.append(" / ".join(f"{r['cells'][c]['handshakes_per_s']:.0f}"
                                    if r["cells"].get(c, {}).get("handshakes") else "fails" for c in concs))
        echo(f"| {row['label'].removeprefix('hsmtls, ')} | " + " | ".join(cells) + " |")
    for n, rows in sweep.items():
        for row in rows.values():
            if row["failed"] is not None:
                echo(f"--workers {n}, {row['label']}: fails: {row['failed']}")


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

    from hsmtls import devpki
    from hsmtls.hsm.keyops import TokenKey
    from hsmtls.keys import FileKey
    from tlscore.pkcs1 import depad_premaster

    tmp = Path(tempfile.mkdtemp(prefix="hsmtls-bench-"))
    try:
        from hsmtls.hsm.provision import init_token, keygen, write_softhsm_conf

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
