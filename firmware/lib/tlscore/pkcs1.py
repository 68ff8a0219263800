# RSA with PKCS#1 v1.5 padding (RFC 8017): the public-key half the handshake needs on
# the board. RSAES-PKCS1-v1_5 encryption wraps the premaster_secret for the server
# (§7.2.1), RSASSA-PKCS1-v1_5 verification checks certificate signatures (§8.2.2), and
# EMSA-PKCS1-v1_5 (§9.2) builds the block a signer exponentiates. Big-number work is the
# backend's modexp() where it has one (the board's: tlscore.montgomery), else the
# interpreter's built-in three-argument pow(); hashes and randomness come from the
# crypto backend, so the same code runs under CPython and MicroPython. RSASSA-PSS
# verification (§8.1.2) checks ServerKeyExchange signatures (rsa_pss_rsae_*).

from .consttime import ct_eq
from .consttime import ct_equal as equal


def byte_length(n):
    # MicroPython has no int.bit_length, so count bytes by shifting: a binary search
    # (1024 bytes, 512, ... 1), whose shifted values add up to about n's own size. Going
    # 8 bytes at a time made a 2048-bit n leave 5.6 KB of shrinking copies behind, and
    # the board counts a modulus at every certificate, encryption and verification.
    k = 0
    while n >> 16384:  # beyond 2048 bytes: no key here, but be right anyway
        n >>= 16384
        k += 2048
    step = 1024
    while step:
        m = n >> (8 * step)
        if m:
            n = m
            k += step
        step >>= 1
    return k + 1 if n > 0 else k


def bit_length(n):
    k = byte_length(n)
    if k == 0:
        return 0
    top = n >> (8 * (k - 1))
    bits = 8 * (k - 1)
    while top:
        top >>= 1
        bits += 1
    return bits


def int_to_bytes(x, k):
    # I2OSP (RFC 8017 §4.1)
    if x < 0 or x >> (8 * k):
        raise ValueError("integer too large")
    return x.to_bytes(k, "big")


def bytes_to_int(b):
    # OS2IP (RFC 8017 §4.2); bytes() because MicroPython's from_bytes wants a real buffer
    return int.from_bytes(bytes(b), "big")


def encrypt(backend, n, e, message):
    # RSAES-PKCS1-v1_5-ENCRYPT (RFC 8017 §7.2.1): EM = 0x00 || 0x02 || PS || 0x00 || M,
    # with PS at least 8 nonzero random octets.
    k = byte_length(n)
    if len(message) > k - 11:
        raise ValueError("message too long")
    # EM is built in one buffer, PS drawn straight into it: on the board every
    # intermediate k-byte object is garbage that brings the next collection closer
    end = k - len(message) - 1  # where PS ends
    em = bytearray(k)
    em[1] = 2
    i = 2
    while i < end:
        for b in backend.random(end - i):
            if b:
                em[i] = b
                i += 1
    em[end + 1 :] = message
    return int_to_bytes(_modexp(backend)(int.from_bytes(em, "big"), e, n), k)


def depad_premaster(em, k):
    # RSAES-PKCS1-v1_5 decryption's padding check (RFC 8017 §7.2.2 step 3) for a
    # 48-byte premaster, with no branch on EM's content: (good, its last 48 bytes) for
    # EM = 00 02 PS (>= 8 nonzero bytes) 00 M(48). A shorter EM (b"": none, the
    # ciphertext was refused) is taken as left-padded with zeros, a longer one as cut.
    em = bytes(em)
    if len(em) != k:  # the length is public
        em = (bytes(k) + em)[-k:]
    sep = k - 49
    bad = em[0] | (em[1] ^ 2) | em[sep]
    zeros = 0
    for i in range(2, sep):
        zeros |= ((em[i] - 1) >> 8) & 1  # 1 if em[i] == 0
    good = (((bad - 1) >> 8) & 1) & (zeros ^ 1) & (((sep - 10) >> 31) ^ -1) & 1
    return good, em[k - 48:]


def premaster_candidate(message):
    # a message decrypted elsewhere (OpenSSL's implicit rejection gives one of any
    # length for a bad padding): (good, 48 bytes), as depad_premaster answers
    m = bytes(message)
    return ct_eq(len(m), 48), (m + bytes(48))[:48]


def _modexp(backend):
    # the backend's modexp() for public exponents (the board's is in viper), else pow()
    return getattr(backend, "modexp", pow)


