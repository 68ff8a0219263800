# Constant-time helpers: the engine's and the host keys' one home for comparisons and
# choices that must not branch on secret data (Finished, renegotiation_info, MACs,
# padding, the premaster rule). Lengths are public; values are not.


def ct_equal(a, b):
    # a == b for two byte strings, without stopping at the first difference
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


def ct_eq(x, y):
    # 1 if the small non-negative ints x == y else 0, without a comparison branch
    return (((x ^ y) - 1) >> 32) & 1


def ct_select(good, a, b):
    # a where good == 1, b where good == 0, byte by byte, without a branch on good
    m = (-good) & 0xFF
    n = m ^ 0xFF
    return bytes([(x & m) | (y & n) for x, y in zip(a, b)])
