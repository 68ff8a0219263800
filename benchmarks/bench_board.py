"""Board handshake benchmark (not a test): our firmware on the emulated board against
MicroPython's own `tls` module (mbedTLS, in C) on the same interpreter, same server.

    python benchmarks/bench_board.py [-n 10] [--client-auth [--key-type rsa|ec]] [--no-heap] [--json F]
                                     [--machine unix64|unix32]
    (also: hsmtls bench board)

Every client talks to one `openssl s_server -tls1_2 -cipher AES128-GCM-SHA256` with an
RSA-2048 chain on 127.0.0.1, in the same run. The figure compared is the handshake as
the client sees it once TCP is up: from its ClientHello to the server's Finished
checked. For mbedTLS that is `wrap_socket()` on a connected socket (TCP_NODELAY set);
for ours, the board's own clock from ClientHello to HandshakeComplete (RESULT's
handshake_us). The host's wall time for the whole session (RUN, TCP connect, handshake,
RESULT) is reported beside it. CPython's `ssl` (OpenSSL in C) is measured too: its
handshake time is almost all server and network, the floor no client gets under.

Ours runs in two states, both reported:
* cold: every step, every time (signature cache and prepared premaster off): a board
  meeting this server for the first time;
* warm: the board has met the server before and been idle since (a pause between
  handshakes): the server certificate's signature is in its SignatureCache and step
  4's RSA encryption was done while idle (PreparedPremaster). The rest of the chain
  check (dates, name, usage) and everything else runs as in cold.
and over two serial profiles: the classic ESP32's UART (the relay drops what overflows
a 260-byte ring, so the host keeps at most 210 bytes in flight) and native USB (the
pty holds the host back; the board asks for a wide window).

What else differs, and is reported rather than hidden: ours crosses the serial link
(framing, CRC, acks) and the bridge; mbedTLS uses a socket directly. So mbedTLS is also
run on the board over the same link and bridge (RUN {"engine": "mbedtls"}: the
firmware hands MicroPython's `tls` a stream that is the link's TLS stream), over each
serial profile: the ratio against that row is the TLS client alone, the link's cost
paid on both sides. Ours negotiates extended_master_secret and secure renegotiation;
the unix port's mbedTLS is built without EMS, ETM and renegotiation.

Then the smallest -X heapsize at which our handshake still completes: with the modules
precompiled by mpy-cross and loaded into the heap (a board's filesystem), and with them
in an emulated ROMFS partition executed in place (what a production ESP32 image does
with frozen modules or ROMFS: code in flash, not RAM).

--machine unix32 runs all of it on the 32-bit image built from MicroPython's sources
with the firmware frozen in (`hsmtls board build`; mbedTLS is that image's `tls`), and
the smallest heap is then searched for the three handshakes a board makes: plain, with
an ECDSA P-256 client key and with an RSA-2048 client key (the firmware is frozen:
there is no .mpy or ROMFS variant to compare).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from hsmtls.board.bridge import Bridge
from hsmtls.board.emulator import EmulatedBoard, default_machine, micropython_binary
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
print("times", " ".join("%.3f" % x for x in ts))
print("gcpeak", peak)
"""

SUITE = "TLS_RSA_WITH_AES_128_GCM_SHA256"
IDLE_S = 0.05  # warm: the board's idle time between connections
PROFILES = {"uart": 260, "usb": None}  # relay ring: classic ESP32 UART0, native USB


def _free_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _openssl(pki: DevPKI, client_auth: bool) -> tuple[subprocess.Popen, int]:
    import socket

    port = _free_port()
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


def _rom_supported() -> bool:
    return "rom" in inspect.signature(EmulatedBoard).parameters


def ours(flash: Path, port: int, n: int, client_auth: bool, heap: str, *, measure_heap: bool = False,
         rom: bool = False, machine: str | None = None) -> dict:
    """n cold handshakes on one emulated board with `heap` (-X heapsize), over the UART
    profile: whether they complete (smallest_heap) and their live heap (measure_heap)."""
    peaks, bases = [], []
    kw: dict = {"rom": True} if rom else {"mpy": True}
    kw["machine"] = machine
    opts = {"server_name": "localhost", "client_auth": client_auth, "suites": [SUITE],
            "measure_heap": measure_heap, "signature_cache": False, "prepare_premaster": False, "resume": False}
    with EmulatedBoard(flash, heap=heap, **kw) as b, HostLink(b.tty) as link:
        link.connect()
        br = Bridge(link, ("127.0.0.1", port))
        for _ in range(n):
            r = br.run_handshake(dict(opts), timeout=60)
            if not r.get("ok"):
                return {"ok": False, "reason": r.get("reason")}
            peaks.append(r.get("heap_peak") or 0)
            bases.append(r.get("heap_base") or 0)
    return {"ok": True, "heap_peak": max(peaks), "heap_base": min(bases), "n": n}


