# One class per TLS 1.2 handshake message (RFC 5246 §7.4), each a symmetric pair:
# `parse(body)` builds the object from the message body and `write()` gives the body
# back, so every codec round-trips on its own. `Handshake.frame()` adds the 4-byte
# handshake header. Extensions are kept as an ordered list of (type, data) pairs with
# small helpers for the ones tlscore speaks; the handshake flows interpret them.

from .codec import Parser, Writer
from .constants import (
    CERTIFICATE,
    CERTIFICATE_REQUEST,
    CERTIFICATE_VERIFY,
    CLIENT_HELLO,
    CLIENT_KEY_EXCHANGE,
    DECODE_ERROR,
    EXT_EC_POINT_FORMATS,
    EXT_MAX_FRAGMENT_LENGTH,
    EXT_RENEGOTIATION_INFO,
    EXT_SERVER_NAME,
    EXT_SIGNATURE_ALGORITHMS,
    EXT_SUPPORTED_GROUPS,
    FINISHED,
    HANDSHAKE_NAMES,
    HELLO_REQUEST,
    ILLEGAL_PARAMETER,
    MAX_CERTIFICATE_CHAIN,
    NAMED_CURVE,
    NEW_SESSION_TICKET,
    SERVER_HELLO,
    SERVER_HELLO_DONE,
    SERVER_KEY_EXCHANGE,
)
from .errors import TLSError


def frame(msg_type, body):
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def _parse_extensions(p):
    # extensions<0..2^16-1>, optional at the end of a hello
    if p.remaining() == 0:
        return []
    raw = p.get_vector(2)
    sub = Parser(raw)
    out = []
    seen = {}
    while sub.remaining():
        t = sub.get(2)
        data = sub.get_vector(2)
        if t in seen:
            raise TLSError(ILLEGAL_PARAMETER, "duplicate extension %d" % t)
        seen[t] = True
        out.append((t, data))
    return out


def _get_nonempty(p, length_size, item_size, what):
    # a vector of fixed-size items that must hold one at least (<2..2^16-2> and the like)
    items = p.get_list(length_size, item_size)
    if not items:
        raise TLSError(DECODE_ERROR, "empty %s" % what)
    return items


def one_vector(data, length_size, minimum=0):
    # a body that is exactly one vector
    p = Parser(data)
    v = p.get_vector(length_size, minimum)
    p.expect_end()
    return v


def _parse_signed(p):
    # digitally-signed (RFC 5246 §4.7): SignatureAndHashAlgorithm, opaque signature<0..2^16-1>
    alg = p.get(2)
    sig = p.get_vector(2)
    p.expect_end()
    return alg, sig


def _write_signed(algorithm, signature):
    return Writer().add(algorithm, 2).add_vector(2, signature).bytes()


def _write_extensions(w, extensions):
    if extensions is None:
        return
    inner = Writer()
    for t, data in extensions:
        inner.add(t, 2).add_vector(2, data)
    w.add_vector(2, inner.bytes())


class _Hello:
    random = b""  # 32 bytes
    session_id = b""
    extensions = []  # list of (type, data)

    def extension(self, ext_type):
        for t, data in self.extensions:
            if t == ext_type:
                return data
        return None

    def has_extension(self, ext_type):
        return self.extension(ext_type) is not None

    @staticmethod
    def _parse_head(body):
        # both hellos open with the version, random and session_id<0..32>
        p = Parser(body)
        return p, p.get(2), p.get_bytes(32), p.get_vector(1, 0, 32)

    def _write_head(self, version):
        w = Writer()
        w.add(version, 2).add_bytes(self.random)
        w.add_vector(1, self.session_id)
        return w


class ClientHello(_Hello):
    msg_type = CLIENT_HELLO

    def __init__(self, client_version, random, session_id, cipher_suites,
                 compression_methods=(0,), extensions=None):
        self.client_version = client_version
        self.random = random
        self.session_id = session_id
        self.cipher_suites = list(cipher_suites)
        self.compression_methods = list(compression_methods)
        self.extensions = list(extensions) if extensions is not None else []

    @classmethod
    def parse(cls, body):
        p, version, random, session_id = cls._parse_head(body)
        suites = _get_nonempty(p, 2, 2, "cipher_suites")
        compression = _get_nonempty(p, 1, 1, "compression_methods")
        extensions = _parse_extensions(p)
        p.expect_end()
        return cls(version, random, session_id, suites, compression, extensions)

    def write(self):
        w = self._write_head(self.client_version)
        w.add_list(2, 2, self.cipher_suites)
        w.add_list(1, 1, self.compression_methods)
        _write_extensions(w, self.extensions)
        return w.bytes()


