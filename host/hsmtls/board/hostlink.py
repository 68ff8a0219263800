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

The port is a device path (opened exclusively) or a pyserial URL: ``rfc2217://host:port``
(ser2net, labgrid, a board farm's exporter) or ``socket://host:port`` (a raw TCP
serial server). ser2net does not acknowledge RFC 2217's SET_CONTROL for a pty or a
port without modem lines, on which pyserial waits 3 s and gives up: the URL is opened
with ``ign_set_control`` unless it sets its own options. Without a file descriptor
(RFC 2217's reader thread) the link is polled every millisecond.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
import warnings
from urllib.parse import urlsplit

import serial

from hsmlink import VERSION
from hsmlink import protocol as P
from hsmlink.link import Link

HOST_WINDOW = 210
URL_SCHEMES = ("rfc2217", "socket")


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


def is_url(port: str) -> bool:
    return "://" in port


def _url(port: str) -> str:
    """`port` as pyserial opens it: RFC 2217 without waiting for SET_CONTROL answers."""
    scheme = port.split("://", 1)[0].lower()
    if scheme not in URL_SCHEMES:
        raise LinkError(f"{port}: not a serial port URL this tool opens (rfc2217://HOST:PORT or "
                        "socket://HOST:PORT), nor a device path")
    parts = urlsplit(port)
    if parts.hostname is None or parts.port is None:
        raise LinkError(f"{port}: expected {scheme}://HOST:PORT")
    if scheme == "rfc2217" and not parts.query:
        return port + "?ign_set_control"
    return port


def pyserial_port(port: str) -> str:
    """What pyserial-based tools (mpremote, esptool) are given for `port`: a device as
    it is, a URL as `open_serial` opens it."""
    return _url(port) if is_url(port) else port


def open_serial(port: str, baudrate: int = 115200) -> serial.SerialBase:
    """The port, non-blocking: a device exclusively, a URL through pyserial's handlers;
    a LinkError saying in one line what is wrong and what to do."""
    if is_url(port):
        url = _url(port)
        _quiet_rfc2217_reader()
        try:
            with warnings.catch_warnings():  # pyserial's RFC 2217 thread: setDaemon(), setName()
                warnings.simplefilter("ignore", DeprecationWarning)
                ser = serial.serial_for_url(url, baudrate, timeout=0)
            sock = getattr(ser, "_socket", None)
            if sock is not None:  # (pyserial's RFC 2217 client sets it; its socket:// does not)
                # a frame and its ack are small: Nagle would hold each for the peer's
                # delayed ACK, 40 ms a round trip
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return ser
        except (serial.SerialException, OSError, ValueError) as e:
            text = str(e)
            if _port_in_use(urlsplit(port)):
                raise LinkError(f"{port} is busy: the serial server lets one client at a time and another has "
                                "it (hsmtls bridge, a labgrid session, a terminal): close it and retry") from None
            if "timeout while waiting" in text or "does not seem to support" in text:
                raise LinkError(f"{port} answers, but not as an RFC 2217 serial port ({text}): check the "
                                "exporter's accepter (ser2net: telnet(rfc2217),tcp,...)") from None
            reason = text.split(": ", 1)[-1] if "Could not open port" in text else text
            raise LinkError(f"cannot reach {port}: {reason}: is the serial server (ser2net, the labgrid "
                            "exporter) running there, and the port exported?") from None
    try:
        # exclusive (as mpremote opens it): a second program on the same port would
        # interleave its bytes with ours; it is told the port is busy instead
        return serial.Serial(port, baudrate, timeout=0, exclusive=True)
    except (serial.SerialException, OSError) as e:
        if "exclusively lock" in str(e):
            raise LinkError(f"{port} is busy: close the program using it (hsmtls bridge, a serial monitor, "
                            "mpremote, ser2net) and retry") from None
        raise LinkError(f"cannot open {port}: {e}") from None


def _port_in_use(parts) -> bool:
    """Whether the server at the URL says its port is taken (ser2net: "Port already in
    use", then it hangs up), which pyserial reports as a broken pipe."""
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1.0) as s:
            data = b""
            while len(data) < 512:
                chunk = s.recv(512)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return False
    return b"in use" in data


