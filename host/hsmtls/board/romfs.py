"""The board's ROMFS partition, emulated: firmware executed in place from mapped flash.

On an ESP32 with a ROMFS partition (MicroPython 1.25+, `mpremote romfs deploy`) the
partition is memory-mapped flash; MicroPython mounts it at /rom before main.py runs and
puts /rom and /rom/lib first on sys.path. Importing a .mpy from it references bytecode
and constants in flash, so only the runtime objects (functions, classes, dicts, qstr
entries) take GC heap.

The emulator does the same with the unix port, which has `vfs.VfsRom` and
`uctypes.bytearray_at` but no mmap: the `micropython` command is a CPython script
calling the C extension `micropython_run.run_main(argv)`, so this module, run as a
script by that CPython, maps the image read-only (outside the GC heap, and writes
fault as they would on flash), passes its address and size in $HSMTLS_ROMFS and runs
MicroPython in the same process. BOOT, run by MicroPython before main.py, mounts it.

    python -I romfs.py IMAGE -- micropython -X heapsize=64k -c BOOT...   (command())

Only the standard library here at module level: the launcher runs under whichever
CPython carries micropython_run, without hsmtls installed.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

ENV = "HSMTLS_ROMFS"  # "<address>:<size>" of the mapped image, for BOOT

# What the ESP32 port does in C at start-up, in MicroPython. sys.path gets /rom first so
# that nothing on the flash filesystem shadows the deployed firmware.
BOOT = """\
import os, sys, uctypes, vfs
a, n = os.getenv("{env}").split(":")
vfs.mount(vfs.VfsRom(uctypes.bytearray_at(int(a), int(n))), "/rom")
sys.path.insert(0, "/rom/lib")
sys.path.insert(0, "/rom")
del os, sys, uctypes, vfs, a, n
"""


def boot_source(main: str | Path | None) -> str:
    """BOOT, then main.py (execfile: compiled from the file as a script would be);
    main=None only mounts, for a REPL (`micropython -i`)."""
    src = BOOT.format(env=ENV)
    if main is not None:
        src += f"execfile({str(main)!r})\n"
    return src


def build_image(tree: Path, cache: Path | None = None) -> Path:
    """A ROMFS image of `tree` (its files at the image's root, as `mpremote romfs
    deploy tree` lays them out), cached by content."""
    files = sorted(p for p in tree.rglob("*") if p.is_file() and not p.name.startswith("."))
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(tree).as_posix().encode() + b"\0" + p.read_bytes())
    root = cache or Path(tempfile.gettempdir()) / "hsmtls-romfs"
    out = root / (h.hexdigest()[:16] + ".romfs")
    if out.exists():
        return out
    from mpremote.romfs import VfsRomWriter  # the writer `mpremote romfs build` uses

    writer = VfsRomWriter()

    def add(directory: Path) -> None:
        for p in sorted(directory.iterdir()):
            if p.name.startswith("."):
                continue
            if p.is_dir():
                writer.opendir(p.name)
                add(p)
                writer.closedir()
            else:
                writer.mkfile(p.name, p.read_bytes())

    add(tree)
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="build-", dir=root)
    with os.fdopen(fd, "wb") as f:
        f.write(writer.finalise())
    os.replace(tmp, out)  # atomic: a concurrent builder writes the same bytes
    return out


def launcher_python(micropython: str) -> str:
    """The CPython that runs the `micropython` command (its shebang), which is the one
    that can import micropython_run; this interpreter otherwise."""
    try:
        with open(micropython, "rb") as f:
            first = f.readline(512)
    except OSError:
        return sys.executable
    if first.startswith(b"#!") and b"python" in first:
        return first[2:].decode().split()[0]
    return sys.executable


def command(image: str | Path, micropython: str, options: list[str], main: str | Path | None) -> list[str]:
    """The argv that runs main.py (None: the REPL) with the image mounted at /rom;
    options are the interpreter's (e.g. -X heapsize=64k)."""
    repl = ["-i"] if main is None else []  # -i: the REPL after the boot code
    return [launcher_python(micropython), "-I", __file__, str(image), "--",
            "micropython", *options, *repl, "-c", boot_source(main)]


def map_readonly(image: str | Path) -> tuple[int, int]:
    """mmap the image PROT_READ, MAP_PRIVATE: (address, size). libc's mmap through
    ctypes because Python's mmap object does not expose the address of a read-only map."""
    import ctypes
    import mmap

    size = os.path.getsize(image)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    fd = os.open(image, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_PRIVATE, fd, 0)
    finally:
        os.close(fd)  # the mapping keeps the file
    if addr is None or addr == ctypes.c_void_p(-1).value:
        err = ctypes.get_errno()
        raise OSError(err, f"mmap {image}: {os.strerror(err)}")
    return addr, size


def launch(image: str, argv: list[str]) -> int:
    """Map the image, then run MicroPython with argv in this process (never unmapped:
    the process ends with MicroPython)."""
    addr, size = map_readonly(image)
    os.environ[ENV] = f"{addr}:{size}"  # putenv: MicroPython's os.getenv reads environ
    import micropython_run

    return micropython_run.run_main(argv)


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: romfs.py IMAGE -- micropython [options] [-c boot]")
    sys.exit(launch(sys.argv[1], sys.argv[3:]))
