# Board entry point (runs after boot.py, once USB CDC is up): link mode on the serial
# port until the host sends REPL. Then Ctrl-C works again and mpremote can take over.
# The emulator runs this same file under the MicroPython unix port.

import gc

# While the code loads, collect after every 2 KB allocated: what an import leaves as
# garbage is free again before the next objects are made, so the code's objects fill
# those holes instead of leaving the heap in pieces (the smallest heap that completes a
# handshake went from 128 to 120 KiB on the emulator, from ROMFS).
gc.threshold(2048)
import board_port  # noqa: E402
from boardapp import Board  # noqa: E402

gc.threshold(-1)
gc.collect()

board_port.setup()
try:
    Board(board_port).run()
finally:
    board_port.leave_link_mode()
