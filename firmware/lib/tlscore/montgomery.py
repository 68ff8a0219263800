# Modular exponentiation for RSA on the board, in Montgomery form (Montgomery 1985),
# with the multiplication in viper, or in RISC-V assembly where the image has it:
# MicroPython's pow() runs mpz schoolbook multiply and long division per step and is
# not constant-time. One Montgomery product is the FIOS loop (Koc, Acar, Kaliski 1996,
# "Analyzing and comparing Montgomery multiplication algorithms") over little-endian
# limbs, then a subtraction of n chosen by a mask, so its time depends only on the size
# of n. Measured on the unix port against pow(): a 2048-bit public operation (e = 65537)
# about 1.8x faster, a 1024-bit CRT half with a secret exponent about 2.3x faster and in
# fixed time (pow_secret). Not yet measured on an ESP32, where both run 16-bit limbs
# (mpz digits are 16-bit there too).
#
# Limbs are half a machine word, so that a limb product plus two limbs fits in a uint:
# 32-bit limbs where the word is 64 bits (the unix port on x86-64), 16-bit limbs on a
# 32-bit word (ESP32). Both variants run on the unix port, so tests cover the ESP32's.
# An image that has the product in RISC-V assembly (the rv32 machine's: mont_rv32,
# frozen from boards/rv32/, found at import) uses it instead, with pow_secret's table
# lookup: 32-bit limbs on a 32-bit word (RV32IM's mulhu gives a product's high half),
# the same steps in the same fixed order. On rv32, in instructions: a 2048-bit public
# operation 1.9 M (viper's 16-bit limbs: 27 M), a 1024-bit CRT half 34 M (491 M).

import sys

import micropython

from .pkcs1 import byte_length

WIDE = sys.maxsize > 0x7FFFFFFF  # 64-bit words: 32-bit limbs
try:  # in the image whose CPU has it
    from mont_rv32 import address as _address
    from mont_rv32 import mont_mul as _mont_mul_asm
    from mont_rv32 import select as _select_asm
except ImportError:
    _mont_mul_asm = None
ASM = _mont_mul_asm is not None


@micropython.viper
def _mont_mul32(out: ptr32, a: ptr32, b: ptr32, n: ptr32, t: ptr32, s: int, n0: uint):
    # out = a * b / R mod n, R = 2^(32*s), for a, b < n; t: 2*s + 1 limbs of scratch.
    # out may be a or b: it is written only after the last read of them.
    low = (uint(1) << 32) - 1  # not a literal: mpy-cross takes 0xFFFFFFFF for an object
    i = 0
    while i <= s:
        t[i] = 0
        i += 1
    i = 0
    while i < s:
        bi = uint(b[i])
        x = uint(t[0]) + uint(a[0]) * bi
        c1 = x >> 32
        m = (x * n0) & low  # t + m*n is divisible by the limb base
        y = (x & low) + m * uint(n[0])
        c2 = y >> 32
        j = 1
        while j < s:
            x = uint(t[j]) + uint(a[j]) * bi + c1
            c1 = x >> 32
            y = (x & low) + m * uint(n[j]) + c2
            c2 = y >> 32
            t[j - 1] = y
            j += 1
        x = uint(t[s]) + c1 + c2
        t[s - 1] = x
        t[s] = x >> 32
        i += 1
    # t < 2n: out = t - n if that does not borrow, else t; chosen by mask, not branch
    borrow = uint(0)
    j = 0
    while j < s:
        x = uint(t[j]) - uint(n[j]) - borrow
        t[s + 1 + j] = x
        borrow = (x >> 32) & 1
        j += 1
    keep = uint(0) - (((uint(t[s]) - borrow) >> 32) & 1)  # all ones: t < n
    j = 0
    while j < s:
        out[j] = (uint(t[j]) & keep) | (uint(t[s + 1 + j]) & ~keep)
        j += 1
    out[s] = 0


