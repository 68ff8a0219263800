# The TLS 1.2 record layer (RFC 5246 §6): cuts the incoming byte stream into records,
# checks their headers and sizes, and removes or applies record protection: the NULL
# state before the first ChangeCipherSpec, AES-GCM (RFC 5288), and AES-CBC with HMAC,
# either MAC-then-encrypt (RFC 5246 §6.2.3.2) or encrypt-then-MAC (RFC 7366).
#
# CBC with MAC-then-encrypt is checked without an early exit on bad padding, and at a
# cost that does not follow the padding (the Lucky13 countermeasure): the padding is
# scanned to a fixed length, the MAC is computed either way, and the hash compression
# function runs as often as for the longest plaintext the record could hold, the
# missing compressions on dummy blocks (_mac_const). CPython and MicroPython give no
# constant-time guarantee for integer and bytes operations; this removes the branches
# and the data-dependent hashing that our own code would add, which is as far as Python
# goes. `hsmtls bench lucky13` measures what is left (docs/security.md).

try:
    from micropython import const  # compile-time constants: no global, inlined
except ImportError:  # CPython

    def const(x):
        return x


from .constants import (
    ALERT,
    APPLICATION_DATA,
    BAD_RECORD_MAC,
    CHANGE_CIPHER_SPEC,
    HANDSHAKE,
    MAX_CIPHERTEXT,
    MAX_PLAINTEXT,
    PROTOCOL_VERSION,
    RECORD_OVERFLOW,
    TLS1_2,
    UNEXPECTED_MESSAGE,
)
from .consttime import ct_equal
from .errors import TLSError
from .keyschedule import split_key_block

CONTENT_TYPES = (CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA)
_INITIAL_BUFFER = const(256)  # first receive buffer of a RecordLayer that was not lent one; grows
_HASH_BLOCK = const(64)  # SHA-1's and SHA-256's block; SHA-384's is twice that
# Dummy blocks for _mac_const: the plaintext length varies over at most 256 bytes (the
# padding), so it never needs more than 4 compressions' worth (SHA-384, 3 of its blocks,
# gets its own on the host: the board has no SHA-384).
_DUMMY = memoryview(bytes(4 * _HASH_BLOCK))


def _header(content_type, length):
    return bytes((content_type, TLS1_2 >> 8, TLS1_2 & 0xFF, length >> 8, length & 0xFF))


class NullProtection:
    overhead = 0

    def seal(self, seq, content_type, plaintext):
        return plaintext

    def open(self, seq, content_type, fragment):
        if len(fragment) > MAX_PLAINTEXT:
            raise TLSError(RECORD_OVERFLOW, "plaintext record longer than 2^14")
        return fragment


class GCMProtection:
    # GenericAEADCipher: nonce_explicit (8, the sequence number) || ciphertext || tag
    overhead = 8 + 16

    def __init__(self, backend, key, salt):
        self.aead = backend.aes_gcm(key)
        self.salt = salt
        # a backend that can decrypt into the record buffer saves a copy per record
        self.in_place = hasattr(self.aead, "open_in_place")

    def seal(self, seq, content_type, plaintext):
        explicit = seq.to_bytes(8, "big")
        aad = explicit + _header(content_type, len(plaintext))
        return explicit + self.aead.seal(self.salt + explicit, plaintext, aad)

    def open(self, seq, content_type, fragment):
        n = len(fragment) - 24
        if n < 0:
            raise TLSError(BAD_RECORD_MAC, "AEAD record too short")
        if n > MAX_PLAINTEXT:
            raise TLSError(RECORD_OVERFLOW, "record plaintext longer than 2^14")
        mv = memoryview(fragment)  # slices of it copy nothing: a record can be 16 KiB
        aad = seq.to_bytes(8, "big") + _header(content_type, n)
        if self.in_place:  # the fragment is the record layer's own buffer
            plaintext = self.aead.open_in_place(self.salt + mv[:8], mv[8:], aad)
        else:
            plaintext = self.aead.open(self.salt + mv[:8], mv[8:], aad)
        if plaintext is None:
            raise TLSError(BAD_RECORD_MAC, "record authentication failed")
        return plaintext


