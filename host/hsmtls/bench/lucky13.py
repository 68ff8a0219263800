"""`hsmtls bench lucky13`: the CBC MAC-then-encrypt check's timing, good padding with a
bad MAC against bad padding, on CPython (here) and on the MicroPython unix port (a
subprocess), with the pre-fix check measured alongside as a control. The measurement
and the statistics are benchmarks/lucky13.py, which runs on both interpreters."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from hsmtls.board import FIRMWARE, FIRMWARE_LIB

SCRIPT = FIRMWARE.parent / "benchmarks" / "lucky13.py"


def load() -> ModuleType:
    """benchmarks/lucky13.py as a module (the benchmark runs from a source checkout)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("lucky13", SCRIPT)
    if spec is None or spec.loader is None or not SCRIPT.exists():
        raise RuntimeError(f"{SCRIPT} not found (the benchmark runs from a source checkout)")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_micropython(mod: ModuleType, samples: int, mac: str, batch: int, check: bool = False) -> list[dict]:
    """[engine, control(, leaky)] summaries measured by the MicroPython unix port."""
    from hsmtls.board.emulator import micropython_binary

    env = dict(os.environ, MICROPYPATH=".frozen:" + str(FIRMWARE_LIB))
    proc = subprocess.run(
        [micropython_binary(), str(SCRIPT), str(samples), mac, str(batch)] + (["check"] if check else []),
        capture_output=True, text=True, env=env, cwd=Path(SCRIPT).parent, timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"micropython exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    t = {line.split()[0]: [int(x) for x in line.split()[1:]] for line in proc.stdout.splitlines() if line}
    names = ["engine", "control"] + (["leaky"] if check else [])
    return [mod.summary(t[n + "_a"], t[n + "_b"], batch) for n in names]


def report(title: str, engine: dict, control: dict, mod: ModuleType, echo: Callable[[str], None],
           interpreter: str = "cpython") -> dict[str, Any]:
    overlap, why = mod.verdict(engine, control, interpreter)
    qs = " ".join(f"p{int(q * 100)}" for q in mod.QUANTILES)
    echo(f"{title}: {engine['samples']} samples of {engine['batch']} decryption(s) each, ns per decryption")
    for name, s in (("engine", engine), ("pre-fix", control)):
        echo(f"  {name:8s} a (good pad, bad MAC) {qs}: " + " ".join(f"{x:.0f}" for x in s["a_ns"]))
        echo(f"  {name:8s} b (bad pad)           {qs}: " + " ".join(f"{x:.0f}" for x in s["b_ns"]))
        echo(f"  {name:8s} median b-a {s['median_diff_ns']:+.0f} (IQR {s['iqr_ns']:.0f})  KS D {s['ks_d']:.3f}  "
             f"paired shift {s['shift_ns']:+.0f}  sign z {s['sign_z']:+.1f}")
    echo(f"  verdict: {why}")
    return {"engine": engine, "control": control, "overlap": overlap, "verdict": why}


def bench_lucky13(interpreters: list[str], samples: int | None, macs: list[str], batch: int | None,
                  echo: Callable[[str], None]) -> dict[str, Any]:
    mod = load()
    out: dict[str, Any] = {}
    for interp in interpreters:
        for mac in macs:
            if interp == "cpython":
                if samples is None and batch is None:  # as the test measures
                    engine, control = mod.measure_until_seen(mac)
                else:
                    engine, control = mod.measure(samples or 48000, mac, batch or 1)
            else:  # its clock counts microseconds: batches of 8 resolve 125 ns
                n, b = samples or 4000, batch or 8
                engine, control = run_micropython(mod, n, mac, b)
            out[f"{interp}/{mac}"] = report(f"{interp}, HMAC-{mac.upper()}, 2 KiB records", engine, control, mod, echo,
                                            interp)
    return out
