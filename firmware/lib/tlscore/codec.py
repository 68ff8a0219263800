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

    def _need(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise TLSError(DECODE_ERROR, "message truncated")

    def get(self, n):
        # n-byte big-endian unsigned integer
        self._need(n)
        v = 0
        for i in range(self.pos, self.pos + n):
            v = (v << 8) | self.data[i]
        self.pos += n
        return v

    def get_bytes(self, n):
        self._need(n)
        b = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return b

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
