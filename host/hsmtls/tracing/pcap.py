"""A tiny pcapng writer: TLS bytes as a TCP stream Wireshark reads.

For links that are not TCP (the board's serial link, `hsmtls bridge --pcap`) and for
tests: the bytes each side sent become segments of one synthetic TCP connection
(Ethernet/IPv4/TCP, three-way handshake first, correct sequence numbers and checksums),
so Wireshark and tshark dissect them as TLS and, with a key log, decrypt them.

    with PcapWriter("link.pcapng", server_port=443) as cap:
        cap.tcp("c2s", client_hello_bytes)   # client -> server
        cap.tcp("s2c", server_flight_bytes)  # server -> client

`direction` is "c2s" or "s2c" (also accepted: "client", "server" for who sent it).
On a server port other than 443, tell tshark: `-d tcp.port==PORT,tls`.
"""

from __future__ import annotations

import struct
import time
from types import TracebackType

LINKTYPE_ETHERNET = 1
_MSS = 1460

_CLIENT_MAC = bytes.fromhex("020000000001")
_SERVER_MAC = bytes.fromhex("020000000002")


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _block(block_type: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", block_type, n) + body + struct.pack("<I", n)


class PcapWriter:
    """Writes a pcapng file of one TCP connection between a client and a server."""

    def __init__(
        self,
        path: str,
        client: tuple[str, int] = ("10.0.0.1", 49152),
        server: tuple[str, int] = ("10.0.0.2", 443),
        server_port: int | None = None,
        comment: str = "hsmtls",
    ) -> None:
        self.path = path
        self.client = (bytes(int(x) for x in client[0].split(".")), client[1])
        port = server_port if server_port is not None else server[1]
        self.server = (bytes(int(x) for x in server[0].split(".")), port)
        try:
            self._f = open(path, "wb")
        except OSError as e:
            raise OSError(f"cannot write capture {path}: {e.strerror}; give a writable path") from None
        self._seq = {"c2s": 1000, "s2c": 5000}
        self._ip_id = 1
        self._opened = False
        shb_opt = self._option(1, comment.encode()) + self._option(0, b"")
        self._f.write(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + shb_opt))
        idb_opt = self._option(2, b"hsmtls") + self._option(9, b"\x06") + self._option(0, b"")
        self._f.write(_block(0x00000001, struct.pack("<HHI", LINKTYPE_ETHERNET, 0, 65535) + idb_opt))

    @staticmethod
    def _option(code: int, value: bytes) -> bytes:
        return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)

    def _frame(self, direction: str, flags: int, payload: bytes = b"", ts: float | None = None) -> None:
        c2s = direction == "c2s"
        (sip, sport), (dip, dport) = (self.client, self.server) if c2s else (self.server, self.client)
        seq = self._seq[direction]
        ack = self._seq["s2c" if c2s else "c2s"]
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack if flags & 0x10 else 0,
                          5 << 4, flags, 65535, 0, 0) + payload
        pseudo = sip + dip + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), self._ip_id, 0x4000, 64, 6, 0,
                         sip, dip)
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        eth = (_SERVER_MAC + _CLIENT_MAC if c2s else _CLIENT_MAC + _SERVER_MAC) + b"\x08\x00"
        pkt = eth + ip + tcp
        us = int((time.time() if ts is None else ts) * 1_000_000)
        epb = struct.pack("<IIIII", 0, us >> 32, us & 0xFFFFFFFF, len(pkt), len(pkt)) + pkt
        self._f.write(_block(0x00000006, epb))
        self._seq[direction] = (seq + len(payload) + (1 if flags & 0x03 else 0)) & 0xFFFFFFFF

    def _open(self) -> None:
        if not self._opened:
            self._opened = True
            self._frame("c2s", 0x02)  # SYN
            self._frame("s2c", 0x12)  # SYN, ACK
            self._frame("c2s", 0x10)  # ACK

    def feed(self, direction: str, payload: bytes) -> None:
        """The bridge's tap interface: same as tcp()."""
        self.tcp(direction, payload)

    def tcp(self, direction: str, payload: bytes, ts: float | None = None) -> None:
        """Record `payload` as sent in `direction` ("c2s"/"client" or "s2c"/"server")."""
        d = {"client": "c2s", "server": "s2c"}.get(direction, direction)
        if d not in ("c2s", "s2c"):
            raise ValueError("direction must be 'c2s' or 's2c', not %r" % direction)
        self._open()
        data = bytes(payload)
        for i in range(0, len(data), _MSS):
            self._frame(d, 0x18, data[i : i + _MSS], ts)  # PSH, ACK
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            if self._opened:
                self._frame("c2s", 0x11)  # FIN, ACK
                self._frame("s2c", 0x11)
                self._frame("c2s", 0x10)
            self._f.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