class ServerHello(_Hello):
    msg_type = SERVER_HELLO

    def __init__(self, server_version, random, session_id, cipher_suite,
                 compression_method=0, extensions=None):
        self.server_version = server_version
        self.random = random
        self.session_id = session_id
        self.cipher_suite = cipher_suite
        self.compression_method = compression_method
        self.extensions = list(extensions) if extensions is not None else []

    @classmethod
    def parse(cls, body):
        p, version, random, session_id = cls._parse_head(body)
        suite = p.get(2)
        compression = p.get(1)
        extensions = _parse_extensions(p)
        p.expect_end()
        return cls(version, random, session_id, suite, compression, extensions)

    def write(self):
        w = self._write_head(self.server_version)
        w.add(self.cipher_suite, 2).add(self.compression_method, 1)
        _write_extensions(w, self.extensions)
        return w.bytes()


class Certificate:
    msg_type = CERTIFICATE

    def __init__(self, certificate_list):
        self.certificate_list = list(certificate_list)  # DER, sender's first

    @classmethod
    def parse(cls, body):
        sub = Parser(one_vector(body, 3))
        certs = []
        while sub.remaining():
            certs.append(sub.get_vector(3, 1))
            if len(certs) > MAX_CERTIFICATE_CHAIN:
                raise TLSError(DECODE_ERROR, "certificate chain longer than %d" % MAX_CERTIFICATE_CHAIN)
        return cls(certs)

    def write(self):
        inner = Writer()
        for c in self.certificate_list:
            inner.add_vector(3, c)
        return Writer().add_vector(3, inner.bytes()).bytes()


class CertificateRequest:
    msg_type = CERTIFICATE_REQUEST

    def __init__(self, certificate_types, supported_signature_algorithms, certificate_authorities):
        self.certificate_types = list(certificate_types)
        self.supported_signature_algorithms = list(supported_signature_algorithms)
        self.certificate_authorities = list(certificate_authorities)  # DER Names

    @classmethod
    def parse(cls, body):
        p = Parser(body)
        types = _get_nonempty(p, 1, 1, "certificate_types")
        algs = _get_nonempty(p, 2, 2, "supported_signature_algorithms")
        raw = p.get_vector(2)
        p.expect_end()
        sub = Parser(raw)
        names = []
        while sub.remaining():
            names.append(sub.get_vector(2, 1))
        return cls(types, algs, names)

    def write(self):
        w = Writer()
        w.add_list(1, 1, self.certificate_types)
        w.add_list(2, 2, self.supported_signature_algorithms)
        inner = Writer()
        for n in self.certificate_authorities:
            inner.add_vector(2, n)
        w.add_vector(2, inner.bytes())
        return w.bytes()


class _Empty:
    msg_type = -1

    def __init__(self):
        pass

    @classmethod
    def parse(cls, body):
        if len(body):
            raise TLSError(DECODE_ERROR, "%s must be empty" % HANDSHAKE_NAMES[cls.msg_type])
        return cls()

    def write(self):
        return b""


class ServerHelloDone(_Empty):
    msg_type = SERVER_HELLO_DONE


class HelloRequest(_Empty):
    msg_type = HELLO_REQUEST


class ClientKeyExchange:
    # The body depends on the key exchange (RFC 5246 §7.4.7, RFC 8422 §5.7), which the
    # message does not say: kept raw, read with the accessor for the negotiated one.
    msg_type = CLIENT_KEY_EXCHANGE

    def __init__(self, body):
        self.body = bytes(body)

    @classmethod
    def rsa(cls, encrypted_pre_master_secret):
        # EncryptedPreMasterSecret: opaque<0..2^16-1>
        return cls(Writer().add_vector(2, encrypted_pre_master_secret).bytes())

    @classmethod
    def ecdhe(cls, ecdh_yc):
        # ClientECDiffieHellmanPublic: opaque point<1..2^8-1>
        return cls(Writer().add_vector(1, ecdh_yc).bytes())

    @classmethod
    def parse(cls, body):
        return cls(body)

    def write(self):
        return self.body

    def encrypted_pre_master_secret(self):
        return one_vector(self.body, 2)

    def ecdh_yc(self):
        return one_vector(self.body, 1, 1)


class ServerKeyExchange:
    # ECDHE: ServerECDHParams (named_curve, public point) + a signature over
    # client_random + server_random + params (RFC 8422 §5.4, RFC 5246 §7.4.3)
    msg_type = SERVER_KEY_EXCHANGE

    def __init__(self, named_curve, public, algorithm, signature):
        self.named_curve = named_curve
        self.public = public
        self.algorithm = algorithm
        self.signature = signature

    def params(self):
        return Writer().add(NAMED_CURVE, 1).add(self.named_curve, 2).add_vector(1, self.public).bytes()

    @classmethod
    def parse(cls, body):
        p = Parser(body)
        curve_type = p.get(1)
        if curve_type != NAMED_CURVE:
            raise TLSError(ILLEGAL_PARAMETER, "ServerKeyExchange curve type %d is not named_curve" % curve_type)
        curve = p.get(2)
        public = p.get_vector(1, 1)
        alg, sig = _parse_signed(p)
        return cls(curve, public, alg, sig)

    def write(self):
        return self.params() + _write_signed(self.algorithm, self.signature)


