# The emulated board: the MicroPython unix port on a raw pty. Its "flash" is the
# working directory the emulator starts it in.

from .common import Serial, board_info, disable_ctrl_c, enable_ctrl_c, ticks_diff, ticks_ms  # noqa: F401

BOARD = "emulator"


def setup():
    disable_ctrl_c()


def info():
    return board_info(BOARD)


def flash_path(name):
    return name


def leave_link_mode():
    enable_ctrl_c()
