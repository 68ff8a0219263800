# Board entry point (runs after boot.py, once USB CDC is up): link mode on the serial
# port. A board in development mode (a `dev` file on its flash, or its BOOT button held
# as it starts) leaves it for the REPL when the host sends REPL; then Ctrl-C works again
# and mpremote can take over. A production board never reaches its REPL from here: if
# the firmware stops for any reason, the board restarts (docs/board-security.md).
# The emulator runs this same file under the MicroPython unix port.

import micropython

# before anything else: from here on 0x03 is data, not KeyboardInterrupt (a host that
# resets the board and sends Ctrl-C would otherwise stop main.py while it imports)
micropython.kbd_intr(-1)

import gc  # noqa: E402

# While the code loads, collect after every 2 KB allocated: what an import leaves as
# garbage is free again before the next objects are made, so the code's objects fill
# those holes instead of leaving the heap in pieces (the smallest heap that completes a
# handshake went from 128 to 120 KiB on the emulator, from ROMFS).
gc.threshold(2048)
import board_port  # noqa: E402

board = None
try:
    from boardapp.board import Board

    gc.collect()
    # Where the heap is tight, then collect after every eighth of what is free allocated: a
    # handshake's garbage is freed before the objects that stay are made, so they do not
    # land amid it and split what is free (on the 32-bit emulator, firmware frozen, the
    # smallest heap of a handshake went from 56 to 50 KiB plain, 66 to 60 with an RSA
    # client key). With more room the collector runs only when an allocation fails: each
    # collection marks every live object, and with the code in the heap (.mpy files) that
    # made a handshake twice as long.
    _free = gc.mem_free()
    gc.threshold(_free // 8 if _free < 48 * 1024 else -1)
    del _free
    board_port.setup()
    board = Board(board_port)
    board.run()
finally:
    if board is not None and board.dev and not board.running:
        board_port.leave_link_mode()  # asked for the REPL, and allowed it
    elif board is None and board_port.dev_button():
        board_port.leave_link_mode()  # the firmware did not start: the developer's REPL
    else:
        board_port.restart()