class CertificateVerify:
    msg_type = CERTIFICATE_VERIFY

    def __init__(self, algorithm, signature):
        self.algorithm = algorithm  # SignatureAndHashAlgorithm as one 16-bit code
        self.signature = signature

    @classmethod
    def parse(cls, body):
        return cls(*_parse_signed(Parser(body)))

    def write(self):
        return _write_signed(self.algorithm, self.signature)


class Finished:
    msg_type = FINISHED

    def __init__(self, verify_data):
        self.verify_data = verify_data

    @classmethod
    def parse(cls, body):
        if len(body) != 12:
            raise TLSError(DECODE_ERROR, "Finished verify_data must be 12 bytes")
        return cls(bytes(body))

    def write(self):
        return self.verify_data


class NewSessionTicket:
    # RFC 5077 §3.3: the server's sealed session, for the client to offer next time
    msg_type = NEW_SESSION_TICKET

    def __init__(self, lifetime_hint, ticket):
        self.ticket_lifetime_hint = lifetime_hint
        self.ticket = ticket

    @classmethod
    def parse(cls, body):
        p = Parser(body)
        hint = p.get(4)
        ticket = p.get_vector(2)
        p.expect_end()
        return cls(hint, bytes(ticket))

    def write(self):
        return Writer().add(self.ticket_lifetime_hint, 4).add_vector(2, self.ticket).bytes()


MESSAGE_CLASSES = {
    c.msg_type: c
    for c in (
        HelloRequest,
        ClientHello,
        ServerHello,
        Certificate,
        CertificateRequest,
        ServerKeyExchange,
        ServerHelloDone,
        CertificateVerify,
        ClientKeyExchange,
        Finished,
        NewSessionTicket,
    )
}


# --- extension bodies -------------------------------------------------------------


def server_name_extension(host_name):
    entry = Writer().add(0, 1).add_vector(2, host_name.encode()).bytes()
    return (EXT_SERVER_NAME, Writer().add_vector(2, entry).bytes())


def signature_algorithms_extension(schemes):
    return (EXT_SIGNATURE_ALGORITHMS, Writer().add_list(2, 2, schemes).bytes())


def _nonempty_list(data, length_size, item_size, what):
    # an extension body that is exactly one non-empty vector of fixed-size items
    p = Parser(data)
    items = p.get_list(length_size, item_size)
    p.expect_end()
    if not items:
        raise TLSError(DECODE_ERROR, "empty %s" % what)
    return items


def parse_signature_algorithms(data):
    return _nonempty_list(data, 2, 2, "signature_algorithms")


# max_fragment_length (RFC 6066 §4): one byte, 2^9 .. 2^12
MAX_FRAGMENT_LENGTHS = {1: 512, 2: 1024, 3: 2048, 4: 4096}


def max_fragment_length_extension(size):
    for code, n in MAX_FRAGMENT_LENGTHS.items():
        if n == size:
            return (EXT_MAX_FRAGMENT_LENGTH, bytes([code]))
    raise ValueError("max_fragment_length must be 512, 1024, 2048 or 4096")


def parse_max_fragment_length(data):
    # -> the length in bytes, or None for a code RFC 6066 does not define
    p = Parser(data)
    code = p.get(1)
    p.expect_end()
    return MAX_FRAGMENT_LENGTHS.get(code)


def renegotiation_info_extension(renegotiated_connection):
    return (EXT_RENEGOTIATION_INFO, Writer().add_vector(1, renegotiated_connection).bytes())


def parse_renegotiation_info(data):
    return one_vector(data, 1)


def supported_groups_extension(groups):
    return (EXT_SUPPORTED_GROUPS, Writer().add_list(2, 2, groups).bytes())


def parse_supported_groups(data):
    return _nonempty_list(data, 2, 2, "supported_groups")


def ec_point_formats_extension(formats=(0,)):
    return (EXT_EC_POINT_FORMATS, Writer().add_list(1, 1, list(formats)).bytes())


def parse_ec_point_formats(data):
    return _nonempty_list(data, 1, 1, "ec_point_formats")


def parse_supported_versions(data):
    # ClientHello form (RFC 8446 §4.2.1): ProtocolVersion versions<2..254>
    return _nonempty_list(data, 1, 2, "supported_versions")
