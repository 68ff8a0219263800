"""The host end of the board link, over pyserial (a real port or the emulator's pty).

``HostLink.connect()`` sends SYNC with a nonce until the board answers HELLO with the
same nonce; both ends then start their sequence numbers afresh. A HELLO without our
nonce afterwards means the board restarted: ``board_reset`` is set and the frame is
handed to the caller, which fails whatever was in progress.

Toward the board the window is what its HELLO says (``rx_window``): 210 bytes for a
classic ESP32, which drops what overflows its 260-byte UART ring (the link's PING, 9
bytes, may follow while the board computes); more for native USB and a pty, which
hold the sender back instead. Until a HELLO arrives, and for firmware that does not
say, it is 210.
"""

from __future__ import annotations

import os
import select
import time

import serial

from hsmlink import protocol as P
from hsmlink.link import Link

HOST_WINDOW = 210


def now_ms() -> int:
    return int(time.monotonic() * 1000)


class HostSideLink(Link):
    """The link with bare ACKs toward the board held back a little. Every frame the host
    sends carries its ack, but a bare ACK for each burst the board writes lands in the
    board's UART ring unread while the board goes on writing or computing: a slow board
    (the emulated RV32) finds five of them (45 bytes) in the 50 bytes the host's window
    leaves free of its 260, and the next byte is lost. So a bare ACK waits until half
    the board's window toward the host (boardapp: 1024 bytes) has arrived unacknowledged,
    or ACK_DELAY_MS has passed (well inside the board's 150 ms before it PINGs), unless
    a frame that carries it goes out first."""

    ACK_BYTES = 512
    ACK_DELAY_MS = 20

    def reset(self) -> None:
        super().reset()
        self.rx_unacked = 0  # bytes received since our last frame
        self.ack_due_since: int | None = None

    def receive(self, data, now=0, n=None):  # type: ignore[no-untyped-def]
        self.rx_unacked += len(data) if n is None else n
        return super().receive(data, now, n)

    def output(self, now):  # type: ignore[no-untyped-def]
        hold = False
        if self.ack_due and self.rx_unacked < self.ACK_BYTES:
            if self.ack_due_since is None:
                self.ack_due_since = now
            hold = now - self.ack_due_since < self.ACK_DELAY_MS
        if hold:
            self.ack_due = False
        out = super().output(now)
        if out:  # every frame carries our ack
            self.rx_unacked = 0
            self.ack_due_since = None
        elif hold:
            self.ack_due = True
        return out


class LinkError(Exception):
    pass


class HostLink:
    def __init__(self, port: str, baudrate: int = 115200, window: int | None = None, rto: int = 150) -> None:
        try:
            # exclusive (as mpremote opens it): a second program on the same port would
            # interleave its bytes with ours; it is told the port is busy instead
            self.ser = serial.Serial(port, baudrate, timeout=0, exclusive=True)
        except (serial.SerialException, OSError) as e:
            if "exclusively lock" in str(e):
                raise LinkError(f"{port} is busy: close the program using it (hsmtls bridge, a serial monitor, "
                                "mpremote) and retry") from None
            raise LinkError(f"cannot open {port}: {e}") from None
        self.port = port
        self.fixed_window = window  # None: as the board's HELLO says
        self.link = HostSideLink(window=window or HOST_WINDOW, rto=rto)
        self.hello: dict = {}
        self.board_resets = 0
        self._nonce = int.from_bytes(os.urandom(4), "big")

    def close(self) -> None:
        try:
            self.ser.close()
        except Exception:
            pass

    def __enter__(self) -> HostLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        return self.ser.fileno()

    # --- bytes ------------------------------------------------------------------------

    def flush(self) -> None:
        out = self.link.output(now_ms())
        if out:
            try:
                self.ser.write(out)
            except (serial.SerialException, OSError) as e:
                raise LinkError(f"serial write failed: {e}") from None

    def read_frames(self) -> list[tuple[int, bytes]]:
        """Whatever is waiting on the port, as delivered frames (never blocks)."""
        try:
            data = self.ser.read(65536)
        except (serial.SerialException, OSError) as e:
            raise LinkError(f"serial read failed: {e}") from None
        if not data:
            return []
        frames = []
        for ftype, payload in self.link.receive(data, now_ms()):
            if ftype == P.HELLO:
                info = P.unpack(payload)
                if info.get("sync") == self._nonce:
                    continue  # a late copy of the answer to our own SYNC
                self.board_resets += 1
                self._set_hello(info)
                self.link.reset()
            frames.append((ftype, payload))
        return frames

    def poll(self, timeout: float, extra: list | None = None) -> tuple[list[tuple[int, bytes]], list]:
        """Flush, wait up to `timeout` s for the port or `extra` objects, read frames."""
        self.flush()
        fds = [self.ser.fileno()] + list(extra or [])
        try:
            r, _, _ = select.select(fds, [], [], timeout)
        except (OSError, ValueError) as e:
            raise LinkError(f"select failed: {e}") from None
        frames = self.read_frames() if self.ser.fileno() in r else []
        self.flush()
        return frames, [x for x in r if x is not self.ser.fileno() and x != self.ser.fileno()]

    def send(self, ftype: int, payload: bytes | dict = b"") -> None:
        if isinstance(payload, dict):
            payload = P.pack(payload)
        self.link.send(ftype, payload)

    # --- session set-up ----------------------------------------------------------------

    def connect(self, timeout: float = 5.0) -> dict:
        """SYNC until the board answers; returns its HELLO (board info)."""
        self._nonce = (self._nonce + 1) & 0xFFFFFFFF
        try:
            self.ser.reset_input_buffer()  # whatever the board said to a previous host
        except (serial.SerialException, OSError):
            pass
        deadline = time.monotonic() + timeout
        next_sync = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() >= next_sync:
                self.link.send_unsequenced(P.SYNC, P.pack({"v": 1, "sync": self._nonce}))
                next_sync = time.monotonic() + 0.3
            self.flush()
            r, _, _ = select.select([self.ser.fileno()], [], [], 0.05)
            if not r:
                continue
            data = self.ser.read(65536)
            for ftype, payload in self.link.receive(data, now_ms()):
                if ftype == P.HELLO:
                    info = P.unpack(payload)
                    if info.get("sync") == self._nonce:
                        self.link.reset()
                        self._set_hello(info)
                        return info
        raise LinkError(f"no answer from a board on {self.port} within {timeout:.0f} s")

    def _set_hello(self, info: dict) -> None:
        self.hello = info
        w = info.get("rx_window")
        if self.fixed_window is None:
            self.link.window = w if isinstance(w, int) and 64 <= w <= 65536 else HOST_WINDOW

    def drain(self, timeout: float = 1.0) -> None:
        """Keep the link running until everything we sent is acknowledged."""
        deadline = time.monotonic() + timeout
        while not self.link.idle and time.monotonic() < deadline:
            self.poll(0.01)
