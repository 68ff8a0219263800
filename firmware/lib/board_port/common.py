# What the unix port and the ESP32 share: stdio as a raw byte pipe (sys.stdin.buffer /
# sys.stdout.buffer: text stdio would map CR and LF) and select.poll on stdin. A read of
# n bytes blocks until all n arrive, so bytes are taken one at a time while poll() says
# more are waiting: the link never waits inside a read.

import gc
import select
import sys
import time

import micropython


def ticks_ms():
    return time.ticks_ms()


def ticks_diff(a, b):
    return time.ticks_diff(a, b)


class Serial:
    def __init__(self):
        self._rx = sys.stdin.buffer
        self._tx = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._one = bytearray(1)

    def wait(self, timeout_ms):
        ready = self._poll.poll(timeout_ms)
        for entry in ready:
            if entry[1] & (select.POLLHUP | select.POLLERR):
                # the host end of the pty/serial is gone: stop instead of spinning
                # on a descriptor that is always "ready" (never happens on a board)
                raise SystemExit("link closed")
        return bool(ready)

    def read_into(self, buf):
        n = 0
        size = len(buf)
        poll = self._poll.poll
        one = self._one
        rd = self._rx.readinto
        while n < size and poll(0):
            if not rd(one):
                raise SystemExit("link closed")  # EOF: the host closed the link
            buf[n] = one[0]
            n += 1
        return n

    def write(self, data):
        if data:
            try:
                self._tx.write(data)
                flush = getattr(self._tx, "flush", None)
                if flush:
                    flush()
            except OSError:
                raise SystemExit("link closed")  # EIO: the host end is gone


def disable_ctrl_c():
    # 0x03 is data on the link, not KeyboardInterrupt
    micropython.kbd_intr(-1)


def enable_ctrl_c():
    micropython.kbd_intr(3)


def board_info(board):
    # what the HELLO frame says about the board and its MicroPython
    return {
        "board": board,
        "platform": sys.platform,
        "impl": "micropython %d.%d.%d" % sys.implementation.version[:3],
        "mpy": getattr(sys.implementation, "_mpy", 0),  # .mpy ABI the deploy must match
        "heap": gc.mem_free() + gc.mem_alloc(),
    }
