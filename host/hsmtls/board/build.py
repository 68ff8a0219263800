"""Board images: MicroPython built from its own sources with the firmware frozen in.

`hsmtls board build --machine unix32|rv32` finds MicroPython's sources (a tree, or the
release tarball, unpacked once into the cache), builds mpy-cross and the machine's port
out of tree, with firmware/ frozen in through the machine's manifest (boards/<machine>/
manifest.py), and prints the image's path. Nothing is written into the sources and
nothing of MicroPython comes into this repository.

Images live in the cache ($HSMTLS_CACHE, else ~/.cache/hsmtls/images), one directory per
key: the hash of the sources, firmware/**, boards/**, the machine and the recipe below
(and the heap, where the heap is a build parameter), so a second build is a lookup that
prints the same path. make's own build directory is kept per machine and source tree,
so a changed firmware rebuilds only the frozen modules (all of them, every time:
forget_frozen()).

Everything that can go wrong (no sources, a tree without its submodules, no 32-bit
compiler, a failed make) is a BuildError whose message is one line saying what is
missing and how to get it; the full make output stays in a log file it names.

The rv32 machine (QEMU) is built by hsmtls.board.rv32.build_image, which uses the same
pieces: micropython_tree(), mpy_cross(), run_make(), build_dir().
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import FIRMWARE

REPO = FIRMWARE.parent
BOARDS = REPO / "boards"
MACHINES = ("unix32", "rv32")
VERSION = "v1.28.0"
GET_SOURCES = (
    f"git clone --branch {VERSION} https://github.com/micropython/micropython && "
    "git -C micropython submodule update --init lib/micropython-lib lib/mbedtls lib/axtls"
)
SUBMODULES = ("lib/micropython-lib", "lib/mbedtls", "lib/axtls")
# what a build needs of a tree, beyond the submodules
TREE_FILES = ("py/mpconfig.h", "mpy-cross/Makefile", "tools/manifestfile.py", "ports/unix/Makefile")

# The unix port as a 32-bit program (Debian's gcc-multilib), without the two libraries
# the source tarball leaves out (libffi, berkeley-db); viper code for x86. Part of the
# cache key: a change here builds new images.
UNIX32_MAKE = ["MICROPY_FORCE_32BIT=1", "MICROPY_PY_FFI=0", "MICROPY_PY_BTREE=0", "MPY_CROSS_FLAGS=-march=x86"]


KEEP_IMAGES = 10  # per machine, the most recently built


class BuildError(RuntimeError):
    """A build that cannot be done; str() is one line saying what is missing and how to get it."""


def cache_root() -> Path:
    return Path(os.environ.get("HSMTLS_CACHE") or Path.home() / ".cache" / "hsmtls" / "images")


def default_sources() -> Path | None:
    """../shared/micropython/ beside the repository (the workspace's copy of the
    tarball), looked for from the repository up, so that a git worktree nested deeper
    finds it too. $HSMTLS_MICROPYTHON (a tree, a tarball or a directory holding one)
    comes first: where a checkout is not beside the workspace's shared/ folder."""
    env = os.environ.get("HSMTLS_MICROPYTHON")
    if env and Path(env).exists():
        return Path(env)
    for d in REPO.parents:
        if (d / "shared" / "micropython").is_dir():
            return d / "shared" / "micropython"
    return None


def _remembered() -> Path:
    return cache_root() / "sources"


# --- the sources ----------------------------------------------------------------------


def micropython_tree(path: str | None) -> Path:
    """The MicroPython source tree to build from: `path` (a tree, a release tarball, or a
    directory holding one), else ../shared/micropython/, else the sources the last
    `hsmtls board build --micropython` was given. A tarball is unpacked once into the
    cache. Raises BuildError saying how to get the sources."""
    if path is None:
        shared = default_sources()
        if shared is not None:
            where = shared
        elif _remembered().exists() and Path(_remembered().read_text().strip()).exists():
            where = Path(_remembered().read_text().strip())
        else:
            raise BuildError(f"no MicroPython sources: get them with `{GET_SOURCES}`, "
                             "then give --micropython micropython")
    else:
        where = Path(path).expanduser()
        if not where.exists():
            raise BuildError(f"{where}: no such file or directory (MicroPython's sources: `{GET_SOURCES}`)")
    where = where.resolve()
    if where.is_dir() and not (where / "py").is_dir():
        tarballs = sorted(where.glob("micropython-*.tar.xz"))
        if len(tarballs) != 1:
            raise BuildError(f"{where} is not a MicroPython source tree (no py/) and holds no micropython-*.tar.xz: "
                             f"`{GET_SOURCES}`")
        where = tarballs[0]
    tree = _unpack(where) if where.is_file() else where
    _check_tree(tree)
    if path is not None:
        _remembered().parent.mkdir(parents=True, exist_ok=True)
        _remembered().write_text(str(where) + "\n")
    return tree