# DER of DigestInfo up to the digest octets (RFC 8017 §9.2, note 1)
_DIGEST_INFO_PREFIX = {
    "sha1": b"\x30\x21\x30\x09\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00\x04\x14",
    "sha256": b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20",
    "sha384": b"\x30\x41\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x02\x05\x00\x04\x30",
    "sha512": b"\x30\x51\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x03\x05\x00\x04\x40",
}

DIGEST_SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}


def digest_info(hash_name, digest):
    prefix = _DIGEST_INFO_PREFIX.get(hash_name)
    if prefix is None:
        raise ValueError("unsupported hash " + str(hash_name))
    if len(digest) != DIGEST_SIZES[hash_name]:
        raise ValueError("digest length does not match " + hash_name)
    return prefix + bytes(digest)


def encode_signature(backend, hash_name, message, k):
    # EMSA-PKCS1-v1_5-ENCODE (RFC 8017 §9.2): 0x00 || 0x01 || 0xff.. || 0x00 || DigestInfo
    return encode_digest(hash_name, backend.hash(hash_name, message), k)


def encode_digest(hash_name, digest, k):
    # EMSA-PKCS1-v1_5-ENCODE from step 2 on, for a message already hashed
    t = digest_info(hash_name, digest)
    if k < len(t) + 11:
        raise ValueError("intended encoded message length too short")
    em = bytearray(b"\xff" * k)  # one buffer (and its pattern), not four joined
    em[0] = 0
    em[1] = 1
    em[k - len(t) - 1] = 0
    em[k - len(t) :] = t
    return em


def _rsavp1(backend, n, e, signature):
    # RSAVP1 (RFC 8017 §5.2.2) on a k-byte signature: the k-byte message
    # representative, or None for a signature of the wrong length or not below n
    k = byte_length(n)
    if len(signature) != k:
        return None
    s = bytes_to_int(signature)
    if s >= n:
        return None
    return int_to_bytes(_modexp(backend)(s, e, n), k)


def verify(backend, n, e, hash_name, message, signature):
    # RSASSA-PKCS1-V1_5-VERIFY (RFC 8017 §8.2.2). Re-encoding and comparing the whole
    # block, rather than parsing it, is what keeps Bleichenbacher-style forgeries out.
    if hash_name not in _DIGEST_INFO_PREFIX or hash_name not in backend.hash_names:
        return False
    em = _rsavp1(backend, n, e, signature)
    if em is None:
        return False
    try:
        expected = encode_signature(backend, hash_name, message, len(em))
    except ValueError:
        return False
    return equal(em, expected)


_HASH_LEN = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}


def mgf1(backend, hash_name, seed, length):
    # MGF1 (RFC 8017 §B.2.1)
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += backend.hash(hash_name, seed + counter.to_bytes(4, "big"))
        counter += 1
    return bytes(out[:length])


def verify_pss(backend, n, e, hash_name, message, signature, salt_len=None):
    # RSASSA-PSS-VERIFY with MGF1 of the same hash (RFC 8017 §8.1.2, §9.1.2); TLS
    # uses a salt as long as the hash (RFC 8446 §4.2.3). Public data: no secrets here.
    h_len = _HASH_LEN.get(hash_name)
    if h_len is None or hash_name not in backend.hash_names:
        return False
    s_len = h_len if salt_len is None else salt_len
    full = _rsavp1(backend, n, e, signature)
    if full is None:
        return False
    em_bits = bit_length(n) - 1
    em_len = (em_bits + 7) // 8
    em = full[len(full) - em_len:]
    if em_len < h_len + s_len + 2 or em[-1] != 0xBC:
        return False
    masked_db = em[: em_len - h_len - 1]
    h = em[em_len - h_len - 1 : em_len - 1]
    top_mask = 0xFF >> (8 * em_len - em_bits)
    if masked_db[0] & ~top_mask & 0xFF:
        return False
    db_mask = mgf1(backend, hash_name, h, len(masked_db))
    db = bytearray(a ^ b for a, b in zip(masked_db, db_mask))
    db[0] &= top_mask
    ps_len = em_len - h_len - s_len - 2
    for i in range(ps_len):
        if db[i]:
            return False
    if db[ps_len] != 1:
        return False
    salt = bytes(db[len(db) - s_len :]) if s_len else b""
    m_hash = backend.hash(hash_name, message)
    return equal(backend.hash(hash_name, bytes(8) + m_hash + salt), h)
