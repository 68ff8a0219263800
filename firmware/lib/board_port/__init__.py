# The one place that knows which board we run on. Portable firmware code imports
# `board_port` and uses only what both implementations provide:
#   setup()                    link mode: Ctrl-C off, full CPU speed
#   Serial()                   .wait(ms) -> bool, .read_into(buf) -> n (never blocks),
#                              .write(data)
#   ticks_ms(), ticks_us(), ticks_diff(a, b), info() -> dict, flash_path(name), leave_link_mode()
#   RX_CHUNK                   bytes to read from the serial port at a time
#   dev_button() -> bool       the button that puts the board in development mode
#                              held at boot (the REPL reachable from the link)
#   rng_seeded() -> bool       os.urandom is truly random (ESP32: the radio is on)
#   restart()                  where a production board goes instead of its REPL
# unix.py is the MicroPython unix port on a pty (the emulated board); esp32.py the board;
# qemu.py the emulated MCU (rv32: QEMU's RISC-V virt machine).

import sys

if sys.platform == "esp32":
    from .esp32 import *  # noqa: F403
elif sys.platform == "qemu":
    from .qemu import *  # noqa: F403
else:
    from .unix import *  # noqa: F403
