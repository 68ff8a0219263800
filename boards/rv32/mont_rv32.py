# ruff: noqa: F821  (the opcodes, registers and labels are the inline assembler's, not names)
#
# The Montgomery product of tlscore.montgomery in RISC-V assembly (RV32IM), for boards
# whose MicroPython has the inline RV32 assembler: 32-bit limbs, the high half of each
# limb product from `mulhu`, where viper on a 32-bit word is held to 16-bit limbs (a
# quarter of the work per product) and pays its own overhead on top. Frozen into the
# rv32 image only (boards/rv32/manifest.py): no other machine's compiler takes
# `asm_rv32`. tlscore.montgomery uses it when it imports, else its viper products.
#
# mont_mul(a, b, nc, t): a = a * b / R mod n, R = 2^(32*s), for a, b < n, a and b
# little-endian limbs (s of them and a zero top limb, 4*(s+1) bytes, word-aligned: a
# bytearray's own buffer; a and b may be the same buffer); nc: s, -n^-1 mod 2^32 and
# the s limbs of n, as 32-bit words; t: 2*s + 1 words of scratch. The same steps as
# montgomery._mont_mul32, in the same order (the FIOS loop, then n subtracted and the
# result chosen by a mask): loop counts fixed by s, no branch on a value, so the time
# depends only on the size of n. Returns 0 (a small int: nothing allocated).
#
# select(out, entries, index, words): out = the entry `index` (0..15) of 16 buffers of
# `words` 32-bit words, whose addresses (address()) are in `entries`: montgomery._select
# a word at a time, every entry read and one kept by mask, so which one does not show in
# the time. address(buf): where a buffer's bytes are (a heap object's stay put: the GC
# does not move them).

import micropython


