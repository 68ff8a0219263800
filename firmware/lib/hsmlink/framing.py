# Frame delimiting: COBS (Cheshire & Baker, 1999) so 0x00 never occurs inside a frame
# and ends each one; a receiver that joins mid-stream, or sees noise, resynchronises at
# the next 0x00. Each frame is
#
#     COBS( type:1 | seq:1 | ack:1 | payload:0..MAX_PAYLOAD | crc32:4 little-endian ) 0x00
#
# The CRC (binascii.crc32, in C on both interpreters) covers type..payload. Anything
# that fails to decode (bad COBS, bad CRC, too short, too long) is dropped and counted,
# never raised: the link layer above retransmits what mattered.

import binascii

MAX_PAYLOAD = 200
HEADER = 3
TRAILER = 4
# COBS adds one byte per 254, plus the delimiter
MAX_ENCODED = HEADER + MAX_PAYLOAD + TRAILER + 2 + 1


def cobs_encode(data):
    data = bytes(data)
    out = bytearray()
    n = len(data)
    start = 0
    while True:
        limit = start + 254
        if limit > n:
            limit = n
        end = data.find(b"\x00", start, limit)
        if end < 0:
            end = limit
        out.append(end - start + 1)
        out += data[start:end]
        if end == n:
            break
        if data[end] == 0:
            start = end + 1
            if start == n:
                out.append(1)
                break
        else:
            start = end  # a full 254-byte block: no zero consumed
    return out


def cobs_decode(data):
    # -> bytes, or None when the encoding is broken
    out = bytearray()
    n = len(data)
    i = 0
    while i < n:
        code = data[i]
        if code == 0 or i + code > n:
            return None
        out += data[i + 1 : i + code]
        i += code
        if code < 255 and i < n:
            out.append(0)
    return out


def encode_frame(ftype, seq, ack, payload=b""):
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("frame payload too long")
    body = bytearray(HEADER + len(payload) + TRAILER)
    body[0] = ftype
    body[1] = seq & 255
    body[2] = ack & 255
    body[HEADER : HEADER + len(payload)] = payload
    crc = binascii.crc32(memoryview(body)[: HEADER + len(payload)]) & 0xFFFFFFFF
    body[-4:] = crc.to_bytes(4, "little")
    out = cobs_encode(body)
    out.append(0)
    return bytes(out)


class Decoder:
    # Stream of bytes -> list of (type, seq, ack, payload). Counters say what was lost.

    def __init__(self):
        self.buf = bytearray()
        self.overflow = False  # inside an oversized frame: skip to the next 0x00
        self.frames = 0
        self.bad_crc = 0
        self.bad_cobs = 0
        self.oversized = 0
        self.runts = 0

    def reset(self):
        self.buf = bytearray()
        self.overflow = False

    def counters(self):
        return {
            "frames": self.frames,
            "bad_crc": self.bad_crc,
            "bad_cobs": self.bad_cobs,
            "oversized": self.oversized,
            "runts": self.runts,
        }

    def feed(self, data):
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)
        out = []
        start = 0
        n = len(data)
        while start < n:
            z = data.find(b"\x00", start)
            end = n if z < 0 else z
            if not self.overflow:
                self.buf += data[start:end]
                if len(self.buf) > MAX_ENCODED:
                    self.oversized += 1
                    self.overflow = True
                    self.buf = bytearray()
            if z < 0:
                break
            if self.overflow:
                self.overflow = False
            elif self.buf:
                f = self._decode(self.buf)
                if f is not None:
                    out.append(f)
            self.buf = bytearray()
            start = z + 1
        return out

    def _decode(self, enc):
        body = cobs_decode(enc)
        if body is None:
            self.bad_cobs += 1
            return None
        if len(body) < HEADER + TRAILER:
            self.runts += 1
            return None
        k = len(body) - TRAILER
        crc = binascii.crc32(memoryview(body)[:k]) & 0xFFFFFFFF
        if crc != int.from_bytes(bytes(body[k:]), "little"):
            self.bad_crc += 1
            return None
        self.frames += 1
        return body[0], body[1], body[2], bytes(body[HEADER:k])
