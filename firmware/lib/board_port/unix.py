# The emulated board: the MicroPython unix port on a raw pty. Its "flash" is the
# working directory the emulator starts it in.

import gc
import sys

from .common import Serial, disable_ctrl_c, enable_ctrl_c, ticks_diff, ticks_ms  # noqa: F401

BOARD = "emulator"


def setup():
    disable_ctrl_c()


def info():
    return {
        "board": BOARD,
        "platform": sys.platform,
        "impl": "micropython %d.%d.%d" % sys.implementation.version[:3],
        "mpy": getattr(sys.implementation, "_mpy", 0),  # .mpy ABI the deploy must match
        "heap": gc.mem_free() + gc.mem_alloc(),
    }


def flash_path(name):
    return name


def leave_link_mode():
    enable_ctrl_c()