def _summary(runs: list[dict], wall: list[float], window: int, rx_dropped: int) -> dict:
    hs = [r["handshake_us"] / 1000 for r in runs]
    out = {"ok": True, "handshake_ms": statistics.median(hs), "wall_ms": statistics.median(wall),
           "window": window, "rx_dropped": rx_dropped, "n": len(hs), "all_ms": [round(x, 3) for x in hs]}
    if runs and "steps" in runs[0] and runs[0].get("engine") != "mbedtls":
        out["compute_ms"] = round(statistics.median(sum(ms for _, ms in r["steps"]) for r in runs), 2)
        out["cached_signatures"] = sum(bool(r.get("cached_signatures")) for r in runs)
        out["prepared_premaster"] = sum(bool(r.get("prepared_premaster")) for r in runs)
    return out


def link_rounds(flash: Path, port: int, n: int, client_auth: bool, ring: int | None = 260,
                machine: str | None = None) -> dict:
    """n rounds on one emulated board over one serial profile, each round one handshake
    of every kind in turn: mbedTLS on the board, ours cold, then ours warm after the
    idle pause. Interleaved, so that what the machine does meanwhile
    falls on all of them alike; each round's ours/mbedTLS is a paired ratio."""
    # full handshakes only: a board resumes its last session unless told not to
    base = {"server_name": "localhost", "client_auth": client_auth, "suites": [SUITE], "measure_heap": False,
            "resume": False}
    kinds = {
        "mbedtls": {"engine": "mbedtls", "server_name": "localhost", "client_auth": client_auth},
        "cold": dict(base, signature_cache=False, prepare_premaster=False),
        "warm": base,
    }
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    walls: dict[str, list[float]] = {k: [] for k in kinds}
    with EmulatedBoard(flash, heap="256k", rx_ring=ring, mpy=True, machine=machine) as b, HostLink(b.tty) as link:
        link.connect()
        br = Bridge(link, ("127.0.0.1", port))
        time.sleep(IDLE_S)
        first = br.run_handshake(dict(base), timeout=60)  # the first meeting, which warm remembers
        if not first.get("ok"):
            return {k: {"ok": False, "reason": first.get("reason")} for k in kinds}
        for _ in range(n):
            for kind, opts in kinds.items():
                if kind == "warm":
                    time.sleep(IDLE_S)
                t = time.perf_counter()
                r = br.run_handshake(dict(opts), timeout=60)
                if not r.get("ok"):
                    return {k: {"ok": False, "reason": f"{kind}: {r.get('reason')}"} for k in kinds}
                walls[kind].append((time.perf_counter() - t) * 1000)
                runs[kind].append(r)
        window = link.link.window
    out = {k: _summary(runs[k], walls[k], window, b.rx_dropped) for k in kinds}
    for k in ("cold", "warm"):
        pairs = [o["handshake_us"] / m["handshake_us"] for o, m in zip(runs[k], runs["mbedtls"])]
        out[k]["paired_ratio"] = round(statistics.median(pairs), 2)
    return out


def _client(pki: DevPKI, key_type: str) -> tuple[Path, Path]:
    """The client certificate and key every client uses: RSA-2048, or ECDSA P-256."""
    if key_type == "ec":
        return pki.client_ec_cert, pki.client_ec_key
    return pki.client_cert, pki.client_key


def _der_files(pki: DevPKI, d: Path, key_type: str = "rsa") -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509 import load_pem_x509_certificate

    cert, key_path = _client(pki, key_type)
    (d / "ca.der").write_bytes(load_pem_x509_certificate(pki.ca_cert.read_bytes()).public_bytes(serialization.Encoding.DER))
    (d / "client.der").write_bytes(load_pem_x509_certificate(cert.read_bytes()).public_bytes(serialization.Encoding.DER))
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    (d / "client_key.der").write_bytes(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))


def _interpreter(machine: str) -> str:
    """The machine's MicroPython: the installed unix port, or the built image."""
    if machine == "unix64":
        return micropython_binary()
    from hsmtls.board.build import find_image

    return str(find_image(machine))


