"""The emulated board: the real firmware/main.py under the MicroPython unix port.

MicroPython runs on one raw pseudo-terminal; the host gets another, whose path it
opens with pyserial exactly as it opens /dev/ttyUSB0. A relay thread copies bytes
between the two, and that is where the emulator imitates the board:

* the classic ESP32's 260-byte UART receive ring: bytes toward the board beyond what
  it has not yet read are dropped silently (and counted), as the hardware would;
* optional seeded faults per direction (faults.Faults);
* reset(): the MicroPython process is killed and restarted behind the same host tty,
  as a board reset behind a USB-UART bridge; factory_reset() also empties its flash, as
  `hsmtls board flash --erase` and a fresh deploy would;
* dev_button: the board's BOOT button held as it starts (development mode for that
  boot: the link leaves for the REPL when asked; docs/board-security.md).

The board's flash is a directory (the interpreter's working directory): ca.pem,
client.pem, client.key (see flash.py). With rom=True the firmware is instead in an
emulated ROMFS partition, memory-mapped and executed in place (see romfs.py).

The machine: "unix64", the unix port from PyPI running the firmware from firmware/lib
(or its .mpy build, or ROMFS); "unix32", MicroPython built from its sources as a 32-bit
program with the firmware frozen in (`hsmtls board build`, build.py), main.py from the
flash as on a board deployed with --frozen; "rv32", the firmware frozen into
MicroPython's qemu port, run by QEMU as a 32-bit RISC-V MCU behind the same relay, in the
same flash directory (rv32.py). $HSMTLS_MACHINE picks the default (the HIL suite's
`pytest --board unix32` sets it), else unix64, which needs nothing built.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import struct
import subprocess
import tempfile
import termios
import threading
import time
import tty
from pathlib import Path

from . import FIRMWARE, FIRMWARE_LIB, romfs
from .faults import Faults

ESP32_RX_RING = 260
MACHINES = ("unix64", "unix32", "rv32")


def default_machine() -> str:
    machine = os.environ.get("HSMTLS_MACHINE") or "unix64"
    if machine not in MACHINES:
        raise ValueError(f"HSMTLS_MACHINE={machine}: one of {', '.join(MACHINES)}")
    return machine


def micropython_binary() -> str:
    found = os.environ.get("MICROPYTHON") or shutil.which("micropython")
    if not found:
        raise RuntimeError("the MicroPython unix port (`micropython`) is not installed")
    return found


def can_precompile() -> bool:
    """Whether mpy-cross is here to run the firmware precompiled (mpy=True), as a board
    gets it from `hsmtls board deploy`. Compiling the sources on the emulated board
    leaves its heap in pieces: an on-board key generation or a long session at 256 KiB
    can then find no block big enough, which a deployed board would not see."""
    return shutil.which("mpy-cross") is not None


def parse_heap(heap: str | int | None) -> str | None:
    if heap is None:
        return None
    s = str(heap).strip().lower()
    if not s.rstrip("km").isdigit():
        raise ValueError(f"heap size {heap!r}: expected e.g. 96k, 1m or 65536")
    return s


def build_mpy(cache: Path | None = None) -> Path:
    """firmware/lib precompiled with mpy-cross, as it is deployed to a board.

    Importing .mpy skips the on-board compiler, whose parse trees cost more heap than
    the bytecode itself. Cached by content hash; viper code is built for x64 here
    (xtensawin for an ESP32).
    """
    import hashlib

    mpy_cross = shutil.which("mpy-cross")
    if mpy_cross is None:
        raise RuntimeError("mpy-cross is not installed")
    sources = sorted(p for p in FIRMWARE_LIB.rglob("*.py"))
    h = hashlib.sha256()
    for p in sources:
        h.update(str(p.relative_to(FIRMWARE_LIB)).encode() + b"\0" + p.read_bytes())
    root = cache or Path(tempfile.gettempdir()) / "hsmtls-mpy"
    out = root / h.hexdigest()[:16]
    if (out / ".complete").exists():
        return out
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=root if root.exists() else None))
    for p in sources:
        rel = p.relative_to(FIRMWARE_LIB).with_suffix(".mpy")
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([mpy_cross, "-march=x64", "-o", str(tmp / rel), str(p)], check=True, cwd=FIRMWARE_LIB)
    (tmp / ".complete").touch()
    root.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process built it first
    return out


def dies_with_us(argv: list[str]) -> list[str]:
    """argv run so that the board process is killed when the thread that started it
    ends (PR_SET_PDEATHSIG through util-linux's setpriv): a test run or an `hsmtls board
    emulate` killed without a chance to clean up leaves no QEMU or MicroPython behind
    (QEMU in particular keeps running on its own, holding a core)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", *argv] if setpriv else argv


def _inq(fd: int) -> int:
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


class EmulatedBoard:
    """Context manager: ``with EmulatedBoard(flash_dir, heap="96k") as b: b.tty``."""

    def __init__(
        self,
        flash_dir: str | Path | None = None,
        heap: str | int | None = "256k",
        rx_ring: int | None = ESP32_RX_RING,
        to_board: Faults | None = None,
        to_host: Faults | None = None,
        main: str | Path | None = None,
        mpy: bool = False,
        repl: bool = False,
        lib: str | Path | None = None,
        rom: bool = False,
        dev_button: bool = False,
        machine: str | None = None,
    ) -> None:
        # repl: run the interpreter's REPL instead of main.py (a board that left link
        # mode), for mpremote; lib: import the firmware from there (a deployed flash);
        # rom: the firmware (lib, else the mpy-cross build) is a ROMFS image mapped
        # outside the GC heap and mounted at /rom, as a board's ROMFS partition;
        # machine: see the module's docstring (mpy and rom are unix64's ways to keep
        # the code out of the heap: unix32's firmware is frozen into its image, executed
        # in place already)
        self.machine = machine or default_machine()
        self.image = self._image()
        rom = rom and self.image is None
        self._tmp = None
        if flash_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="hsmtls_flash_")
            flash_dir = self._tmp.name
        self.flash_dir = Path(flash_dir)
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        self.heap = parse_heap(heap)
        self.rx_ring = rx_ring
        self.to_board = to_board
        self.to_host = to_host
        self.main = Path(main) if main else FIRMWARE / "main.py"
        frozen = self.image is not None
        self.lib = Path(lib) if lib else None if frozen else build_mpy() if mpy else FIRMWARE_LIB
        self.repl = repl
        self.dev_button = dev_button
        self.rom_image = romfs.build_image(Path(lib) if lib else build_mpy()) if rom else None
        self.proc: subprocess.Popen | None = None
        self.rx_dropped = 0  # bytes lost to the emulated UART ring
        self.rx_peak = 0  # most bytes ever waiting unread on the board side
        self.tail = b""  # the last bytes the board wrote (its last words if it stops)
        self.resets = 0
        self.stderr = b""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._board_master = self._board_slave = -1
        fd, name = tempfile.mkstemp(prefix="hsmtls_board_stderr_")
        os.close(fd)
        self._stderr_path = Path(name)
        # the host's side: opened by pyserial; we keep the slave open so that the host
        # closing and reopening it (a disconnect) does not hang up the master
        self._host_master, self._host_slave = pty.openpty()
        tty.setraw(self._host_slave)
        tty.setraw(self._host_master)
        self.tty = os.ttyname(self._host_slave)

    def _image(self) -> Path | None:
        """The machine's built image (None: unix64, the installed `micropython`)."""
        if self.machine == "unix64":
            return None
        if self.machine not in MACHINES:
            raise RuntimeError(f"the {self.machine} machine is not emulated by this version")
        if self.machine == "rv32":
            from . import rv32

            rv32.qemu_binary()  # RuntimeError saying how to install it
        from .build import BuildError, find_image

        try:
            return find_image(self.machine)
        except BuildError as e:
            raise RuntimeError(f"no {self.machine} image: {e} (hsmtls board build --machine {self.machine})") from None

    # --- lifetime --------------------------------------------------------------------

    @property
    def direct(self) -> bool:
        """Nothing to imitate between host and board (no ring, no faults): the board
        reads and writes the host pty's other end itself, without the relay's hop.
        Not for the REPL (mpremote), which wants a terminal of its own."""
        return self.rx_ring is None and self.to_board is None and self.to_host is None and not self.repl \
            and self.machine != "rv32"  # QEMU opens the board side of the relay's pty

    def start(self) -> EmulatedBoard:
        self._spawn()
        self._stop.clear()
        if not self.direct:
            self._thread = threading.Thread(target=self._relay, name="board-relay", daemon=True)
            self._thread.start()
        return self

    def _spawn(self) -> None:
        if self.direct:
            # the master end, non-blocking: a read returns what is waiting (the unix
            # port reads the link in chunks, see board_port/unix.py); we keep our own
            # descriptor, so the host tty survives a reset
            m = s = -1
            fd = self._host_master
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        else:
            m, s = pty.openpty()
            tty.setraw(s)
            tty.setraw(m)
            # VMIN=0: a read returns what is waiting instead of blocking for the whole
            # count, so the unix port reads the link in chunks (see board_port/unix.py)
            attrs = termios.tcgetattr(s)
            attrs[6][termios.VMIN] = 0
            attrs[6][termios.VTIME] = 0
            termios.tcsetattr(s, termios.TCSANOW, attrs)
            fd = s
        if self.machine == "rv32":
            proc = self._spawn_rv32(s)
            with self._lock:
                self.proc = proc
                self._board_master, self._board_slave = m, s
            return
        mp = str(self.image) if self.image else micropython_binary()
        heap = ["-X", f"heapsize={self.heap}"] if self.heap else []
        env = dict(os.environ)
        if self.rom_image is None:
            args = [mp, *heap] + ([] if self.repl else [str(self.main)])
            # frozen modules first, as on a board (a deployed lib after them)
            env["MICROPYPATH"] = ".frozen" + (f":{self.lib}" if self.lib else "")
        else:
            args = romfs.command(self.rom_image, mp, heap, None if self.repl else self.main)
            env["MICROPYPATH"] = ".frozen"  # the firmware is found in /rom or not at all
        # tell the firmware's unix port how its serial port behaves (board_port/unix.py)
        env["HSMTLS_RX_RING"] = str(self.rx_ring or 0)
        env["HSMTLS_PTY_VMIN0"] = "1"
        env["HSMTLS_DEV_BUTTON"] = "1" if self.dev_button else "0"
        err = open(self._stderr_path, "ab")
        proc = subprocess.Popen(
            dies_with_us(args), stdin=fd, stdout=fd, stderr=err, cwd=self.flash_dir, env=env, close_fds=True
        )
        err.close()
        with self._lock:
            self.proc = proc
            self._board_master, self._board_slave = m, s

    def _spawn_rv32(self, slave: int) -> subprocess.Popen:
        # QEMU opens the board side of the relay itself, and finds a boot block with a
        # fresh seed at every boot (written beside the stderr log, not into the flash)
        from . import rv32

        flags = ((rv32.BOOT_NO_MAIN if self.repl else 0) | (0 if self.rx_ring else rv32.BOOT_NO_RING)
                 | (rv32.BOOT_DEV_BUTTON if self.dev_button else 0))
        boot = self._stderr_path.with_suffix(".boot")
        boot.write_bytes(rv32.boot_block(rv32.heap_bytes(self.heap), flags))
        assert self.image is not None
        with open(self._stderr_path, "ab") as err:
            return subprocess.Popen(dies_with_us(rv32.qemu_argv(self.image, os.ttyname(slave), boot)), stdin=subprocess.DEVNULL,
                                    stdout=err, stderr=err, cwd=self.flash_dir, close_fds=True)

    def _kill(self) -> None:
        with self._lock:
            proc, m, s = self.proc, self._board_master, self._board_slave
            self.proc = None
            self._board_master = self._board_slave = -1
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for fd in (m, s):
            if fd >= 0:
                os.close(fd)

    def reset(self) -> None:
        """Hard reset: the firmware restarts from main.py; the host tty stays."""
        self._kill()
        self.resets += 1
        self._spawn()

    def factory_reset(self) -> None:
        """Erase the flash (everything in its directory) and restart: a board with no
        trust anchor, in its first-provisioning window again."""
        self._kill()
        for p in self.flash_dir.iterdir():
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        self.resets += 1
        self._spawn()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._kill()
        for fd in (self._host_master, self._host_slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self._host_master = self._host_slave = -1
        try:
            self.stderr = self._stderr_path.read_bytes()
            self._stderr_path.unlink()
            self._stderr_path.with_suffix(".boot").unlink(missing_ok=True)
        except OSError:
            pass
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> EmulatedBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def last_words(self) -> str:
        """Why a board that stopped by itself stopped: the last line of text it wrote
        (MicroPython's traceback ends with the exception), with its exit code."""
        rc = self.proc.poll() if self.proc is not None else None
        deadline = time.monotonic() + 1.0
        while self._thread is not None and time.monotonic() < deadline:
            # the relay copies what the board wrote last: let it
            with self._lock:
                m = self._board_master
            if m < 0 or not select.select([m], [], [], 0)[0]:
                time.sleep(0.02)  # and to keep what it read
                break
            time.sleep(0.01)
        if self.direct and self._host_slave >= 0:
            # no relay saw it: what the host has not read is still on its tty
            while select.select([self._host_slave], [], [], 0)[0]:
                data = os.read(self._host_slave, 4096)
                if not data:
                    break
                self.tail = (self.tail + data)[-1024:]
        text = self.tail.decode("ascii", "replace").replace("\r", "\n")
        lines = [ln.strip() for ln in text.split("\n") if ln.strip().isprintable() and ln.strip()]
        why = lines[-1] if lines else "no output"
        if "MemoryError" in why:
            why += f" (heap {self.heap} is too small to start the firmware)"
        return f"the board stopped (exit code {rc}): {why}"

    def wait_repl(self, timeout: float) -> bool:
        """Whether the firmware left link mode for the REPL within `timeout` s: the unix
        port's process ends with main.py (its REPL is a run of its own, repl=True); the
        rv32 machine, as a board does, goes on to MicroPython's REPL on its serial port,
        whose prompt the relay sees."""
        if self.machine != "rv32":
            return self.wait_exit(timeout) is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b">>> " in self.tail:
                return True
            time.sleep(0.02)
        return False

    def wait_exit(self, timeout: float) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    # --- the relay -------------------------------------------------------------------

    def _to_board(self, m: int, s: int, data: bytes) -> None:
        if self.to_board is not None:
            data = self.to_board.apply(data)
        if not data:
            return
        if self.rx_ring is not None:
            waiting = _inq(s)
            room = max(0, self.rx_ring - waiting)
            if len(data) > room:
                self.rx_dropped += len(data) - room
                data = data[:room]
            self.rx_peak = max(self.rx_peak, waiting + len(data))
        if data:
            os.write(m, data)

    def _relay(self) -> None:
        host = self._host_master
        while not self._stop.is_set():
            with self._lock:
                m, s = self._board_master, self._board_slave
            fds = [host] + ([m] if m >= 0 else [])
            try:
                r, _, _ = select.select(fds, [], [], 0.005)
            except (OSError, ValueError):
                time.sleep(0.005)
                continue
            try:
                if host in r:
                    data = os.read(host, 4096)
                    if data and m >= 0:
                        self._to_board(m, s, data)
                elif self.to_board is not None and self.to_board.pending and m >= 0:
                    self._to_board(m, s, b"")
                if m >= 0 and m in r:
                    data = os.read(m, 4096)
                    self.tail = (self.tail + data)[-1024:]
                    if self.to_host is not None:
                        data = self.to_host.apply(data)
                    if data:
                        os.write(host, data)
                elif self.to_host is not None and self.to_host.pending:
                    data = self.to_host.release()
                    if data:
                        os.write(host, data)
            except OSError:
                # the board process died or is being reset: its pty is gone
                time.sleep(0.005)