def _unpack(tarball: Path) -> Path:
    key = _sha256_file(tarball)
    root = cache_root() / "src" / key[:16]
    with _lock(f"src-{key[:16]}"):
        done = root / ".source-key"
        if not done.exists():
            shutil.rmtree(root, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix="unpack-", dir=_mkdir(root.parent)))
            try:
                with tarfile.open(tarball) as tf:
                    tf.extractall(tmp, filter="data")
            except (tarfile.TarError, OSError, EOFError, ValueError) as e:
                shutil.rmtree(tmp, ignore_errors=True)
                why = (str(e).splitlines() or [type(e).__name__])[0].rstrip(":")
                raise BuildError(f"{tarball}: not a readable MicroPython tarball ({why}); "
                                 f"the sources: `{GET_SOURCES}`") from None
            (tmp / ".source-key").write_text(key + "\n")
            (tmp / ".origin").write_text(f"{tarball} (sha256 {key})\n")
            tmp.rename(root)
    tops = [p for p in root.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise BuildError(f"{tarball}: expected one top directory (micropython-X.Y.Z/), found {len(tops)}")
    return tops[0]


def _check_tree(tree: Path) -> None:
    missing = [f for f in TREE_FILES if not (tree / f).is_file()]
    if missing:
        raise BuildError(f"{tree} is not a MicroPython source tree (no {missing[0]}): `{GET_SOURCES}`")
    empty = [m for m in SUBMODULES if not (tree / m).is_dir() or not any((tree / m).iterdir())]
    if empty:
        raise BuildError(f"{tree} lacks the submodule {empty[0]}: "
                         f"git -C {tree} submodule update --init {' '.join(SUBMODULES)}")


def version(tree: Path) -> str:
    """MicroPython's version as its py/mpconfig.h says (e.g. 1.28.0)."""
    nums = {}
    for line in (tree / "py" / "mpconfig.h").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "#define" and parts[1].startswith("MICROPY_VERSION_") \
                and parts[2].isdigit():
            nums[parts[1][len("MICROPY_VERSION_"):]] = parts[2]
    return ".".join(nums.get(k, "?") for k in ("MAJOR", "MINOR", "MICRO"))


def source_key(tree: Path) -> str:
    """What identifies the sources: an unpacked tarball's sha256; for a tree of one's
    own, the hash of its file list with sizes and modification times (build
    directories and .git left out), which any edit changes."""
    recorded = tree.parent / ".source-key"
    if recorded.is_file():
        return recorded.read_text().strip()
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = sorted(d for d in dirnames if d != ".git" and not d.startswith("build"))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            try:
                st = p.stat()
            except OSError:
                continue
            h.update(f"{p.relative_to(tree)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _origin(tree: Path) -> str:
    """Where the sources came from: the tarball of an unpacked tree, else the tree."""
    origin = tree.parent / ".origin"
    return origin.read_text().strip() if origin.is_file() else str(tree)


def _sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tree_hash(root: Path) -> str:
    """Contents of every file under root (caches and dotfiles left out)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if not p.is_file() or "__pycache__" in rel.parts or any(part.startswith(".") for part in rel.parts):
            continue
        h.update(rel.as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def image_key(machine: str, tree: Path, heap: int | None) -> str:
    """The cache key of `machine`'s image from `tree` with the firmware (every file under
    firmware/: the frozen modules, main.py, the manifest), the boards and the recipes
    as they are now."""
    from .rv32 import RV32_MAKE

    h = hashlib.sha256()
    parts = [machine, source_key(tree), _tree_hash(FIRMWARE), _tree_hash(BOARDS), " ".join(UNIX32_MAKE),
             " ".join(RV32_MAKE), str(heap)]
    h.update("\n".join(parts).encode())
    return h.hexdigest()


# --- running the builds ------------------------------------------------------------------


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


@contextmanager
def _lock(name: str) -> Iterator[None]:
    """One builder at a time per cache entry (tests and a shell may build at once)."""
    with open(_mkdir(cache_root() / "locks") / f"{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_dir(name: str, tree: Path) -> Path:
    """make's build directory (BUILD=) for `name` from this source tree, kept between
    images so that a changed firmware rebuilds only what depends on it."""
    return _mkdir(cache_root() / "build" / f"{name}-{source_key(tree)[:16]}")


def forget_frozen(build: Path) -> None:
    """Make MicroPython compile every frozen module again. Its manifest tool recompiles a
    module only when the source is newer than the .mpy it left in the build directory:
    a firmware file whose time goes back (a checkout, another worktree sharing this
    build directory, an edit undone) would ship the old bytecode without a word."""
    shutil.rmtree(build / "frozen_mpy", ignore_errors=True)
    (build / "frozen_content.c").unlink(missing_ok=True)


def run_make(args: list[str], cwd: Path, log: Path) -> None:
    """make ARGS in cwd, its output into `log`; a failure is a BuildError naming the
    first error line and the log."""
    make = shutil.which("make")
    if make is None:
        raise BuildError("make is not installed: apt install make gcc")
    _mkdir(log.parent)
    with open(log, "ab") as out:
        out.write(f"\n$ make {' '.join(args)}   (in {cwd})\n".encode())
        out.flush()
        rc = subprocess.run([make, *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL).returncode
    if rc:
        raise BuildError(f"the build failed ({_first_error(log)}); full log: {log}")


def _first_error(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("$ make "))
    for line in lines[start:]:
        if "error" in line.lower() or "no such file" in line.lower():
            return line.strip()[:200]
    return f"make stopped: {lines[-1].strip()[:200]}" if lines else "make stopped"


def mpy_cross(tree: Path, log: Path) -> Path:
    """mpy-cross from the same sources (its .mpy format is the port's), built once per tree."""
    out = build_dir("mpy-cross", tree)
    exe = out / "mpy-cross"
    with _lock(out.name):
        if not exe.exists():
            check_toolchain("gcc")
            run_make([f"-j{os.cpu_count() or 1}", f"BUILD={out}"], tree / "mpy-cross", log)
    return exe


def check_toolchain(kind: str) -> None:
    """The C compiler a machine needs: "gcc" (the host's), "gcc-m32" (32-bit, Debian's
    gcc-multilib). One try at compiling and linking a tiny program."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BuildError("no C compiler (gcc): apt install gcc make" + (" gcc-multilib" if kind == "gcc-m32" else ""))
    if kind != "gcc-m32":
        return
    with tempfile.TemporaryDirectory(prefix="hsmtls-cc-") as d:
        src = Path(d) / "t.c"
        src.write_text("#include <stdio.h>\nint main(void) { puts(\"\"); return 0; }\n")
        r = subprocess.run([gcc, "-m32", str(src), "-o", str(Path(d) / "t")], capture_output=True, text=True)
    if r.returncode:
        raise BuildError("no 32-bit C toolchain (gcc -m32 cannot link a program): apt install gcc-multilib")


def parse_heap(heap: str | int | None) -> int | None:
    """--heap as bytes: 65536, 64k, 1m."""
    if heap is None:
        return None
    s = str(heap).strip().lower()
    mult = {"k": 1024, "m": 1024 * 1024}.get(s[-1:], 1)
    digits = s[:-1] if s[-1:] in ("k", "m") else s
    if not digits.isdigit() or int(digits) == 0:
        raise BuildError(f"heap size {heap!r}: expected e.g. 64k, 1m or 65536")
    return int(digits) * mult


def build(machine: str, heap: str | int | None = None, micropython: str | None = None,
          log=lambda s: None) -> dict:
    """The image of `machine` (built, or found in the cache): {"machine", "image", "key",
    "micropython", "built"}. heap: rv32's static heap; unix32 takes its heap at run
    time (hsmtls board emulate --heap), so one image serves every heap."""
    if machine not in MACHINES:
        raise BuildError(f"unknown machine {machine!r}: one of {', '.join(MACHINES)}")
    heap_bytes = parse_heap(heap)
    if machine == "rv32":
        try:
            from . import rv32  # type: ignore[attr-defined]
        except ImportError:
            raise BuildError("rv32 is not built by this version") from None
    tree = micropython_tree(micropython)
    key = image_key(machine, tree, heap_bytes if machine == "rv32" else None)
    out = cache_root() / f"{machine}-{key[:16]}"
    info_path = out / "image.json"
    with _lock(out.name):
        if info_path.exists():
            info = json.loads(info_path.read_text())
            if Path(info["image"]).exists():
                os.utime(info_path)  # used: the last to be pruned
                return dict(info, built=False)
        _mkdir(out)
        logf = out / "build.log"
        logf.write_text("")
        log(f"building the {machine} image from MicroPython {version(tree)} in {tree} (log: {logf})")
        if machine == "unix32":
            image = _build_unix32(tree, out, logf)
        else:
            image = rv32.build_image(tree, out, heap_bytes, BOARDS / machine / "manifest.py")
        info = {"machine": machine, "image": str(image), "key": key, "micropython": version(tree),
                "sources": _origin(tree), "heap": heap_bytes if machine == "rv32" else None}
        info_path.write_text(json.dumps(info, indent=2) + "\n")
    _prune(machine)
    return dict(info, built=True)


def _prune(machine: str, keep: int = KEEP_IMAGES) -> None:
    """Every firmware edit is a new image (about 1 MB): those of a machine used least recently go."""
    infos = sorted(cache_root().glob(f"{machine}-*/image.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in infos[keep:]:
        shutil.rmtree(old.parent, ignore_errors=True)


def _build_unix32(tree: Path, out: Path, log: Path) -> Path:
    check_toolchain("gcc-m32")
    cross = mpy_cross(tree, log)
    build = build_dir("unix32", tree)
    with _lock(build.name):
        forget_frozen(build)
        run_make([f"-j{os.cpu_count() or 1}", *UNIX32_MAKE, f"BUILD={build}", f"MICROPY_MPYCROSS={cross}",
                  f"FROZEN_MANIFEST={BOARDS / 'unix32' / 'manifest.py'}"], tree / "ports" / "unix", log)
        image = out / "micropython"
        shutil.copy2(build / "micropython", image)
    return image


def find_image(machine: str) -> Path:
    """The image `hsmtls board emulate --machine` runs: built now if the sources are at
    hand (a cache hit when nothing changed; a build says so on stderr). BuildError otherwise."""
    import sys

    return Path(build(machine, log=lambda s: print(s, file=sys.stderr, flush=True))["image"])