def mbedtls(pki: DevPKI, port: int, n: int, client_auth: bool, key_type: str = "rsa",
            machine: str = "unix64") -> dict:
    with tempfile.TemporaryDirectory() as d:
        dd = Path(d)
        _der_files(pki, dd, key_type)
        (dd / "m.py").write_text(MBEDTLS_SCRIPT)
        out = subprocess.run([_interpreter(machine), "m.py", str(port), str(n), "1" if client_auth else "0"],
                             cwd=d, capture_output=True, text=True, timeout=120)
    if out.returncode:
        return {"ok": False, "reason": out.stdout + out.stderr}
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    times = [float(x) for x in lines["times"].split()]
    return {"ok": True, "handshake_ms": statistics.median(times), "gc_peak": int(lines["gcpeak"])}


def cpython_ssl(pki: DevPKI, port: int, n: int, client_auth: bool, key_type: str = "rsa") -> dict:
    import socket
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(pki.ca_cert))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("AES128-GCM-SHA256")
    if client_auth:
        cert, key = _client(pki, key_type)
        ctx.load_cert_chain(str(cert), str(key))
    times = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = time.perf_counter()
        ss = ctx.wrap_socket(s, server_hostname="localhost")
        times.append((time.perf_counter() - t) * 1000)
        ss.close()
    return {"ok": True, "handshake_ms": statistics.median(times)}


def smallest_heap(flash: Path, port: int, client_auth: bool, rom: bool = False,
                  machine: str | None = None, boards: int = 1) -> int | None:
    """Smallest -X heapsize (KiB, to 2 KiB) at which a cold handshake completes, on
    each of `boards` freshly started boards: where the heap is in pieces, whether the
    largest allocation finds a block varies from one boot to the next."""
    def ok(kib: int) -> bool:
        try:
            return all(ours(flash, port, 1, client_auth, f"{kib}k", rom=rom, machine=machine).get("ok")
                       for _ in range(boards))
        except Exception:
            return False

    lo, hi = 16, 512
    if not ok(hi):
        return None
    while hi - lo > 2:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


HEAP_KINDS = {"plain": (False, "rsa"), "ecdsa": (True, "ec"), "rsa": (True, "rsa")}
HEAP_BOARDS = 5  # fresh boards that must each complete at a heap size for it to count


def smallest_heaps(pki: DevPKI, root: Path, machine: str, kinds=HEAP_KINDS) -> dict[str, int | None]:
    """The smallest heap (KiB) of each handshake a board makes: plain, and with each
    kind of client key; the server asks for a client certificate only for the latter."""
    out: dict[str, int | None] = {}
    servers = {auth: _openssl(pki, auth) for auth in {a for a, _ in kinds.values()}}
    try:
        for kind, (auth, key_type) in kinds.items():
            flash = provision(root / f"flash-{key_type}", pki.ca_cert, *_client(pki, key_type))
            out[kind] = smallest_heap(flash, servers[auth][1], auth, machine=machine, boards=HEAP_BOARDS)
    finally:
        for srv, _ in servers.values():
            srv.kill()
    return out


def run(n: int = 10, client_auth: bool = False, echo=print, heap: bool = True, json_path: str | None = None,
        key_type: str = "rsa", machine: str | None = None) -> dict:
    """key_type: the client key of every client (with client_auth): "rsa" (RSA-2048; the
    board signs with CRT) or "ec" (ECDSA P-256). machine: the emulated machine (default:
    $HSMTLS_MACHINE, else unix64)."""
    if shutil.which("openssl") is None:
        raise SystemExit("openssl is needed for the benchmark server")
    if key_type not in ("rsa", "ec"):
        raise ValueError("key_type must be rsa or ec")
    machine = machine or default_machine()
    res: dict = {"n": n, "client_auth": client_auth, "key_type": key_type, "machine": machine}
    with tempfile.TemporaryDirectory() as d:
        pki = DevPKI(Path(d) / "pki")
        flash = provision(Path(d) / "flash", pki.ca_cert, *_client(pki, key_type))
        srv, port = _openssl(pki, client_auth)
        try:
            res["mbedtls"] = mbedtls(pki, port, n, client_auth, key_type, machine)
            res["cpython_ssl"] = cpython_ssl(pki, port, n, client_auth, key_type)
            for prof, ring in PROFILES.items():
                rounds = link_rounds(flash, port, n, client_auth, ring, machine)
                res[f"mbedtls_{prof}_link"] = rounds["mbedtls"]
                for state in ("cold", "warm"):
                    res[f"ours_{prof}_{state}"] = rounds[state]
            res["ours_heap_probe"] = ours(flash, port, 3, client_auth, "256k", measure_heap=True, machine=machine)
            if heap and machine == "unix64":
                res["smallest_heap_kib"] = smallest_heap(flash, port, client_auth)
                if _rom_supported():
                    res["smallest_heap_kib_rom"] = smallest_heap(flash, port, client_auth, rom=True)
        finally:
            srv.kill()
        if heap and machine != "unix64":
            res["smallest_heaps_kib"] = smallest_heaps(pki, Path(d), machine)
    _report(res, echo)
    if json_path:
        Path(json_path).write_text(json.dumps(res, indent=2) + "\n")
    return res


