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
    cobs_encode_into(out, data, len(data))
    return out


def cobs_encode_into(out, data, n):
    # COBS-encode data[:n] (bytes or bytearray), appended to the bytearray out; blocks
    # are copied whole, by slice of a view (no copy of the block itself).
    mv = memoryview(data)
    start = 0
    while True:
        limit = start + 254
        if limit > n:
            limit = n
        end = data.find(b"\x00", start, limit)
        if end < 0:
            end = limit
        out.append(end - start + 1)
        out += mv[start:end]
        if end == n:
            break
        if data[end] == 0:
            start = end + 1
            if start == n:
                out.append(1)
                break
        else:
            start = end  # a full 254-byte block: no zero consumed


def cobs_decode(data):
    # -> bytearray, or None when the encoding is broken
    out = bytearray(len(data))
    n = cobs_decode_into(memoryview(data), len(data), out)
    return None if n < 0 else out[:n]


def cobs_decode_into(enc, n, out):
    # COBS-decode enc[:n] (a memoryview) into out (at least n bytes) -> the decoded
    # length, or -1 when the encoding is broken. Blocks are copied whole, by slice.
    i = 0
    w = 0
    while i < n:
        code = enc[i]
        if code == 0 or i + code > n:
            return -1
        k = code - 1
        out[w : w + k] = enc[i + 1 : i + code]
        w += k
        i += code
        if code < 255 and i < n:
            out[w] = 0
            w += 1
    return w


def encode_frame(ftype, seq, ack, payload=b""):
    out = bytearray()
    encode_frame_into(out, ftype, seq, ack, payload)
    return bytes(out)


def encode_frame_into(out, ftype, seq, ack, payload=b""):
    # the frame's wire bytes (wire_length(len(payload)) of them), appended to out
    n = len(payload)
    if n > MAX_PAYLOAD:
        raise ValueError("frame payload too long")
    k = HEADER + n
    body = bytearray(k + TRAILER)
    body[0] = ftype
    body[1] = seq & 255
    body[2] = ack & 255
    body[HEADER:k] = payload
    crc = binascii.crc32(memoryview(body)[:k]) & 0xFFFFFFFF
    body[k:] = crc.to_bytes(4, "little")
    cobs_encode_into(out, body, k + TRAILER)
    out.append(0)


def wire_length(n):
    # bytes on the wire for an n-byte payload: a frame's body is under 254 bytes, so
    # COBS adds exactly one, and the delimiter one more
    return HEADER + n + TRAILER + 2


class Decoder:
    # Stream of bytes -> list of (type, seq, ack, payload). Counters say what was lost.
    # A frame is gathered and decoded in two buffers made once: on the board, every
    # byte received used to leave about twelve bytes of garbage (slices, a growing
    # bytearray, the decoded copy), which brings the next collection of the whole heap
    # nearer. What is handed out, the payload, is a copy: the caller keeps it.

    def __init__(self):
        self.buf = bytearray(MAX_ENCODED)  # the COBS bytes of the frame being gathered
        self.n = 0
        self.body = bytearray(MAX_ENCODED)  # the frame, decoded
        self._buf = memoryview(self.buf)
        self._body = memoryview(self.body)
        self.overflow = False  # inside an oversized frame: skip to the next 0x00
        self.frames = 0
        self.bad_crc = 0
        self.bad_cobs = 0
        self.oversized = 0
        self.runts = 0

    def reset(self):
        self.n = 0
        self.overflow = False

    def counters(self):
        return {
            "frames": self.frames,
            "bad_crc": self.bad_crc,
            "bad_cobs": self.bad_cobs,
            "oversized": self.oversized,
            "runts": self.runts,
        }

    def feed(self, data, n=None):
        # data[:n] (all of it by default); a bytes or bytearray is read where it lies
        if n is None:
            n = len(data)
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data[:n])  # find() below
        mv = memoryview(data)
        out = []
        start = 0
        while start < n:
            z = data.find(b"\x00", start, n)
            end = n if z < 0 else z
            if not self.overflow:
                k = end - start
                if self.n + k > MAX_ENCODED:
                    self.oversized += 1
                    self.overflow = True
                    self.n = 0
                elif k:
                    self.buf[self.n : self.n + k] = mv[start:end]
                    self.n += k
            if z < 0:
                break
            if self.overflow:
                self.overflow = False
            elif self.n:
                f = self._decode(self.n)
                if f is not None:
                    out.append(f)
            self.n = 0
            start = z + 1
        return out

    def _decode(self, n):
        body = self.body
        w = cobs_decode_into(self._buf, n, body)
        if w < 0:
            self.bad_cobs += 1
            return None
        if w < HEADER + TRAILER:
            self.runts += 1
            return None
        k = w - TRAILER
        crc = binascii.crc32(self._body[:k]) & 0xFFFFFFFF
        if crc != int.from_bytes(body[k:w], "little"):
            self.bad_crc += 1
            return None
        self.frames += 1
        return body[0], body[1], body[2], bytes(self._body[HEADER:k])