class CBCProtection:
    # GenericBlockCipher with an explicit IV; HMAC over seq || header || data
    def __init__(self, backend, key, mac_hash, mac_key, mac_len, encrypt_then_mac):
        self.backend = backend
        self.cbc = backend.aes_cbc(key)
        self.mac_hash = mac_hash
        self.mac_key = mac_key
        self.mac_len = mac_len
        self.etm = encrypt_then_mac
        self.overhead = 16 + mac_len + 16
        # the hash's block and the bytes its padding adds at the least (MD padding: 0x80
        # and the length, 8 bytes of it for SHA-1/256 and 16 for SHA-384)
        if mac_hash == "sha384":
            self._block, self._appended, self._dummy = 128, 17, memoryview(bytes(4 * 128))
        else:
            self._block, self._appended, self._dummy = _HASH_BLOCK, 9, _DUMMY
        # HMAC's padded keys (RFC 2104), for _mac_const; the MAC keys are shorter than a block
        k = bytes(mac_key) + bytes(self._block - len(mac_key))
        self._ipad = bytes(x ^ 0x36 for x in k)
        self._opad = bytes(x ^ 0x5C for x in k)
        # the padding check: the backend's where it has one (CPython's: 5 us a 2 KiB
        # record against this loop's 55), else _padding_bad below
        self._padding_bad = getattr(backend, "cbc_padding_bad", _padding_bad)

    def _mac(self, seq, content_type, data):
        return self.backend.hmac(
            self.mac_hash, self.mac_key, seq.to_bytes(8, "big") + _header(content_type, len(data)) + data
        )

    def _mac_const(self, seq, content_type, p, length, shortest, longest):
        # The MAC of p[:length] for a secret length in shortest..longest, at the cost of
        # the longest. The hash takes p[:shortest] in one piece (a public length, ending
        # on a hash block), then the rest, at most 255 bytes and a block (CPython's
        # hashlib changes path at 2 KiB); a second hash compresses dummy blocks, so
        # that the two run the compression function as
        # often as the MAC of `longest` bytes would. SHA-1 and SHA-256 append at least 9
        # bytes to their input and compress 64-byte blocks: m bytes cost (m + 72) // 64
        # compressions, and the inner hash takes 64 + 13 + length bytes (SHA-384: 17 and
        # 128-byte blocks; block and appended below).
        name = self.mac_hash
        new_hash = self.backend.new_hash
        mv = memoryview(p)
        h = new_hash(name)
        h.update(self._ipad)
        h.update(seq.to_bytes(8, "big") + _header(content_type, length))
        h.update(mv[:shortest])
        # the rest from a fresh copy (public length: at most 255 bytes and a block),
        # aligned as the dummy blocks are: hashed in place, at the record's odd offset,
        # CPython's hash took about 20 ns less for the longer rest than for the dummies
        rest = memoryview(bytes(mv[shortest:longest]))
        h.update(rest[: length - shortest])
        inner = h.digest()
        block = self._block
        fixed = 2 * block + 12 + self._appended  # block + 13 + appended + block - 1
        extra = (longest + fixed) // block - (length + fixed) // block
        d = new_hash(name)
        d.update(self._dummy[: extra * block])  # extra + 1 compressions, always one call
        d.digest()
        h = new_hash(name)
        h.update(self._opad)
        h.update(inner)
        return h.digest()

    def seal(self, seq, content_type, plaintext):
        iv = self.backend.random(16)
        if self.etm:
            body = plaintext
        else:
            body = plaintext + self._mac(seq, content_type, plaintext)
        pad = 15 - (len(body) % 16)
        ct = iv + self.cbc.encrypt(iv, body + bytes([pad]) * (pad + 1))
        if self.etm:
            return ct + self._mac(seq, content_type, ct)
        return ct

    def open(self, seq, content_type, fragment):
        mac_len = self.mac_len
        if self.etm:
            n = len(fragment) - mac_len
            if n < 32 or n % 16:
                raise TLSError(BAD_RECORD_MAC, "bad CBC record length")
            ct = bytes(fragment[:n])
            if not ct_equal(self._mac(seq, content_type, ct), fragment[n:]):
                raise TLSError(BAD_RECORD_MAC, "record authentication failed")
            p = self.cbc.decrypt(ct[:16], ct[16:])
            pad = p[-1]
            bad = self._padding_bad(p, pad, 0)
            if bad:
                raise TLSError(BAD_RECORD_MAC, "bad CBC padding")
            plaintext = p[: len(p) - pad - 1]
        else:
            n = len(fragment)
            if n < 16 + ((mac_len + 16) & ~15) or n % 16:
                raise TLSError(BAD_RECORD_MAC, "bad CBC record length")
            p = self.cbc.decrypt(bytes(fragment[:16]), bytes(fragment[16:]))
            pad = p[-1]
            bad = self._padding_bad(p, pad, mac_len)
            # On bad padding, take it as a padding of length 0 and check the MAC anyway.
            longest = len(p) - mac_len - 1
            length = longest - pad * (1 - bad)
            # the public piece ends on a hash block (the MAC's 13 bytes of seq and header
            # come first): the secret-length rest then starts a block, as the dummy
            # blocks do, and the hash copies no secret-dependent share of a block twice
            block = self._block
            shortest = (longest - 255 + 13) // block * block - 13 if longest > 255 + block else 0
            mac = p[length : length + mac_len]
            good_mac = ct_equal(self._mac_const(seq, content_type, p, length, shortest, longest), mac)
            if bad | (not good_mac):
                raise TLSError(BAD_RECORD_MAC, "record authentication failed")
            plaintext = p[:length]  # copied only once authenticated: its length is no secret then
        if len(plaintext) > MAX_PLAINTEXT:
            raise TLSError(RECORD_OVERFLOW, "record plaintext longer than 2^14")
        return plaintext