def _report(res: dict, echo) -> None:
    m, c = res["mbedtls"], res["cpython_ssl"]
    key = {"rsa": "RSA-2048", "ec": "ECDSA P-256"}[res.get("key_type", "rsa")]
    echo(f"machine: {res.get('machine', 'unix64')}; "
         f"client auth: {'yes, ' + key + ' client key' if res['client_auth'] else 'no'}; {res['n']} handshakes each; "
         f"openssl s_server, RSA-2048, {SUITE}; medians; handshake = ClientHello to Finished checked")
    if not m.get("ok"):
        echo(f"mbedTLS failed: {m.get('reason')}")
        return
    mb = m["handshake_ms"]
    links = {"uart": "ESP32 UART", "usb": "native USB"}
    echo("  ratios: against mbedTLS on a direct socket (medians), and against mbedTLS on the board over the same link\n"
         "  (median of each round's ours/mbedTLS: the rounds interleave mbedTLS, ours cold, ours warm on one board)")
    echo(f"  MicroPython tls (mbedTLS, direct socket)   {mb:7.2f} ms   1.00x")
    for prof in PROFILES:
        o = res.get(f"mbedtls_{prof}_link", {})
        label = f"MicroPython tls on the board, {links[prof]} link"
        if o.get("ok"):
            echo(f"  {label:<43}{o['handshake_ms']:7.2f} ms   {o['handshake_ms'] / mb:.2f}x   1.00x   "
                 f"(window {o['window']} B; host wall {o['wall_ms']:.2f} ms)")
        elif o:
            echo(f"  {label}: failed: {o.get('reason')}")
    echo(f"  CPython ssl (OpenSSL; server + network)    {c['handshake_ms']:7.2f} ms   {c['handshake_ms'] / mb:.2f}x")
    for prof in PROFILES:
        for state in ("cold", "warm"):
            o = res[f"ours_{prof}_{state}"]
            label = f"ours, {links[prof]} link, {state}"
            if not o.get("ok"):
                echo(f"  {label}: failed: {o.get('reason')}")
                continue
            extra = f"window {o['window']} B; host wall {o['wall_ms']:.2f} ms; board compute {o['compute_ms']:.2f} ms"
            if state == "warm":
                extra += f"; cached signature {o['cached_signatures']}/{o['n']}, prepared premaster {o['prepared_premaster']}/{o['n']}"
            vs_link = f"{o['paired_ratio']:.2f}x" if "paired_ratio" in o else "  -  "
            echo(f"  {label:<43}{o['handshake_ms']:7.2f} ms   {o['handshake_ms'] / mb:.2f}x   {vs_link}   ({extra})")
    hp = res["ours_heap_probe"]
    if hp.get("ok"):
        echo(f"heap: ours live peak {hp['heap_peak']} B (code and state before the session {hp['heap_base']} B, "
             f"so {hp['heap_peak'] - hp['heap_base']} B for the handshake); mbedTLS GC-heap peak {m['gc_peak']} B "
             "(its ~30 KB of C malloc is outside the GC heap)")
    if "smallest_heaps_kib" in res:
        h = res["smallest_heaps_kib"]
        echo(f"smallest -X heapsize that completes a 2048-bit-chain handshake, firmware frozen ({res['machine']}): "
             + ", ".join(f"{k} {v} KiB" if v else f"{k}: none up to 512 KiB" for k, v in
                         zip(("plain", "ECDSA P-256 client key", "RSA-2048 client key"), h.values())))
    if "smallest_heap_kib" in res:
        echo(f"smallest -X heapsize that completes: {res['smallest_heap_kib']} KiB with the .mpy modules in the heap"
             + (f", {res['smallest_heap_kib_rom']} KiB with them in ROMFS (executed in place)"
                if "smallest_heap_kib_rom" in res else ""))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--client-auth", action="store_true")
    ap.add_argument("--key-type", choices=("rsa", "ec"), default="rsa", help="the client key (with --client-auth)")
    ap.add_argument("--no-heap", action="store_true", help="skip the smallest-heap search")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--machine", choices=("unix64", "unix32"), help="the emulated machine (default: unix64)")
    args = ap.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    run(args.n, args.client_auth, heap=not args.no_heap, json_path=args.json, key_type=args.key_type,
        machine=args.machine)
