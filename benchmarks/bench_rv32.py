"""Board handshake benchmark on the rv32 machine (not a test): our firmware against
MicroPython's own `tls` (mbedTLS, in C) in the same image, on the same board, over the
same serial link and bridge, to the same server; in instructions.

    hsmtls bench board --machine rv32 [-n 10] [--client-auth [--key-type rsa|ec]] [--no-heap] [--json F]

QEMU counts 1 ns per instruction (-icount shift=0), and the board's ticks_us() there
counts the instructions it executes outside its sleep waiting for the host (boards/rv32,
board_port/qemu.py): so RESULT's handshake_us, from ClientHello to the server's Finished
checked, is thousands of instructions the board executed, and the same figure on every
run up to how the host's bytes happen to be split into bursts. Every handshake is cold
and full (no signature cache, no premaster prepared while idle, no session resumed),
after a first one on the same
board (the first after boot also pays for what the code sets up on first use).

Per step: ours per handshake message as the engine times it (the link's work between
messages is the row "link and the rest"); mbedTLS per flight it writes (ClientHello;
the server's flight up to our Finished; the server's Finished), its link work inside.
Time on an ESP32-C3 at 160 MHz is estimated as instructions x CPI / 160 MHz, with the
CPI stated (CPI below: an assumption, not a measurement).

Then the smallest heap, set at boot, at which a cold handshake completes (2 KiB steps,
each size counting only when 5 freshly started boards all complete), for the three
handshakes a board makes: plain, with an ECDSA P-256 and with an RSA-2048 client key.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_board as bb  # noqa: E402

from hsmtls.board.bridge import Bridge  # noqa: E402
from hsmtls.board.emulator import EmulatedBoard  # noqa: E402
from hsmtls.board.flash import provision  # noqa: E402
from hsmtls.board.hostlink import HostLink  # noqa: E402
from hsmtls.devpki import DevPKI  # noqa: E402

MACHINE = "rv32"
C3_HZ = 160_000_000
# The ESP32-C3's core is single-issue and in order, executing from flash through a
# 16 KiB cache: 1.5 cycles per instruction is an assumption (loads, taken branches,
# cache misses), to be replaced by a measurement on a board.
CPI = 1.5
PHASES = {"ClientHello": "ClientHello", "ChangeCipherSpec": "server Finished", "Finished": "server Finished"}


def rounds(flash: Path, port: int, n: int, client_auth: bool) -> dict:
    """n rounds on one rv32 board: mbedTLS, then ours cold, after a first handshake of each."""
    cold = {"server_name": "localhost", "client_auth": client_auth, "suites": [bb.SUITE], "measure_heap": False,
            "signature_cache": False, "prepare_premaster": False, "resume": False}
    mbed = {"engine": "mbedtls", "server_name": "localhost", "client_auth": client_auth}
    runs: dict[str, list[dict]] = {"ours": [], "mbedtls": []}
    with EmulatedBoard(flash, heap="256k", machine=MACHINE) as b, HostLink(b.tty) as link:
        link.connect(20)
        br = Bridge(link, ("127.0.0.1", port))
        for i in range(n + 1):
            for kind, opts in (("mbedtls", mbed), ("ours", cold)):
                r = br.run_handshake(dict(opts), timeout=120)
                if not r.get("ok"):
                    raise RuntimeError(f"{kind}: {r.get('reason')}")
                if i:
                    runs[kind].append(r)
    return runs


def _phase(name: str) -> str:
    return PHASES.get(name, "server flight to our Finished")


def summary(runs: dict) -> dict:
    out: dict = {}
    for kind, rs in runs.items():
        totals = [r["handshake_us"] for r in rs]
        steps: dict[str, list[float]] = {}
        for r in rs:
            for name, ms in r["steps"]:
                steps.setdefault(name, []).append(ms * 1000)
        med = {k: statistics.median(v) for k, v in steps.items()}
        total = statistics.median(totals)
        if kind == "ours":
            med["link and the rest"] = total - sum(med.values())
        out[kind] = {"kinstr": total, "min": min(totals), "max": max(totals), "steps_kinstr": med, "n": len(rs)}
    phases: dict[str, float] = {}
    for name, k in out["ours"]["steps_kinstr"].items():
        if name != "link and the rest":
            phases[_phase(name)] = phases.get(_phase(name), 0) + k
    out["ours"]["phases_kinstr"] = phases
    out["ratio"] = out["ours"]["kinstr"] / out["mbedtls"]["kinstr"]
    return out


def _ms_c3(kinstr: float) -> float:
    return kinstr * 1000 * CPI / C3_HZ * 1000


def report(res: dict, echo=print) -> None:
    key = {"rsa": "RSA-2048", "ec": "ECDSA P-256"}[res["key_type"]]
    s = res["rounds"]
    echo(f"rv32 (QEMU RISC-V virt, rv32imac, 1 ns per instruction); client auth: "
         f"{'yes, ' + key + ' client key' if res['client_auth'] else 'no'}; {s['ours']['n']} cold handshakes each "
         f"after a first; openssl s_server RSA-2048, {bb.SUITE}; medians in thousands of instructions (k); "
         f"ESP32-C3 estimate at 160 MHz with CPI {CPI}")
    for kind, label in (("ours", "ours"), ("mbedtls", "MicroPython tls (mbedTLS)")):
        o = s[kind]
        echo(f"  {label}: {o['kinstr']:9.0f} k  (min {o['min']} k, max {o['max']} k)  ~{_ms_c3(o['kinstr']):6.0f} ms on a C3")
        for name, k in o["steps_kinstr"].items():
            echo(f"      {name:<32}{k:9.0f} k")
    echo("  per phase (ours: engine steps, without the link's work; mbedTLS: with it):")
    for name in ("ClientHello", "server flight to our Finished", "server Finished"):
        o, m = s["ours"]["phases_kinstr"].get(name, 0), s["mbedtls"]["steps_kinstr"].get(name, 0)
        echo(f"      {name:<32}{o:9.0f} k  vs {m:9.0f} k  ({o / m if m else 0:.2f}x)")
    echo(f"  ours / mbedTLS, whole handshake: {s['ratio']:.2f}x")
    if "smallest_heaps_kib" in res:
        h = res["smallest_heaps_kib"]
        echo(f"smallest heap (set at boot) at which a cold 2048-bit-chain handshake completes on each of "
             f"{bb.HEAP_BOARDS} fresh boards: "
             + ", ".join(f"{k} {v} KiB" if v else f"{k}: none up to 512 KiB" for k, v in
                         zip(("plain", "ECDSA P-256 client key", "RSA-2048 client key"), h.values())))


def run(n: int = 10, client_auth: bool = False, echo=print, heap: bool = True, json_path: str | None = None,
        key_type: str = "rsa") -> dict:
    if shutil.which("openssl") is None:
        raise SystemExit("openssl is needed for the benchmark server")
    res: dict = {"machine": MACHINE, "n": n, "client_auth": client_auth, "key_type": key_type, "cpi": CPI}
    with tempfile.TemporaryDirectory() as d:
        pki = DevPKI(Path(d) / "pki")
        flash = provision(Path(d) / "flash", pki.ca_cert, *bb._client(pki, key_type))
        srv, port = bb._openssl(pki, client_auth)
        try:
            res["rounds"] = summary(rounds(flash, port, n, client_auth))
        finally:
            srv.kill()
        if heap:
            # the three handshakes a board makes, whatever --client-auth asked for the
            # rounds: plain, ECDSA and RSA client keys, as for unix32
            res["smallest_heaps_kib"] = bb.smallest_heaps(pki, Path(d), MACHINE)
    report(res, echo)
    if json_path:
        Path(json_path).write_text(json.dumps(res, indent=2) + "\n")
    return res
