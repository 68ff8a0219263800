# Length-prefixed vectors of the TLS presentation language (RFC 5246 §4): a Parser that
# reads them from a message body and a Writer that builds them. Every read is bounds
# checked and raises decode_error, so a codec never indexes past what the peer sent.

from .constants import DECODE_ERROR
from .errors import TLSError


class Parser:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def remaining(self):
        return len(self.data) - self.pos

    def get(self, n):
        # n-byte big-endian unsigned integer. The hottest parse step, so the bounds
        # check is inline; for the 1 to 3 bytes TLS uses, a byte loop is cheaper
        # than int.from_bytes of a slice.
        pos = self.pos
        end = pos + n
        data = self.data
        if n < 0 or end > len(data):
            raise TLSError(DECODE_ERROR, "message truncated")
        self.pos = end
        v = 0
        while pos < end:
            v = (v << 8) | data[pos]
            pos += 1
        return v

    def get_bytes(self, n):
        pos = self.pos
        end = pos + n
        if n < 0 or end > len(self.data):
            raise TLSError(DECODE_ERROR, "message truncated")
        self.pos = end
        return bytes(self.data[pos:end])

    def get_vector(self, length_size, minimum=0, maximum=None):
        n = self.get(length_size)
        if n < minimum or (maximum is not None and n > maximum):
            raise TLSError(DECODE_ERROR, "vector length %d out of range" % n)
        return self.get_bytes(n)

    def get_list(self, length_size, item_size):
        # a vector of fixed-size integers, e.g. cipher_suites<2..2^16-2>
        raw = self.get_vector(length_size)
        if len(raw) % item_size:
            raise TLSError(DECODE_ERROR, "vector length not a multiple of %d" % item_size)
        sub = Parser(raw)
        return [sub.get(item_size) for _ in range(len(raw) // item_size)]

    def expect_end(self):
        if self.pos != len(self.data):
            raise TLSError(DECODE_ERROR, "%d trailing bytes" % (len(self.data) - self.pos))


class Writer:
    def __init__(self):
        self.buf = bytearray()

    def add(self, value, n):
        self.buf += value.to_bytes(n, "big")
        return self

    def add_bytes(self, data):
        self.buf += data
        return self

    def add_vector(self, length_size, data):
        self.buf += len(data).to_bytes(length_size, "big")
        self.buf += data
        return self

    def add_list(self, length_size, item_size, values):
        self.add(len(values) * item_size, length_size)
        for v in values:
            self.add(v, item_size)
        return self

    def bytes(self):
        return bytes(self.buf)
