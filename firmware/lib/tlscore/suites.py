# The cipher suites tlscore implements, with what the record layer and key schedule
# need to know about each (RFC 5246 Appendix C, RFC 5288). IANA names are the keys
# users type (`--cipher TLS_RSA_WITH_AES_128_GCM_SHA256`).


class CipherSuite:
    # Seven attributes an instance: the board keeps every suite in its heap, so what
    # follows from them is computed (mac_len, fixed_iv_len) and the OpenSSL names are a
    # constant table (frozen into flash on the board), not attributes or a dict.
    def __init__(self, code, name, key_exchange, cipher, key_len, mac, prf_hash):
        self.code = code
        self.name = name
        self.key_exchange = key_exchange  # "RSA" or "ECDHE_RSA"
        self.cipher = cipher  # "GCM" or "CBC"
        self.key_len = key_len
        self.mac = mac  # None for AEAD, else hash name of the HMAC
        self.prf_hash = prf_hash

    @property
    def mac_len(self):
        return _MAC_LEN.get(self.mac, 0)

    @property
    def fixed_iv_len(self):
        return 4 if self.cipher == "GCM" else 0

    @property
    def openssl_name(self):
        for code, name in OPENSSL_NAMES:
            if code == self.code:
                return name
        return None

    def __repr__(self):
        return self.name


_MAC_LEN = {"sha1": 20, "sha256": 32, "sha384": 48}


TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 = CipherSuite(
    0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE_RSA",
    "GCM", 16, None, "sha256",
)
TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 = CipherSuite(
    0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE_RSA",
    "GCM", 32, None, "sha384",
)
# CBC with ECDHE (RFC 4492, RFC 5289): what many embedded clients offer
TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256 = CipherSuite(
    0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE_RSA",
    "CBC", 16, "sha256", "sha256",
)
TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384 = CipherSuite(
    0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "ECDHE_RSA",
    "CBC", 32, "sha384", "sha384",
)
TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA = CipherSuite(
    0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE_RSA", "CBC", 16, "sha1", "sha256"
)
TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA = CipherSuite(
    0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE_RSA", "CBC", 32, "sha1", "sha256"
)
TLS_RSA_WITH_AES_128_GCM_SHA256 = CipherSuite(
    0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", "RSA", "GCM", 16, None, "sha256"
)
TLS_RSA_WITH_AES_256_GCM_SHA384 = CipherSuite(
    0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", "RSA", "GCM", 32, None, "sha384"
)
TLS_RSA_WITH_AES_128_CBC_SHA256 = CipherSuite(
    0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256", "RSA", "CBC", 16, "sha256", "sha256"
)
TLS_RSA_WITH_AES_128_CBC_SHA = CipherSuite(
    0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", "RSA", "CBC", 16, "sha1", "sha256"
)

# Default preference: forward secrecy first, AEAD before CBC; RSA key exchange stays for
# clients (like the board) that offer only it.
ALL = (
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
    TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,
    TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
    TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
    TLS_RSA_WITH_AES_128_GCM_SHA256,
    TLS_RSA_WITH_AES_256_GCM_SHA384,
    TLS_RSA_WITH_AES_128_CBC_SHA256,
    TLS_RSA_WITH_AES_128_CBC_SHA,
)
# (code, OpenSSL's name): a constant tuple, in flash on the board
OPENSSL_NAMES = (
    (0xC02F, "ECDHE-RSA-AES128-GCM-SHA256"), (0xC030, "ECDHE-RSA-AES256-GCM-SHA384"),
    (0xC027, "ECDHE-RSA-AES128-SHA256"), (0xC028, "ECDHE-RSA-AES256-SHA384"),
    (0xC013, "ECDHE-RSA-AES128-SHA"), (0xC014, "ECDHE-RSA-AES256-SHA"),
    (0x009C, "AES128-GCM-SHA256"), (0x009D, "AES256-GCM-SHA384"),
    (0x003C, "AES128-SHA256"), (0x002F, "AES128-SHA"),
)


def by_code(code):
    # -> CipherSuite, or None
    for s in ALL:
        if s.code == code:
            return s
    return None


def lookup(name):
    # IANA or OpenSSL name -> CipherSuite, or None
    for s in ALL:
        if s.name == name:
            return s
    for code, openssl in OPENSSL_NAMES:
        if openssl == name:
            return by_code(code)
    return None


RSA_KEY_EXCHANGE = tuple(s for s in ALL if s.key_exchange == "RSA")


def supported_by(backend, suites=ALL):
    # suites whose hashes (the board has no SHA-384) and key exchange the backend has
    names = backend.hash_names
    groups = backend.groups
    return [
        s for s in suites
        if s.prf_hash in names and (s.mac is None or s.mac in names)
        and (s.key_exchange == "RSA" or groups)
    ]