_hook_installed = False


def _quiet_rfc2217_reader() -> None:
    """pyserial's RFC 2217 reader thread dies with a traceback when the server hangs up
    during the open; the open itself reports that, in one line."""
    global _hook_installed
    if _hook_installed:
        return
    _hook_installed = True
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.thread is not None and args.thread.name.startswith("pySerial RFC 2217 reader") \
                and issubclass(args.exc_type, OSError):
            return
        previous(args)

    threading.excepthook = hook


def _fileno(ser: serial.SerialBase) -> int | None:
    try:
        return ser.fileno()
    except (AttributeError, NotImplementedError, OSError, ValueError):
        return None


class HostLink:
    def __init__(self, port: str, baudrate: int = 115200, window: int | None = None, rto: int = 150) -> None:
        self.ser = open_serial(port, baudrate)
        self._fd = _fileno(self.ser)
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

    def fileno(self) -> int | None:
        return self._fd

    def _wait(self, timeout: float, extra: list) -> tuple[bool, list]:
        """Wait up to `timeout` s for bytes from the board or one of `extra` (objects with
        fileno()); (board readable, ready extras)."""
        try:
            if self._fd is not None:
                r, _, _ = select.select([self._fd, *extra], [], [], timeout)
                return self._fd in r, [x for x in r if x is not self._fd and x != self._fd]
            deadline = time.monotonic() + timeout
            while True:
                if self.ser.in_waiting:
                    return True, select.select(extra, [], [], 0)[0] if extra else []
                left = deadline - time.monotonic()
                if left <= 0:
                    return False, []
                step = min(left, 0.001)
                if extra:
                    r, _, _ = select.select(extra, [], [], step)
                    if r:
                        return bool(self.ser.in_waiting), r
                else:
                    time.sleep(step)
        except (OSError, ValueError, serial.SerialException) as e:
            raise LinkError(f"select failed: {e}") from None

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
        readable, ready = self._wait(timeout, list(extra or []))
        frames = self.read_frames() if readable else []
        self.flush()
        return frames, ready

    def send(self, ftype: int, payload: bytes | dict = b"") -> None:
        if isinstance(payload, dict):
            payload = P.pack(payload)
        self.link.send(ftype, payload)

    # --- session set-up ----------------------------------------------------------------

    def connect(self, timeout: float = 5.0, check_version: bool = True) -> dict:
        """SYNC until the board answers; returns its HELLO (board info). A board whose
        firmware speaks another link version is a LinkError unless not `check_version`
        (deploy, status: they work with any)."""
        self._nonce = (self._nonce + 1) & 0xFFFFFFFF
        try:
            if self._fd is None:
                # RFC 2217's purge waits 50 ms or more for the server's answer; what
                # waits in our own buffer is what matters
                self.ser.read(65536)
            else:
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
            readable, _ = self._wait(0.05, [])
            if not readable:
                continue
            try:
                data = self.ser.read(65536)
            except (serial.SerialException, OSError) as e:
                raise LinkError(f"serial read failed: {e}") from None
            for ftype, payload in self.link.receive(data, now_ms()):
                if ftype == P.HELLO:
                    info = P.unpack(payload)
                    if info.get("sync") == self._nonce:
                        self.link.reset()
                        self._set_hello(info)
                        if check_version:
                            check_firmware(info, self.port)
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


def check_firmware(hello: dict, port: str) -> None:
    """A LinkError unless the board's firmware speaks this host's link version."""
    v = hello.get("v")
    if v == VERSION:
        return
    if isinstance(v, int) and v > VERSION:
        raise LinkError(f"the board on {port} runs newer firmware (link v{v}) than this hsmtls (v{VERSION}): "
                        "upgrade hsmtls, or deploy this version's firmware (hsmtls board deploy)")
    raise LinkError(f"the board on {port} runs other firmware (link v{v}, this hsmtls speaks v{VERSION}): "
                    f"deploy this version's (hsmtls board deploy --port {port})")