@micropython.viper
def _mont_mul16(out: ptr16, a: ptr16, b: ptr16, n: ptr16, t: ptr16, s: int, n0: uint):
    # _mont_mul32 with 16-bit limbs, for 32-bit words; the same steps line by line. A
    # copy, not one function: viper fixes a pointer's width (ptr16/ptr32) when it compiles.
    i = 0
    while i <= s:
        t[i] = 0
        i += 1
    i = 0
    while i < s:
        bi = uint(b[i])
        x = uint(t[0]) + uint(a[0]) * bi
        c1 = x >> 16
        m = (x * n0) & 0xFFFF
        y = (x & 0xFFFF) + m * uint(n[0])
        c2 = y >> 16
        j = 1
        while j < s:
            x = uint(t[j]) + uint(a[j]) * bi + c1
            c1 = x >> 16
            y = (x & 0xFFFF) + m * uint(n[j]) + c2
            c2 = y >> 16
            t[j - 1] = y
            j += 1
        x = uint(t[s]) + c1 + c2
        t[s - 1] = x
        t[s] = x >> 16
        i += 1
    borrow = uint(0)
    j = 0
    while j < s:
        x = uint(t[j]) - uint(n[j]) - borrow
        t[s + 1 + j] = x
        borrow = (x >> 16) & 1
        j += 1
    keep = uint(0) - (((uint(t[s]) - borrow) >> 16) & 1)
    j = 0
    while j < s:
        out[j] = (uint(t[j]) & keep) | (uint(t[s + 1 + j]) & ~keep)
        j += 1
    out[s] = 0


@micropython.viper
def _select(out: ptr8, table, index: int, size: int):
    # out = table[index] (16 buffers of `size` bytes), reading every entry and keeping
    # one by mask: which entry is taken does not show in the time. Separate buffers,
    # not one: a board's fragmented heap has few free blocks of 16 entries' size.
    j = 0
    while j < size:
        out[j] = 0
        j += 1
    k = 0
    while k < 16:
        mask = ((uint(k ^ index) + 0xFFFF) >> 16) - 1  # all ones when k == index
        entry = ptr8(table[k])
        j = 0
        while j < size:
            out[j] = uint(out[j]) | (uint(entry[j]) & mask)
            j += 1
        k += 1


# Scratch for the products (2s+1 limbs), shared by every Modulus: one exponentiation
# runs at a time, and it holds nothing between products. Made at import for 2048-bit
# moduli (either limb width), while the heap is in one piece; grown for larger ones.
_scratch = bytearray(516)


def _scratch_for(size):
    global _scratch
    if len(_scratch) < size:
        _scratch = bytearray(size)
    return _scratch


