"""benchmarks/heap_32bit.py (hsmtls bench heap32) still measures what it says: the
firmware rebuilt as portable bytecode imports on the unix port, every module is
accounted for, and ROMFS keeps the bytecode out of the heap. The 32-bit side (Node.js
and the webassembly port from npm) runs only where that package is already unpacked."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

from support.mp_run import requires_micropython
from support.required_tools import requires_tool

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("heap_32bit", REPO / "benchmarks" / "heap_32bit.py")
assert spec is not None and spec.loader is not None
heap_32bit = importlib.util.module_from_spec(spec)
sys.modules["heap_32bit"] = heap_32bit
spec.loader.exec_module(heap_32bit)

pytestmark = [pytest.mark.micropython, requires_micropython,
              requires_tool("mpy-cross")]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    work = tmp_path_factory.mktemp("heap32")
    mpy = heap_32bit._bytecode_tree(work)
    script = work / "measure.py"
    script.write_text("MODULES = %r\n" % (heap_32bit.MODULES,) + heap_32bit.MEASURE)
    return work, mpy, script


def test_bytecode_tree_has_no_native_code(tree):
    work, mpy, _ = tree
    assert "@micropython.viper" not in (work / "src" / "tlscore" / "montgomery.py").read_text()
    assert "hashlib.sha1" not in (work / "src" / "tlscore" / "backend_micropython.py").read_text()
    for p in mpy.rglob("*.mpy"):
        header = p.read_bytes()[:4]
        assert header[0] == ord("M") and header[2] >> 2 == 0, p  # arch 0: bytecode any port loads


@pytest.mark.slow
def test_import_cost_on_the_unix_port_in_heap_and_from_romfs(tree):
    pytest.importorskip("mpremote")
    _, mpy, script = tree
    heap = heap_32bit.unix64(mpy, script)
    rom = heap_32bit.unix64_rom(mpy, script)
    for r in (heap, rom):
        assert set(r["modules"]) == set(heap_32bit.MODULES)
        assert sum(r["modules"].values()) == r["import_bytes"]
        assert r["qstrs"] > 500 and r["qstr_bytes"] > 0
    # bytecode and constants stay in the image: a large part of the cost in the heap
    assert rom["import_bytes"] < 0.8 * heap["import_bytes"], (rom, heap)


@pytest.mark.slow
def test_import_cost_on_a_32bit_micropython(tree, tmp_path):
    package = Path(os.environ.get("HSMTLS_MP_WASM", Path(heap_32bit.tempfile.gettempdir()) / "hsmtls-mp-wasm" / "package"))
    if shutil.which("node") is None or not (package / "micropython.mjs").exists():
        pytest.skip("the webassembly port is not unpacked here (hsmtls bench heap32 fetches it)")
    _, mpy, script = tree
    r = heap_32bit.wasm32(mpy, script, package, tmp_path)
    assert set(r["modules"]) == set(heap_32bit.MODULES)
    assert r["import_bytes"] > 0
    # 32-bit words: qstr entries are smaller than the unix port's
    assert r["qstr_bytes"] < heap_32bit.unix64(mpy, script)["qstr_bytes"]
