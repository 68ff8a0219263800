# GHASH, the universal hash of AES-GCM (NIST SP 800-38D §6.4), and the two byte loops
# of GCM's counter mode (filling counter blocks, XOR in place), for the MicroPython
# backend. GF(2^128) multiplication uses Shoup's 4-bit tables: sixteen multiples of H
# per key plus a 16-entry reduction table. The table is built per key (two keys per
# handshake), so it is built in viper too. Each loop has two kernels: a portable one
# over Python ints, which also runs on CPython so it can be checked against
# `cryptography`, and a `@micropython.viper` one that MicroPython compiles to machine
# code (GHASH about 50x faster; ESP32, S2/S3 and C3 all have the emitter, and
# `mpy-cross -march=xtensawin|rv32imc` precompiles it). The viper code sits behind
# `import micropython`, which fails on CPython, so CPython never evaluates it.

import array

# R(rem) of Shoup's method: what reducing the four bits shifted out of the low end
# adds to the high 16 bits (x^128 = x^7 + x^2 + x + 1, bit-reflected as 0xE1).
_LAST4 = (
    0x0000, 0x1C20, 0x3840, 0x2460, 0x7080, 0x6CA0, 0x48C0, 0x54E0,
    0xE100, 0xFD20, 0xD940, 0xC560, 0x9180, 0x8DA0, 0xA9C0, 0xB5E0,
)  # fmt: skip
_R = 0xE1 << 120


def _table(h):
    # M[n] = n * H for each nibble n, GCM bit order (M[8] = H, M[4] = H*x, ...)
    v = int.from_bytes(h, "big")
    m = [0] * 16
    m[8] = v
    i = 4
    while i:
        v = (v >> 1) ^ (_R if v & 1 else 0)
        m[i] = v
        i >>= 1
    for i in (2, 4, 8):
        for j in range(1, i):
            m[i + j] = m[i] ^ m[j]
    return m


def _blocks_py(y, m, data, n):
    # Y = (Y ^ X_i) * H for each 16-byte block X_i of data[:n] (n a multiple of 16).
    # The portable kernel: Python ints, allocation on every step on MicroPython.
    r = [c << 112 for c in _LAST4]
    z = int.from_bytes(y, "big")
    for o in range(0, n, 16):
        x = z ^ int.from_bytes(data[o : o + 16], "big")
        z = 0
        for _ in range(16):
            b = x & 0xFF
            x >>= 8
            z = (z >> 4) ^ r[z & 15] ^ m[b & 15]
            z = (z >> 4) ^ r[z & 15] ^ m[b >> 4]
    y[:] = z.to_bytes(16, "big")


def _xor_py(dst, src, n):
    # dst[:n] ^= src[:n]
    x = int.from_bytes(dst[:n], "big") ^ int.from_bytes(src[:n], "big")
    dst[:n] = x.to_bytes(n, "big")


def _counters_py(buf, nonce, c, blocks):
    for i in range(blocks):
        o = i * 16
        buf[o : o + 12] = nonce
        buf[o + 12 : o + 16] = ((c + i) & 0xFFFFFFFF).to_bytes(4, "big")


_table_fast = None
_blocks_fast = None
_xor_fast = None
_counters_fast = None

try:
    import micropython
except ImportError:
    micropython = None

