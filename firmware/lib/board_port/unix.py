# The emulated board: the MicroPython unix port on a raw pty. Its "flash" is the
# working directory the emulator starts it in.

import os

from .common import (  # noqa: F401
    RING_WINDOW,
    board_info,
    disable_ctrl_c,
    enable_ctrl_c,
    ticks_diff,
    ticks_ms,
    ticks_us,
)
from .common import Serial as _Serial

BOARD = "emulator"

# The emulator says how it imitates the board's serial port:
#   HSMTLS_RX_RING   the relay's receive ring in bytes (260: a classic ESP32 UART);
#                    0 = none, the pty holds the host back like native USB does
#   HSMTLS_PTY_VMIN0 our pty returns short reads, so the link is read in chunks
_RING = int(os.getenv("HSMTLS_RX_RING") or "260")
# at most 256 bytes a read, as an ESP32 takes its UART ring (board_port/esp32.py): the
# same read buffer in the heap, the same number of passes through the link per burst
RX_CHUNK = 256


class Serial(_Serial):
    chunked = bool(os.getenv("HSMTLS_PTY_VMIN0"))


def setup():
    disable_ctrl_c()


def info():
    return board_info(BOARD, RING_WINDOW if _RING else 8192)


def flash_path(name):
    return name


def dev_button():
    # the emulator holds the board's BOOT button at boot (EmulatedBoard(dev_button=True))
    return os.getenv("HSMTLS_DEV_BUTTON") == "1"


def rng_seeded():
    # os.urandom is the host kernel's getrandom()
    return True


def leave_link_mode():
    enable_ctrl_c()


def restart():
    pass  # the emulated board's process ends; the emulator restarts it on reset()
