"""The emulated ROMFS partition (EmulatedBoard(rom=True), hsmtls/board/romfs.py): the
firmware's .mpy image mapped read-only outside the GC heap, mounted at /rom and
imported in place, as from an ESP32's memory-mapped flash. The unix64 machine's (the
PyPI port's launcher), whatever machine the run's --board names: unix32 has its
firmware frozen in instead."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from hsmtls.board import romfs
from hsmtls.board.bridge import handshake_once
from hsmtls.board.emulator import EmulatedBoard, build_mpy, micropython_binary

from support.hil import requires_emulator
from support.required_tools import require_tool

pytestmark = [pytest.mark.micropython, requires_emulator]

# Run by the board after boot: a second mount of the same mapped image shows what a
# mount costs the heap; then the firmware's import cost.
PROBE = """\
import gc, os, sys, uctypes, vfs
a, n = os.getenv("HSMTLS_ROMFS").split(":")
gc.collect(); before = gc.mem_alloc()
vfs.mount(vfs.VfsRom(uctypes.bytearray_at(int(a), int(n))), "/rom2")
gc.collect(); print("mount", gc.mem_alloc() - before, n)
print("path", sys.path[0])
gc.collect(); before = gc.mem_alloc()
import boardapp.board
gc.collect(); print("import", gc.mem_alloc() - before, sys.modules["boardapp.board"])
"""

IMPORT = """\
import gc, sys
gc.collect(); before = gc.mem_alloc()
import boardapp.board
gc.collect(); print("import", gc.mem_alloc() - before, sys.modules["boardapp.board"])
"""


@pytest.fixture(scope="module")
def image():
    require_tool("mpy-cross")
    pytest.importorskip("mpremote")
    launcher = romfs.launcher_python(micropython_binary())
    if subprocess.run([launcher, "-c", "import micropython_run"], capture_output=True).returncode:
        pytest.skip("`micropython` is not the micropython_run CPython wrapper the launcher needs")
    return romfs.build_image(build_mpy())


def _run(argv, mpypath, cwd):
    env = dict(os.environ, MICROPYPATH=mpypath)
    p = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_image_is_mapped_outside_the_gc_heap_and_imported_in_place(image, tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "import.py").write_text(IMPORT)
    heap = ["-X", "heapsize=512k"]
    out = _run(romfs.command(image, micropython_binary(), heap, tmp_path / "probe.py"), ".frozen", tmp_path)
    mount, size = map(int, re.search(r"mount (\d+) (\d+)", out).groups())
    rom_import = int(re.search(r"import (\d+) <module 'boardapp.board' from '/rom/boardapp/board.mpy'>", out).group(1))
    assert "path /rom\n" in out
    # the image's bytes are not the heap's: mounting it costs a few small objects
    assert size > 50_000 and mount < 1024, out
    # the same .mpy files read from a filesystem into the heap cost much more
    out = _run([micropython_binary(), *heap, str(tmp_path / "import.py")], ".frozen:" + str(build_mpy()), tmp_path)
    heap_import = int(re.search(r"import (\d+)", out).group(1))
    print(f"import boardapp.board: {rom_import} B from /rom, {heap_import} B from files; mount {mount} B")
    assert rom_import < 0.75 * heap_import


def test_handshake_with_the_firmware_in_rom(image, flash_dir, servers):
    # The board's memory budget: 128 KiB from ROM, where `hsmtls bench board` measured
    # 118-120 KiB as the smallest that completes (session 4), so a change that needs
    # about 8 KiB more fails here; the same firmware loaded into the heap needs about
    # 180 KiB. A reset relaunches with the image mapped again.
    port = servers.openssl()
    with EmulatedBoard(flash_dir, heap="128k", rom=True, machine="unix64") as b:
        for _ in range(2):
            r = handshake_once(b.tty, ("127.0.0.1", port), {"server_name": "localhost"}, timeout=60)
            print("board result:", {k: r.get(k) for k in ("ok", "reason", "heap_base", "heap_peak")})
            assert r["ok"], r
            b.reset()
        assert b.rx_dropped == 0


def test_out_of_memory_ends_the_session_with_a_result(image, flash_dir, servers):
    # Too little heap for a handshake (112 KiB from ROM: it boots, and runs out during
    # the handshake; `hsmtls bench board` finds the smallest that completes): whichever allocation fails, engine or board, at RUN or later,
    # the host hears "out of memory" at once, not a 30 s wait for a RESULT that never
    # comes.
    port = servers.openssl()
    with EmulatedBoard(flash_dir, heap="112k", rom=True, machine="unix64") as b:
        t = time.monotonic()
        r = handshake_once(b.tty, ("127.0.0.1", port), {"server_name": "localhost"}, timeout=30)
        assert not r["ok"] and "out of memory" in r["reason"], r
        assert time.monotonic() - t < 10