class Modulus:
    # An odd modulus n > 1 and what Montgomery products mod n need: its limbs,
    # -n^-1 mod the limb base, R^2 mod n. Build one per key and keep it.

    def __init__(self, n, wide=WIDE, asm=ASM):
        if n < 3 or not n & 1:
            raise ValueError("Montgomery modulus must be odd")
        bits = 32 if wide or asm else 16
        lb = bits // 8
        self.n = n
        self.k = byte_length(n)
        self._s = s = (self.k + lb - 1) // lb
        self._size = lb * (s + 1)  # a value: s limbs and a zero top limb
        self._mul_fn = _mont_mul32 if wide else _mont_mul16
        base = 1 << bits
        x = 1  # n^-1 mod 2^bits by Newton's iteration, doubling the good bits each step
        for _ in range(5):
            x = x * (2 - n * x) % base
        self._n0 = (base - x) % base
        if asm:  # the assembly's modulus: s, n0 and the s limbs of n, 32-bit words
            self._n = nc = bytearray(4 * s + 8)
            nc[0:4] = s.to_bytes(4, "little")
            nc[4:8] = self._n0.to_bytes(4, "little")
            nc[8:] = n.to_bytes(4 * s, "little")
            self._mul_fn = None
        else:
            self._n = self._limbs(n)
        self._scratch_size = lb * (2 * s + 1)  # bytes of scratch a product needs
        # R^2 mod n, R = 2^(bits s), the Montgomery form of R: 2 R mod n (2 in Montgomery
        # form) to the power bits s, by Montgomery products: no int of twice n's size
        # (2^(2 bits s) would need a free 514-byte block for a 2048-bit n)
        self._rr = self._pow_mont(self._limbs((2 << (bits * s)) % n), bits * s)

    def _limbs(self, x):
        return bytearray(x.to_bytes(self._size, "little"))

    def _mul(self, out, a, b):
        if self._mul_fn is None:  # the assembly: out = a * b in place of a
            if out is not a:
                out[:] = a
            _mont_mul_asm(out, b, self._n, _scratch_for(self._scratch_size))
        else:
            self._mul_fn(out, a, b, self._n, _scratch_for(self._scratch_size), self._s, self._n0)

    def _to_mont(self, x):
        a = self._limbs(x % self.n)
        self._mul(a, a, self._rr)
        return a

    def _from_mont(self, a):
        self._mul(a, a, self._limbs(1))
        return int.from_bytes(a, "little")

    def mul(self, x, y):
        # x * y mod n for x, y < n, without the double-length product (a free 514-byte
        # block for a 2048-bit n) that an int multiplication makes: x R, then times y / R
        a = self._to_mont(x)
        self._mul(a, a, self._limbs(y))
        return int.from_bytes(a, "little")

    def pow(self, x, e):
        # x^e mod n for a public exponent e >= 1 (its bits steer the loop)
        if e < 1:
            raise ValueError("exponent must be positive")
        return self._from_mont(self._pow_mont(self._to_mont(x), e))

    def _pow_mont(self, base, e):
        # base^e, both in Montgomery form, e >= 1 public
        acc = bytearray(base)
        top = 1
        while top <= e:
            top <<= 1
        top >>= 2
        while top:
            self._mul(acc, acc, acc)
            if e & top:
                self._mul(acc, acc, base)
            top >>= 1
        return acc

    def pow_secret(self, x, e):
        # x^e mod n for a secret exponent 0 <= e < 2^(8k), k the byte length of n: fixed
        # 4-bit windows over all 8k bits whatever e is, each four squarings and one
        # multiplication by a table entry fetched by _select, so neither the bits of e
        # nor its length steer the work.
        one = self._to_mont(1)  # R mod n
        table = [one, self._to_mont(x)]  # x^0 .. x^15, Montgomery form
        for i in range(2, 16):
            entry = bytearray(self._size)
            self._mul(entry, table[i - 1], table[1])
            table.append(entry)
        acc = bytearray(one)
        pick = bytearray(self._size)
        digits = e.to_bytes(self.k, "big")  # read a nibble at a time: no int per window
        if self._mul_fn is None:
            # the assembly's products called as they are (a Python call less each), its
            # select given the entries' addresses and their size in words
            where = bytearray(64)
            for i in range(16):
                where[4 * i:4 * i + 4] = _address(table[i]).to_bytes(4, "little")
            words = self._size >> 2
            nc = self._n
            t = _scratch_for(self._scratch_size)
            for i in range(2 * self.k):
                for _ in range(4):
                    _mont_mul_asm(acc, acc, nc, t)
                d = digits[i >> 1]
                _select_asm(pick, where, (d >> 4) if i & 1 == 0 else (d & 15), words)
                _mont_mul_asm(acc, pick, nc, t)
        else:
            for i in range(2 * self.k):
                for _ in range(4):
                    self._mul(acc, acc, acc)
                d = digits[i >> 1]
                _select(pick, table, (d >> 4) if i & 1 == 0 else (d & 15), self._size)
                self._mul(acc, acc, pick)
        return self._from_mont(acc)