@micropython.asm_rv32
def mont_mul(a0, a1, a2, a3):
    # a0: a (result), a1: b, advancing per outer step, a2: nc, a3: t. s0, s1 saved:
    # s0 = the end of b, s1 = the end of t's first s+1 words.
    addi(sp, sp, -16)
    sw(s0, 0(sp))
    sw(s1, 4(sp))
    lw(t0, 0(a2))  # s
    slli(t0, t0, 2)  # 4s
    add(s0, a1, t0)  # b end
    add(a4, a0, t0)  # a end
    add(s1, a3, t0)  # &t[s]
    # t[0..s] = 0
    mv(t4, a3)
    label(clear)
    sw(zero, 0(t4))
    addi(t4, t4, 4)
    bgeu(s1, t4, clear)
    # outer loop, one limb of b a step
    label(outer)
    lw(a6, 0(a1))  # bi
    lw(t5, 0(a0))
    mul(t6, t5, a6)
    mulhu(t0, t5, a6)  # x = a[0]*bi ...
    lw(t5, 0(a3))
    add(t6, t6, t5)
    sltu(t5, t6, t5)
    add(t0, t0, t5)  # ... + t[0]: low word t6, c1 = t0
    lw(a5, 4(a2))  # n0
    mul(a7, t6, a5)  # m = x * n0 mod 2^32
    lw(t5, 8(a2))  # n[0]
    mul(a5, t5, a7)
    mulhu(t1, t5, a7)
    add(t6, t6, a5)  # low word 0 by the choice of m
    sltu(a5, t6, a5)
    add(t1, t1, a5)  # c2
    addi(t2, a0, 4)  # a[j]
    addi(t3, a2, 12)  # n[j]
    addi(t4, a3, 4)  # t[j]
    beq(t2, a4, last)  # s == 1
    # j = 1 .. s-1, two a step: one alone first when s-1 is odd
    lw(t5, 0(a2))
    andi(t5, t5, 1)
    bne(t5, zero, pairs)  # s odd: s-1 even
    lw(t5, 0(t2))  # a[j]
    mul(t6, t5, a6)
    mulhu(t5, t5, a6)
    add(t6, t6, t0)
    sltu(t0, t6, t0)
    add(t0, t5, t0)
    lw(t5, 0(t4))  # t[j]
    add(t6, t6, t5)
    sltu(t5, t6, t5)
    add(t0, t0, t5)  # x = t[j] + a[j]*bi + c1: low t6, c1 = t0
    lw(t5, 0(t3))  # n[j]
    mul(a5, t5, a7)
    mulhu(t5, t5, a7)
    add(t6, t6, a5)
    sltu(a5, t6, a5)
    add(t5, t5, a5)
    add(t6, t6, t1)
    sltu(t1, t6, t1)
    add(t1, t5, t1)  # y = low(x) + m*n[j] + c2: low t6, c2 = t1
    sw(t6, -4(t4))  # t[j-1]
    addi(t2, t2, 4)
    addi(t3, t3, 4)
    addi(t4, t4, 4)
    beq(t2, a4, last)
    label(pairs)
    lw(t5, 0(t2))  # a[j], then a[j+1] below
    mul(t6, t5, a6)
    mulhu(t5, t5, a6)
    add(t6, t6, t0)
    sltu(t0, t6, t0)
    add(t0, t5, t0)
    lw(t5, 0(t4))  # t[j]
    add(t6, t6, t5)
    sltu(t5, t6, t5)
    add(t0, t0, t5)  # x = t[j] + a[j]*bi + c1: low t6, c1 = t0
    lw(t5, 0(t3))  # n[j]
    mul(a5, t5, a7)
    mulhu(t5, t5, a7)
    add(t6, t6, a5)
    sltu(a5, t6, a5)
    add(t5, t5, a5)
    add(t6, t6, t1)
    sltu(t1, t6, t1)
    add(t1, t5, t1)  # y = low(x) + m*n[j] + c2: low t6, c2 = t1
    sw(t6, -4(t4))  # t[j-1]
    lw(t5, 4(t2))  # a[j+1]
    mul(t6, t5, a6)
    mulhu(t5, t5, a6)
    add(t6, t6, t0)
    sltu(t0, t6, t0)
    add(t0, t5, t0)
    lw(t5, 4(t4))  # t[j+1]
    add(t6, t6, t5)
    sltu(t5, t6, t5)
    add(t0, t0, t5)  # x = t[j+1] + a[j+1]*bi + c1: low t6, c1 = t0
    lw(t5, 4(t3))  # n[j+1]
    mul(a5, t5, a7)
    mulhu(t5, t5, a7)
    add(t6, t6, a5)
    sltu(a5, t6, a5)
    add(t5, t5, a5)
    add(t6, t6, t1)
    sltu(t1, t6, t1)
    add(t1, t5, t1)  # y = low(x) + m*n[j+1] + c2: low t6, c2 = t1
    sw(t6, 0(t4))  # t[j]
    addi(t2, t2, 8)
    addi(t3, t3, 8)
    addi(t4, t4, 8)
    bne(t2, a4, pairs)
    label(last)
    lw(t5, 0(t4))  # t[s]
    add(t5, t5, t0)
    sltu(t6, t5, t0)
    add(t5, t5, t1)
    sltu(a5, t5, t1)
    add(t6, t6, a5)
    sw(t5, -4(t4))  # t[s-1]
    sw(t6, 0(t4))  # t[s]
    addi(a1, a1, 4)
    bne(a1, s0, outer)
    # t < 2n: d = t - n into t[s+1..2s], then a = t if that borrowed past t[s], else d
    mv(t2, a3)
    addi(t3, a2, 8)
    addi(t4, s1, 4)  # &t[s+1]
    li(t1, 0)  # borrow
    label(subn)
    lw(t5, 0(t2))
    lw(t6, 0(t3))
    sltu(a5, t5, t6)
    sub(t5, t5, t6)
    sltu(t6, t5, t1)
    sub(t5, t5, t1)
    or_(t1, a5, t6)
    sw(t5, 0(t4))
    addi(t2, t2, 4)
    addi(t3, t3, 4)
    addi(t4, t4, 4)
    bne(t2, s1, subn)
    lw(t5, 0(s1))  # t[s]
    sltu(t5, t5, t1)  # 1: t < n
    sub(a7, zero, t5)  # keep t: all ones
    mv(t2, a3)
    addi(t4, s1, 4)
    mv(t3, a0)
    label(pick)
    lw(t5, 0(t2))
    lw(t6, 0(t4))
    xor(t5, t5, t6)
    and_(t5, t5, a7)
    xor(t5, t5, t6)  # t[j] & keep | d[j] & ~keep
    sw(t5, 0(t3))
    addi(t2, t2, 4)
    addi(t3, t3, 4)
    addi(t4, t4, 4)
    bne(t2, s1, pick)
    sw(zero, 0(t3))  # a[s]
    lw(s0, 0(sp))
    lw(s1, 4(sp))
    addi(sp, sp, 16)
    li(a0, 0)


@micropython.asm_rv32
def select(a0, a1, a2, a3):
    # a0: out, a1: the 16 addresses, a2: index, a3: words (>= 1)
    slli(a3, a3, 2)
    add(a4, a0, a3)  # out end
    mv(t0, a0)
    label(clear)
    sw(zero, 0(t0))
    addi(t0, t0, 4)
    bne(t0, a4, clear)
    li(t1, 0)  # k
    li(t6, 16)
    label(entries)
    xor(t2, t1, a2)
    sltiu(t2, t2, 1)  # 1 when k == index
    sub(t2, zero, t2)  # mask: all ones when k == index
    lw(t3, 0(a1))  # entry k
    mv(t0, a0)
    label(words)
    lw(t4, 0(t3))
    lw(t5, 0(t0))
    and_(t4, t4, t2)
    or_(t5, t5, t4)
    sw(t5, 0(t0))
    addi(t3, t3, 4)
    addi(t0, t0, 4)
    bne(t0, a4, words)
    addi(a1, a1, 4)
    addi(t1, t1, 1)
    bne(t1, t6, entries)
    li(a0, 0)


@micropython.asm_rv32
def address(a0) -> uint:
    addi(a0, a0, 0)  # a0: the buffer's address already
