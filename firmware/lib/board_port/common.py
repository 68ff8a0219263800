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


def ticks_us():
    return time.ticks_us()


def ticks_diff(a, b):
    return time.ticks_diff(a, b)


# What the host may have in flight toward a board whose receive buffer drops what
# overflows (the classic ESP32's 260-byte stdin ring), leaving room for a PING.
RING_WINDOW = 210
TX_GIVE_UP_MS = 500


class Serial:
    # chunked: readinto() returns what is waiting (a pty with VMIN=0) instead of
    # blocking until the buffer is full; otherwise bytes are taken one at a time.
    chunked = False

    def __init__(self):
        self._rx = sys.stdin.buffer
        self._tx = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._one = bytearray(1)
        self._out = None  # poll for room to write, made when first needed

    def wait(self, timeout_ms):
        ready = self._poll.poll(timeout_ms)
        for entry in ready:
            if entry[1] & (select.POLLHUP | select.POLLERR):
                # the host end of the pty/serial is gone: stop instead of spinning
                # on a descriptor that is always "ready" (never happens on a board)
                raise SystemExit("link closed")
        return bool(ready)

    def read_into(self, buf):
        if self.chunked:
            if not self._poll.poll(0):
                return 0
            try:
                return self._rx.readinto(buf) or 0
            except OSError:
                return 0  # EAGAIN: nothing after all (a hang-up shows in wait())
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
        # A blocking port takes everything at once. A non-blocking one (the emulator's
        # direct pty) may take part or nothing (None): wait for room, and after
        # TX_GIVE_UP_MS drop the rest, as native USB CDC does when the host stops
        # reading; the link's retransmission recovers what mattered.
        mv = memoryview(data)
        waited = 0
        while len(mv):
            try:
                n = self._tx.write(mv)
            except OSError:
                raise SystemExit("link closed")  # EIO: the host end is gone
            if n:
                mv = mv[n:]
                continue
            if self._out is None:
                self._out = select.poll()
                self._out.register(self._tx, select.POLLOUT)
            if not self._out.poll(10):
                waited += 10
                if waited >= TX_GIVE_UP_MS:
                    return
        flush = getattr(self._tx, "flush", None)
        if flush:
            try:
                flush()
            except OSError:
                raise SystemExit("link closed")


def disable_ctrl_c():
    # 0x03 is data on the link, not KeyboardInterrupt
    micropython.kbd_intr(-1)


def enable_ctrl_c():
    micropython.kbd_intr(3)


def board_info(board, rx_window=RING_WINDOW):
    # what the HELLO frame says about the board and its MicroPython; rx_window: bytes
    # the host may have in flight toward us (the link's window in that direction)
    return {
        "board": board,
        "rx_window": rx_window,
        "platform": sys.platform,
        "impl": "micropython %d.%d.%d" % sys.implementation.version[:3],
        "mpy": getattr(sys.implementation, "_mpy", 0),  # .mpy ABI the deploy must match
        "heap": gc.mem_free() + gc.mem_alloc(),
    }