if micropython is not None:
    # Viper: `uint` is the machine word (32 or 64 bits), shifts on uint are logical,
    # and uint ^ int stays uint. Each 128-bit value is four big-endian 32-bit words z0
    # (high) .. z3 (low); left shifts only ever move 4 bits into bits 28..31, so
    # nothing needs masking to 32 bits on a 64-bit build (ptr32 loads zero-extend).
    # tab holds M as 64 words (4 per nibble), then _LAST4.

    @micropython.viper
    def _blocks_viper(y: ptr8, tab: ptr32, data: ptr8, n: int):  # noqa: F821
        zero = uint(0)  # noqa: F821  (viper's cast; types the z words as uint)
        o = 0
        while o < n:
            for i in range(16):
                y[i] = y[i] ^ data[o + i]
            z0 = zero
            z1 = zero
            z2 = zero
            z3 = zero
            i = 15
            while i >= 0:
                b = y[i]
                # low nibble, then high nibble: the step written out twice, as are the stores
                # below, since a loop or call per nibble would slow the hot loop
                rem = z3 & 15
                z3 = (z3 >> 4) | ((z2 & 15) << 28)
                z2 = (z2 >> 4) | ((z1 & 15) << 28)
                z1 = (z1 >> 4) | ((z0 & 15) << 28)
                z0 = (z0 >> 4) ^ (tab[64 + rem] << 16)
                j = (b & 15) << 2
                z0 ^= tab[j]
                z1 ^= tab[j + 1]
                z2 ^= tab[j + 2]
                z3 ^= tab[j + 3]
                rem = z3 & 15
                z3 = (z3 >> 4) | ((z2 & 15) << 28)
                z2 = (z2 >> 4) | ((z1 & 15) << 28)
                z1 = (z1 >> 4) | ((z0 & 15) << 28)
                z0 = (z0 >> 4) ^ (tab[64 + rem] << 16)
                j = (b >> 4) << 2
                z0 ^= tab[j]
                z1 ^= tab[j + 1]
                z2 ^= tab[j + 2]
                z3 ^= tab[j + 3]
                i -= 1
            y[0] = z0 >> 24
            y[1] = z0 >> 16
            y[2] = z0 >> 8
            y[3] = z0
            y[4] = z1 >> 24
            y[5] = z1 >> 16
            y[6] = z1 >> 8
            y[7] = z1
            y[8] = z2 >> 24
            y[9] = z2 >> 16
            y[10] = z2 >> 8
            y[11] = z2
            y[12] = z3 >> 24
            y[13] = z3 >> 16
            y[14] = z3 >> 8
            y[15] = z3
            o += 16

    @micropython.viper
    def _table_viper(h: ptr8, tab: ptr32):  # noqa: F821
        # tab[4n .. 4n+3] = M[n] as _table() makes it, from H; the _LAST4 words at 64..79
        # are the caller's. The reduction after each shift is masked, not branched on:
        # H is secret.
        z0 = uint((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3])  # noqa: F821
        z1 = uint((h[4] << 24) | (h[5] << 16) | (h[6] << 8) | h[7])  # noqa: F821
        z2 = uint((h[8] << 24) | (h[9] << 16) | (h[10] << 8) | h[11])  # noqa: F821
        z3 = uint((h[12] << 24) | (h[13] << 16) | (h[14] << 8) | h[15])  # noqa: F821
        k = 32  # M[8] = H, then M[4], M[2], M[1]: one multiplication by x each
        while True:
            tab[k] = z0
            tab[k + 1] = z1
            tab[k + 2] = z2
            tab[k + 3] = z3
            if k == 4:
                break
            mask = uint(0) - (z3 & 1)  # noqa: F821
            z3 = (z3 >> 1) | ((z2 & 1) << 31)
            z2 = (z2 >> 1) | ((z1 & 1) << 31)
            z1 = (z1 >> 1) | ((z0 & 1) << 31)
            z0 = (z0 >> 1) ^ ((mask & 0xE1) << 24)
            k >>= 1
        i = 8  # M[i + j] = M[i] ^ M[j] for i = 2, 4, 8 and 0 < j < i
        while i <= 32:
            j = 4
            while j < i:
                tab[i + j] = tab[i] ^ tab[j]
                tab[i + j + 1] = tab[i + 1] ^ tab[j + 1]
                tab[i + j + 2] = tab[i + 2] ^ tab[j + 2]
                tab[i + j + 3] = tab[i + 3] ^ tab[j + 3]
                j += 4
            i <<= 1

    @micropython.viper
    def _xor_viper(dst: ptr8, src: ptr8, n: int):  # noqa: F821
        i = 0
        while i < n:
            dst[i] = dst[i] ^ src[i]
            i += 1

    @micropython.viper
    def _counters_viper(buf: ptr8, nonce: ptr8, c: int, blocks: int):  # noqa: F821
        o = 0
        end = blocks * 16
        while o < end:
            for i in range(12):
                buf[o + i] = nonce[i]
            buf[o + 12] = c >> 24
            buf[o + 13] = c >> 16
            buf[o + 14] = c >> 8
            buf[o + 15] = c
            c += 1
            o += 16

    # a new key's table starts as a copy of this: zeros for M, then _LAST4
    _TABLE_START = bytes(array.array("I", [0] * 64 + list(_LAST4)))
    _table_fast = _table_viper
    _blocks_fast = _blocks_viper
    _xor_fast = _xor_viper
    _counters_fast = _counters_viper

HAVE_VIPER = _blocks_fast is not None


# The public wrappers check sizes once, because the viper loops index raw memory.


def xor_into(dst, src, n):
    # dst[:n] ^= src[:n] in place; dst a bytearray (or a writable memoryview of one)
    if n < 0 or len(dst) < n or len(src) < n:
        raise ValueError("xor_into: buffers shorter than n")
    if _xor_fast is not None:
        _xor_fast(dst, src, n)
    else:
        _xor_py(dst, src, n)


def fill_counters(buf, nonce, c, blocks):
    # buf[16*i : 16*i+16] = nonce12 || uint32_be(c + i) for i < blocks: CTR input blocks.
    # A TLS record is about 2^10 blocks; the bound keeps c a small int on every port.
    if len(nonce) != 12 or len(buf) < 16 * blocks or c < 0 or c + blocks > 0x40000000:
        raise ValueError("fill_counters: bad nonce, buffer or counter")
    if _counters_fast is not None:
        _counters_fast(buf, nonce, c, blocks)
    else:
        _counters_py(buf, nonce, c, blocks)


# slice-assigned to clear a block: one copy, where a loop costs 16 bytecode steps
_ZERO_BLOCK = bytes(16)


class GHash:
    # One per key: GHash(H).digest(aad, ciphertext) -> GHASH_H(A, C), 16 bytes.
    # portable=True forces the Python-int kernel (for tests and comparisons).

    def __init__(self, h, portable=False):
        if len(h) != 16:
            raise ValueError("GHASH key H must be 16 bytes")
        if _table_fast is not None and not portable:
            self._tab = array.array("I", _TABLE_START)  # from bytes: one memcpy
            _table_fast(h, self._tab)
            self._blocks = _blocks_fast
        else:
            self._tab = _table(h)
            self._blocks = _blocks_py
        self._y = bytearray(16)
        self._pad = bytearray(16)

    def _absorb(self, data):
        # data zero-padded to a whole number of blocks (SP 800-38D §7.1 step 5)
        n = len(data)
        full = n & ~15
        if full:
            self._blocks(self._y, self._tab, data, full)
        if n > full:
            pad = self._pad
            pad[:] = _ZERO_BLOCK
            pad[: n - full] = data[full:n]
            self._blocks(self._y, self._tab, pad, 16)

    def digest(self, aad, ciphertext):
        y = self._y
        y[:] = _ZERO_BLOCK
        self._absorb(aad)
        self._absorb(ciphertext)
        lens = self._pad
        lens[0:8] = (len(aad) * 8).to_bytes(8, "big")
        lens[8:16] = (len(ciphertext) * 8).to_bytes(8, "big")
        self._blocks(y, self._tab, lens, 16)
        return bytes(y)
