# Board entry point (runs after boot.py, once USB CDC is up): link mode on the serial
# port until the host sends REPL. Then Ctrl-C works again and mpremote can take over.
# The emulator runs this same file under the MicroPython unix port.

import board_port
from boardapp import Board

board_port.setup()
try:
    Board(board_port).run()
finally:
    board_port.leave_link_mode()