def _padding_bad(p, pad, mac_len):
    # 1 if the CBC padding is wrong, else 0; always scans 256 bytes (or the record).
    n = len(p)
    bad = ((n - mac_len - pad - 1) >> 16) & 1  # pad longer than the record allows
    limit = 256 if n >= 256 else n
    for i in range(1, limit + 1):
        in_pad = ((i - pad - 2) >> 16) & 1  # i <= pad + 1
        bad |= in_pad & (((p[n - i] ^ pad) + 255) >> 8)
    return bad


class RecordLayer:
    # Stream of bytes in -> (content_type, plaintext) records out, and back.
    #
    # Received bytes wait in one buffer, self.buf[start:fill], allocated once and
    # reused: a record is read where it lies (a view, decrypted in place where the
    # backend can), and what follows it moves to the front when new bytes need room.
    # The buffer grows only for a record longer than it. A caller may lend its own
    # (`buffer`): the board keeps one, sized for max_fragment_length records, for all
    # its sessions, so no session allocates or fragments the heap for it.
    def __init__(self, buffer=None):
        self.buf = buffer if buffer is not None else bytearray(_INITIAL_BUFFER)
        self.start = 0  # first byte not yet read
        self.fill = 0  # end of the received bytes
        self.read_protection = NullProtection()
        self.write_protection = NullProtection()
        self.read_seq = 0
        self.write_seq = 0
        self.max_fragment = MAX_PLAINTEXT  # largest plaintext we send per record
        self.max_incoming = MAX_PLAINTEXT  # largest the peer may send (RFC 6066)

    def feed(self, data):
        # Bytes from the peer. The views next_record() returned before are invalid
        # after this: their bytes may move.
        n = len(data)
        buf = self.buf
        if self.fill + n > len(buf):
            waiting = self.fill - self.start
            if waiting + n > len(buf):
                # doubled, but not past one whole record of the largest size, unless
                # this feed itself brings more
                size = 2 * len(buf)
                if size > 5 + MAX_CIPHERTEXT:
                    size = 5 + MAX_CIPHERTEXT
                if size < waiting + n:
                    size = waiting + n
                grown = bytearray(size)
                grown[:waiting] = memoryview(buf)[self.start : self.fill]
                self.buf = buf = grown
            elif waiting:
                buf[:waiting] = memoryview(buf)[self.start : self.fill]  # overlapping move down
            self.start = 0
            self.fill = waiting
        buf[self.fill : self.fill + n] = data
        self.fill += n

    def next_record(self):
        # -> (content_type, plaintext) or None if a whole record has not arrived yet.
        # The plaintext may be a view into the buffer, valid until the next feed().
        buf = self.buf
        start = self.start
        have = self.fill - start
        if have < 5:
            if have >= 1 and buf[start] not in CONTENT_TYPES:
                raise TLSError(UNEXPECTED_MESSAGE, "unknown record content type %d" % buf[start])
            return None
        content_type = buf[start]
        if content_type not in CONTENT_TYPES:
            raise TLSError(UNEXPECTED_MESSAGE, "unknown record content type %d" % content_type)
        if buf[start + 1] != 3:
            raise TLSError(PROTOCOL_VERSION, "record version %d.%d is not TLS" % (buf[start + 1], buf[start + 2]))
        length = (buf[start + 3] << 8) | buf[start + 4]
        if length > MAX_CIPHERTEXT:
            raise TLSError(RECORD_OVERFLOW, "record of %d bytes is longer than 2^14+2048" % length)
        if have < 5 + length:
            return None
        end = start + 5 + length
        fragment = memoryview(buf)[start + 5 : end]  # a view: a record can be 16 KiB
        if end == self.fill:
            self.start = self.fill = 0  # all read: the next bytes start at the front
        else:
            self.start = end
        plaintext = self.read_protection.open(self.read_seq, content_type, fragment)
        self.read_seq += 1
        # RFC 5246 §6.2.1: only application data may come in empty fragments; the
        # length that counts is the plaintext's, under any protection
        if not len(plaintext) and content_type != APPLICATION_DATA:
            raise TLSError(UNEXPECTED_MESSAGE, "empty record of content type %d" % content_type)
        if len(plaintext) > self.max_incoming:
            raise TLSError(RECORD_OVERFLOW, "record of %d bytes exceeds the negotiated max_fragment_length" % len(plaintext))
        return content_type, plaintext

    def write(self, content_type, data, out=None):
        # -> wire bytes, appended to `out` (the caller's output bytearray: no copy
        # of the records) or to a new bytearray; data longer than max_fragment goes
        # out as several records
        if out is None:
            out = bytearray()
        n = len(data)
        step = self.max_fragment
        pos = 0
        while True:
            chunk = data[pos : pos + step] if n > step else data
            fragment = self.write_protection.seal(self.write_seq, content_type, chunk)
            self.write_seq += 1
            out += _header(content_type, len(fragment))
            out += fragment
            pos += step
            if pos >= n:
                return out

    def set_read_protection(self, protection):
        self.read_protection = protection
        self.read_seq = 0

    def set_write_protection(self, protection):
        self.write_protection = protection
        self.write_seq = 0


def make_protections(backend, suite, key_block, encrypt_then_mac):
    # -> (client_write, server_write) record protections from the key block
    cm, sm, ck, sk, civ, siv = split_key_block(suite, key_block)
    if suite.cipher == "GCM":
        return GCMProtection(backend, ck, civ), GCMProtection(backend, sk, siv)
    return (
        CBCProtection(backend, ck, suite.mac, cm, suite.mac_len, encrypt_then_mac),
        CBCProtection(backend, sk, suite.mac, sm, suite.mac_len, encrypt_then_mac),
    )
