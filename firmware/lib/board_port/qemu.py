# The emulated MCU (hsmtls board emulate --machine rv32): MicroPython's qemu port on
# QEMU's RISC-V virt machine, with the rv32 board's additions (boards/rv32/board.c,
# the `rv32` module). Its UART is the serial port. Its flash is a directory on the host
# reached through semihosting, mounted at / at boot (_boot.py), so flash_path() is the
# ESP32's. QEMU counts 1 ns per instruction (-icount shift=0), so ticks_us() here is
# the instructions the board executes, in thousands, leaving out the time it sleeps
# waiting for the host: a handshake's figures are instruction counts, the same on
# every run. The serial port is read a burst at a time (Serial.read_into). Timeouts (ticks_ms) run on the board's clock, which sleep advances too.

import io
import time

import rv32

from .common import (  # noqa: F401
    RING_WINDOW,
    board_info,
    disable_ctrl_c,
    enable_ctrl_c,
    ticks_diff,
    ticks_ms,
)
from .common import Serial as _Serial

BOARD = "rv32"
RX_CHUNK = 256
NO_RING = 2  # boot flag: the host's end holds it back (a pty, native USB), no 260-byte ring
DEV_BUTTON = 4  # boot flag: the BOOT button held as the board starts (development mode)


class Serial(_Serial):
    # what the host sent, a burst at a time from the board's receive ring (board.c)
    chunked = True

    def read_into(self, buf):
        return rv32.uart_readinto(buf)


def ticks_us():
    return time.ticks_cpu()


def setup():
    disable_ctrl_c()


def info():
    return board_info(BOARD, 8192 if rv32.boot_flags() & NO_RING else RING_WINDOW)


def flash_path(name):
    return "/" + name


def leave_link_mode():
    enable_ctrl_c()


def dev_button():
    # the emulator holds the board's BOOT button at boot (EmulatedBoard(dev_button=True))
    return bool(rv32.boot_flags() & DEV_BUTTON)


def rng_seeded():
    # os.urandom is keyed at every boot by fresh host entropy (the emulator's stand-in for
    # the ESP32's hardware RNG); a board without a seed refuses to start
    return True


def restart():
    # the machine stops (QEMU exits, as the unix port's process ends); the emulator
    # restarts it on reset()
    import machine

    machine.reset()


# --- the flash: a host directory, file by file through semihosting ----------------------


def _name(path):
    # confined to the flash directory: no way out through ".." or an absolute path
    name = path.lstrip("/")
    if not name or ".." in name.split("/"):
        raise OSError(13)  # EACCES
    return name


class HostFile(io.IOBase):
    def __init__(self, handle, text):
        self._h = handle
        self._text = text
        self._pending = b""  # read ahead by readline()

    def readinto(self, buf):
        n = len(self._pending)
        if n:
            n = min(n, len(buf))
            buf[:n] = self._pending[:n]
            self._pending = self._pending[n:]
            return n
        return rv32.fs_readinto(self._h, buf)

    def read(self, n=-1):
        parts = [self._pending]
        self._pending = b""
        chunk = bytearray(256)
        while n < 0 or sum(len(p) for p in parts) < n:
            k = rv32.fs_readinto(self._h, chunk)
            if not k:
                break
            parts.append(bytes(chunk[:k]))
        data = b"".join(parts)
        if n >= 0 and len(data) > n:
            self._pending = data[n:]
            data = data[:n]
        return data.decode() if self._text else data

    def readline(self):
        line = self._pending
        chunk = bytearray(128)
        while b"\n" not in line:
            k = rv32.fs_readinto(self._h, chunk)
            if not k:
                break
            line += chunk[:k]
        i = line.find(b"\n") + 1 or len(line)
        self._pending = line[i:]
        line = line[:i]
        return line.decode() if self._text else line

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        return rv32.fs_write(self._h, data)

    def ioctl(self, req, arg):
        if req == 4:  # close
            self.close()
        return 0

    def close(self):
        if self._h is not None:
            rv32.fs_close(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class HostFS:
    """The VFS mounted at /: open, stat, remove and rename, what the firmware uses."""

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def open(self, path, mode):
        m = mode.replace("t", "")
        return HostFile(rv32.fs_open(_name(path), m if "b" in m else m + "b"), "b" not in mode)

    def stat(self, path):
        h = rv32.fs_open(_name(path), "rb")
        try:
            size = rv32.fs_flen(h)
        finally:
            rv32.fs_close(h)
        return (0x8000, 0, 0, 0, 0, 0, size, 0, 0, 0)

    def remove(self, path):
        rv32.fs_remove(_name(path))

    def rename(self, old, new):
        rv32.fs_rename(_name(old), _name(new))

    def ilistdir(self, path):
        raise OSError(95)  # EOPNOTSUPP: semihosting cannot list a directory

    def chdir(self, path):
        pass

    def getcwd(self):
        return ""


def mount_flash():
    import os

    os.mount(HostFS(), "/")
    os.chdir("/")
