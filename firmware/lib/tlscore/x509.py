# X.509 certificates (RFC 5280) as the handshake needs them on the board: a Certificate
# holding the fields path validation looks at, parsed with der.py's reader; Names
# decoded and shown (RFC 4514); PEM; and a SignatureCache that lets a board skip the
# parse and the signature check of a chain it has met before. Keys are RSA, or ECDSA
# P-256 on a client's leaf (CertificateVerify). Path validation is pathvalidation.py,
# host names hostname.py. Every failure is a TLSError carrying the alert to send, and
# malformed input never escapes as another exception.
# (About 600 lines: the certificate and its parsing stay one module for the board's
# heap, as connection.py says; DER, host names and path validation are their own.)

import binascii

try:
    from micropython import const  # compile-time constants: no global, inlined
except ImportError:  # CPython

    def const(x):
        return x


from .constants import BAD_CERTIFICATE
from .der import (
    bit_string,
    check_oid,
    children,
    expect,
    int_value,
    is_oid,
    malformed,
    oid_str,
    read_oid,
    read_oid_der,
    read_tlv,
    string_value,
    time_value,
)
from .errors import TLSError
from .pkcs1 import bit_length, bytes_to_int

# KeyUsage bits (RFC 5280 §4.2.1.3), bit 0 first as the BIT STRING numbers them.
KU_DIGITAL_SIGNATURE = 1 << 0
KU_NON_REPUDIATION = 1 << 1
KU_KEY_ENCIPHERMENT = 1 << 2
KU_DATA_ENCIPHERMENT = 1 << 3
KU_KEY_AGREEMENT = 1 << 4
KU_KEY_CERT_SIGN = 1 << 5
KU_CRL_SIGN = 1 << 6
KU_ENCIPHER_ONLY = 1 << 7
KU_DECIPHER_ONLY = 1 << 8

# ExtendedKeyUsage purposes (RFC 5280 §4.2.1.12)
EKU_SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
EKU_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"
EKU_ANY = "2.5.29.37.0"

OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"  # RFC 5480 §2.1.1
# P-256's field prime and b (SEC 2 §2.4.2), to check a key is a point on the curve
# (here rather than through tlscore.p256, which a board with an RSA key never loads)
_P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
# OIDs the parser only compares, as DER content octets: a dotted string would cost the
# board about 1 KB of garbage each (test_x509 checks each against its dotted form)
OID_RSA_ENCRYPTION_DER = b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01"
OID_EC_PUBLIC_KEY_DER = b"\x2a\x86\x48\xce\x3d\x02\x01"
OID_PRIME256V1_DER = b"\x2a\x86\x48\xce\x3d\x03\x01\x07"  # secp256r1, RFC 5480 §2.1.1.1
# Certificate extensions (RFC 5280 §4.2) are id-ce (2.5.29), DER 55 1D nn: told apart by nn.
ID_CE_DER = b"\x55\x1d"
_CE_BASIC_CONSTRAINTS = const(19)
_CE_KEY_USAGE = const(15)
_CE_EXT_KEY_USAGE = const(37)
_CE_SUBJECT_ALT_NAME = const(17)
_CE_NAME_CONSTRAINTS = const(30)
# The only extensions whose meaning we enforce (the key identifiers, 14 and 35, carry no
# policy, so understanding them is trivial); any other marked critical makes a
# certificate unusable. nameConstraints binds critical or not.
CE_KNOWN = (19, 15, 37, 17, 14, 35, 30)

SIGNATURE_HASHES = {
    "1.2.840.113549.1.1.5": "sha1",  # sha1WithRSAEncryption
    "1.2.840.113549.1.1.11": "sha256",  # sha256WithRSAEncryption
    "1.2.840.113549.1.1.12": "sha384",  # sha384WithRSAEncryption
    "1.2.840.113549.1.1.13": "sha512",  # sha512WithRSAEncryption
}

KEY_TYPES = {
    OID_RSA_ENCRYPTION: "rsa",
    OID_EC_PUBLIC_KEY: "ec",
    "1.2.840.10040.4.1": "dsa",
    "1.2.840.113549.1.1.10": "rsa-pss",
    "1.3.101.112": "ed25519",
    "1.3.101.113": "ed448",
}

# Attribute types name_str shows by a short name (RFC 4514's, and OpenSSL's emailAddress)
ATTRIBUTE_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "1.2.840.113549.1.9.1": "emailAddress",
}
_OID_COMMON_NAME = "2.5.4.3"

# ASN.1 universal tags read here (const: MicroPython inlines them; der.py names its own)
_BOOLEAN = const(0x01)
_INTEGER = const(0x02)
_BIT_STRING = const(0x03)
_OCTET_STRING = const(0x04)
_OID = const(0x06)
_IA5_STRING = const(0x16)
_SEQUENCE = const(0x30)
_SET = const(0x31)


def _algorithm(data, start, end):
    # AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }
    oid, _ = read_oid(data, start, end)
    return oid


# ---------------------------------------------------------------------------------------
# Times, as messages show them (der.py reads them into unix seconds)


def _civil_from_days(z):
    # der._days_from_civil backwards (Howard Hinnant's algorithm)
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    return y, m, d


def format_time(t):
    y, m, d = _civil_from_days(t // 86400)
    s = t % 86400
    return "%04d-%02d-%02d %02d:%02d:%02d UTC" % (y, m, d, s // 3600, s // 60 % 60, s % 60)


# ---------------------------------------------------------------------------------------
# Names


def _escape(value):
    # RFC 4514 §2.4, enough to keep "CN=a, O=b" unambiguous
    out = []
    for i in range(len(value)):
        c = value[i]
        if c in ',+"\\<>;=' or (c in " #" and i == 0) or (c == " " and i == len(value) - 1):
            out.append("\\")
        out.append(c)
    return "".join(out)


def name_rdns(name_der, decode=True):
    # [[(oid, value), ...] for each RelativeDistinguishedName], in DER order: the most
    # general attribute (C, O) usually comes first. decode=False only checks the Name.
    data = name_der
    start, end = expect(data, 0, len(data), _SEQUENCE, "Name")
    rdns = []
    for t, s, e in children(data, start, end):
        if t != _SET:
            raise malformed("expected RelativeDistinguishedName")
        rdn = []
        for t2, s2, e2 in children(data, s, e):
            if t2 != _SEQUENCE:
                raise malformed("expected AttributeTypeAndValue")
            if decode:
                oid, pos = read_oid(data, s2, e2)
            else:
                pos = read_oid_der(data, s2, e2)[1]
            vt, vs, ve = read_tlv(data, pos, e2)
            if ve != e2:
                raise malformed("trailing data in AttributeTypeAndValue")
            value = string_value(data, vt, vs, ve)
            if decode:
                rdn.append((oid, value))
        rdns.append(rdn)
    return rdns


def name_str(name_der):
    # RFC 4514 order (last RDN first), multi-valued RDNs joined with "+"
    parts = []
    for rdn in name_rdns(name_der):
        parts.append("+".join([ATTRIBUTE_NAMES.get(o, o) + "=" + _escape(v) for o, v in rdn]))
    parts.reverse()
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------
# Certificate


class RSAPublicKey:
    def __init__(self, n, e):
        self.n = n
        self.e = e
        self.bits = bit_length(n)

    def __eq__(self, other):
        return isinstance(other, RSAPublicKey) and self.n == other.n and self.e == other.e

    def __repr__(self):
        return "RSAPublicKey(%d bits, e=%d)" % (self.bits, self.e)


class ECPublicKey:
    # An ECDSA key on P-256 (the only curve we take), as SubjectPublicKeyInfo and TLS
    # carry it: the uncompressed point 04 || X || Y, checked to be on the curve.
    curve = "secp256r1"
    group = 23  # NamedGroup secp256r1 (RFC 8422)
    bits = 256

    def __init__(self, point):
        self.point = point


class Certificate:
    # Fields are filled by parse_certificate. version is 1, 2 or 3 (not the DER 0..2);
    # issuer and subject are the raw DER of the Name, compared bytewise when chaining;
    # tbs is a memoryview into der; times are unix seconds; public_key is an
    # RSAPublicKey, an ECPublicKey (key_type "ec", P-256 only), or None when key_type
    # names another algorithm or curve ("ec", "ed25519", or the OID); signature_hash is
    # None for any algorithm but sha*WithRSAEncryption.
    def __init__(self, der):
        self.der = der
        self.tbs = b""
        self.version = 1
        self.serial = 0
        self.issuer = b""
        self.subject = b""
        self.not_before = 0
        self.not_after = 0
        self.key_type = None
        self.public_key = None
        self.signature_algorithm_oid = ""
        self.signature_hash = None
        self.signature = b""
        self.basic_constraints = None
        self.key_usage = None
        self.extended_key_usage = None
        self.has_san = False
        self.san_dns = []
        self.san_ip = []
        self.name_constraints = None  # (start, end) of its DER in der, read when a path uses it
        self.unknown_critical = []

    def subject_str(self):
        return name_str(self.subject)

    def issuer_str(self):
        return name_str(self.issuer)

    def common_name(self):
        # the most specific CN when there are several
        cn = None
        for rdn in name_rdns(self.subject):
            for oid, value in rdn:
                if oid == _OID_COMMON_NAME:
                    cn = value
        return cn

    def is_self_issued(self):
        return self.subject == self.issuer

    def __repr__(self):
        return "<Certificate %s>" % self.subject_str()


def who(cert):
    # a certificate as error messages name it (path validation, nameConstraints)
    name = cert.subject_str()
    return name if name else "with serial %d" % cert.serial


def parse_certificate(der):
    # Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    data = bytes(der)
    cert = Certificate(data)
    start, end = expect(data, 0, len(data), _SEQUENCE, "Certificate")
    if end != len(data):
        raise malformed("trailing data")
    tbs_tag, tbs_start, tbs_end = read_tlv(data, start, end)
    if tbs_tag != _SEQUENCE:
        raise malformed("expected TBSCertificate")
    # a view, not a copy: it is only ever hashed, and it is most of the certificate
    cert.tbs = memoryview(data)[start:tbs_end]
    s, e = expect(data, tbs_end, end, _SEQUENCE, "signatureAlgorithm")
    outer_alg = data[s:e]
    cert.signature_algorithm_oid = _algorithm(data, s, e)
    cert.signature_hash = SIGNATURE_HASHES.get(cert.signature_algorithm_oid)
    s, e = expect(data, e, end, _BIT_STRING, "signatureValue")
    if e != end:
        raise malformed("trailing data in Certificate")
    cert.signature = data[bit_string(data, s, e) : e]
    _parse_tbs(cert, data, tbs_start, tbs_end, outer_alg)
    return cert


def _parse_tbs(cert, data, pos, end, outer_alg):
    items = children(data, pos, end)
    i = 0
    if items and items[0][0] == 0xA0:  # version [0] EXPLICIT INTEGER DEFAULT v1
        s, e = expect(data, items[0][1], items[0][2], _INTEGER, "version")
        v = int_value(data, s, e, True)
        if v > 2:
            raise malformed("unknown version")
        cert.version = v + 1
        i = 1
    if len(items) < i + 6:
        raise malformed("TBSCertificate too short")
    t, s, e = items[i]
    if t != _INTEGER:
        raise malformed("expected serialNumber")
    cert.serial = int_value(data, s, e, False)
    t, s, e = items[i + 1]
    # RFC 5280 §4.1.1.2: the signed copy of the algorithm must equal the unsigned one
    if t != _SEQUENCE or data[s:e] != outer_alg:
        raise malformed("signature algorithms differ")
    t, s, e = items[i + 2]
    if t != _SEQUENCE:
        raise malformed("expected issuer")
    cert.issuer = data[_tlv_start(items, i + 2, pos) : e]
    t, s, e = items[i + 3]
    if t != _SEQUENCE:
        raise malformed("expected validity")
    nb = read_tlv(data, s, e)
    na = read_tlv(data, nb[2], e)
    if na[2] != e:
        raise malformed("trailing data in validity")
    cert.not_before = time_value(data, nb[0], nb[1], nb[2])
    cert.not_after = time_value(data, na[0], na[1], na[2])
    t, s, e = items[i + 4]
    if t != _SEQUENCE:
        raise malformed("expected subject")
    cert.subject = data[_tlv_start(items, i + 4, pos) : e]
    # Decode both names now so a bad one fails here, not inside an error message later.
    name_rdns(cert.issuer, False)
    name_rdns(cert.subject, False)
    t, s, e = items[i + 5]
    if t != _SEQUENCE:
        raise malformed("expected subjectPublicKeyInfo")
    _parse_spki(cert, data, s, e)
    for t, s, e in items[i + 6 :]:
        if t == 0x81 or t == 0x82:  # issuerUniqueID, subjectUniqueID: ignored
            if cert.version < 2:
                raise malformed("unique ID in a v1 certificate")
        elif t == 0xA3:
            if cert.version != 3:
                raise malformed("extensions in a v%d certificate" % cert.version)
            if e != end:
                raise malformed("data after extensions")
            _parse_extensions(cert, data, s, e)
        else:
            raise malformed("unexpected field in TBSCertificate")


def _tlv_start(items, k, pos):
    # where item k's header begins: right after the item before it
    return items[k - 1][2] if k else pos


def _parse_spki(cert, data, start, end):
    # SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
    s, e = expect(data, start, end, _SEQUENCE, "key algorithm")
    os_, oe = read_oid_der(data, s, e)
    ks, ke = expect(data, e, end, _BIT_STRING, "subjectPublicKey")
    if is_oid(data, os_, oe, OID_EC_PUBLIC_KEY_DER):
        cert.key_type = "ec"
        _parse_ec_key(cert, data, oe, e, ks, ke)
        return
    if not is_oid(data, os_, oe, OID_RSA_ENCRYPTION_DER):
        oid = oid_str(data, os_, oe)
        cert.key_type = KEY_TYPES.get(oid, oid)
        return
    cert.key_type = "rsa"
    # RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
    s, e = expect(data, bit_string(data, ks, ke), ke, _SEQUENCE, "RSAPublicKey")
    ns, ne = expect(data, s, e, _INTEGER, "modulus")
    es, ee = expect(data, ne, e, _INTEGER, "publicExponent")
    n = int_value(data, ns, ne, True)
    exp = int_value(data, es, ee, True)
    if n < 3 or exp < 3 or not n & 1 or not exp & 1:
        raise malformed("bad RSA key")
    cert.public_key = RSAPublicKey(n, exp)


def _parse_ec_key(cert, data, pos, e, ks, ke):
    # The AlgorithmIdentifier's parameters (from pos): ECParameters ::= CHOICE {
    # namedCurve OID, ... } (RFC 5480 §2.1.1); the key is an ECPoint in the BIT STRING.
    # Other curves and compressed points leave public_key None (unsupported, not
    # malformed).
    if pos >= e:
        raise malformed("EC key without parameters")
    t, cs, ce = read_tlv(data, pos, e)
    if ce != e:
        raise malformed("trailing data in EC key algorithm")
    if t != _OID:
        return
    check_oid(data, cs, ce)
    if not is_oid(data, cs, ce, OID_PRIME256V1_DER):
        return
    start = bit_string(data, ks, ke)
    if ke - start != 65 or data[start] != 4:
        return
    x = bytes_to_int(data[start + 1 : start + 33])
    y = bytes_to_int(data[start + 33 : ke])
    p = _P256_P
    if x >= p or y >= p or (y * y - x * x * x + 3 * x - _P256_B) % p:
        raise malformed("EC public key is not a point on P-256")
    cert.public_key = ECPublicKey(data[start:ke])


def _parse_extensions(cert, data, start, end):
    s, e = expect(data, start, end, _SEQUENCE, "Extensions")
    seen = []
    for t, xs, xe in children(data, s, e):
        # Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
        if t != _SEQUENCE:
            raise malformed("expected Extension")
        os_, pos = read_oid_der(data, xs, xe)
        # id-ce by its last octet (no dotted string), anything else by its DER
        is_ce = pos - os_ == 3 and data[os_] == ID_CE_DER[0] and data[os_ + 1] == ID_CE_DER[1]
        ce = data[os_ + 2] if is_ce else -1
        oid = ce if is_ce else data[os_:pos]
        if oid in seen:
            raise malformed("duplicate extension " + oid_str(data, os_, pos))
        seen.append(oid)
        critical = False
        tag, vs, ve = read_tlv(data, pos, xe)
        if tag == _BOOLEAN:
            if ve - vs != 1:
                raise malformed("bad BOOLEAN")
            critical = data[vs] != 0
            tag, vs, ve = read_tlv(data, ve, xe)
        if tag != _OCTET_STRING or ve != xe:
            raise malformed("expected extnValue")
        if ce == _CE_BASIC_CONSTRAINTS:
            _parse_basic_constraints(cert, data, vs, ve)
        elif ce == _CE_KEY_USAGE:
            _parse_key_usage(cert, data, vs, ve)
        elif ce == _CE_EXT_KEY_USAGE:
            bs, be = expect(data, vs, ve, _SEQUENCE, "ExtKeyUsageSyntax")
            eku = []
            for ot, os_, oe in children(data, bs, be):
                if ot != _OID:
                    raise malformed("expected KeyPurposeId")
                eku.append(oid_str(data, os_, oe))
            cert.extended_key_usage = eku
        elif ce == _CE_SUBJECT_ALT_NAME:
            _parse_san(cert, data, vs, ve)
        elif ce == _CE_NAME_CONSTRAINTS:
            cert.name_constraints = (vs, ve)
        elif critical and ce not in CE_KNOWN:
            cert.unknown_critical.append(oid_str(data, os_, pos))


def _parse_basic_constraints(cert, data, start, end):
    # BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }
    s, e = expect(data, start, end, _SEQUENCE, "BasicConstraints")
    if e != end:
        raise malformed("trailing data in BasicConstraints")
    ca = False
    path_len = None
    for t, vs, ve in children(data, s, e):
        if t == _BOOLEAN and path_len is None:
            if ve - vs != 1:
                raise malformed("bad BOOLEAN")
            ca = data[vs] != 0
        elif t == _INTEGER and path_len is None:
            path_len = int_value(data, vs, ve, True)
        else:
            raise malformed("bad BasicConstraints")
    cert.basic_constraints = (ca, path_len)


def _parse_key_usage(cert, data, start, end):
    s, e = expect(data, start, end, _BIT_STRING, "KeyUsage")
    if e != end or s >= e or data[s] > 7:
        raise malformed("bad KeyUsage")
    bits = 0
    for i in range(e - s - 1):
        octet = data[s + 1 + i]
        for j in range(8):
            if octet & (0x80 >> j):
                bits |= 1 << (8 * i + j)
    cert.key_usage = bits


def _parse_san(cert, data, start, end):
    # GeneralNames ::= SEQUENCE OF GeneralName; dNSName [2] and iPAddress [7] are used,
    # the other forms are carried along unread.
    s, e = expect(data, start, end, _SEQUENCE, "GeneralNames")
    if e != end:
        raise malformed("trailing data in subjectAltName")
    cert.has_san = True
    for t, vs, ve in children(data, s, e):
        if t == 0x82:
            cert.san_dns.append(string_value(data, _IA5_STRING, vs, ve))
        elif t == 0x87:
            cert.san_ip.append(data[vs:ve])


# ---------------------------------------------------------------------------------------
# PEM


def pem_to_der_list(pem):
    # Every "-----BEGIN CERTIFICATE-----" block in order; other PEM blocks are skipped.
    # pem: str or bytes, or lines of it (a file open in binary), decoded a line at a
    # time: the board never holds a second copy of the whole text.
    if isinstance(pem, str):
        pem = pem.encode()
    if isinstance(pem, (bytes, bytearray, memoryview)):
        pem = bytes(pem).split(b"\n")
    out = []
    parts = None  # base64-decoded lines of the block we are in
    for line in pem:
        line = line.strip()
        if parts is None:
            if line == b"-----BEGIN CERTIFICATE-----":
                parts = []
        elif line == b"-----END CERTIFICATE-----":
            out.append(b"".join(parts))
            parts = None
        elif line:
            try:
                parts.append(binascii.a2b_base64(line))
            except ValueError:
                raise TLSError(BAD_CERTIFICATE, "bad base64 in PEM certificate") from None
    if parts is not None:
        raise TLSError(BAD_CERTIFICATE, "PEM certificate without END line")
    return out


def load_anchors(pem):
    return [parse_certificate(der) for der in pem_to_der_list(pem)]


# ---------------------------------------------------------------------------------------
# Certificates met again


class SignatureCache:
    # Certificate signatures already verified, remembered by SHA-256(issuer DER ||
    # certificate DER) (DER is self-delimiting, so the pair is unambiguous). A board
    # that connects to the same server again skips the RSA public-key operation on the
    # server's certificate: ~1.5 ms on the unix port, ~100 ms (estimated) on an ESP32.
    # Only successful checks are kept, and only the signature check is skipped: the
    # rest of path validation (validity now, CA flags, key usage, host name,
    # revocation) runs on every handshake, since those answers change.
    #
    # It also keeps the last few certificates it parsed (`parsed` of them: a server's
    # chain), so a chain met again is not parsed again either: the DER is compared
    # whole, bytewise, and the Certificate it gave is reused as it is (nothing changes
    # one after parsing). Every check on it still runs, as above.
    def __init__(self, size=4, parsed=2):
        self.size = size
        self.hits = 0
        self._seen = []  # digests, least recently used first
        self.keep_parsed = parsed
        self.parsed_hits = 0
        self._parsed = []  # Certificates, least recently used first

    def _digest(self, backend, cert, issuer):
        h = backend.new_hash("sha256")  # two updates: no joined copy of both DERs
        h.update(issuer.der)
        h.update(cert.der)
        return h.digest()

    def parse(self, der):
        for c in self._parsed:
            if c.der == der:
                self._parsed.remove(c)
                self._parsed.append(c)
                self.parsed_hits += 1
                return c
        c = parse_certificate(der)
        if self.keep_parsed:
            self._parsed.append(c)
            if len(self._parsed) > self.keep_parsed:
                self._parsed.pop(0)
        return c

    def check(self, backend, cert, issuer):
        d = self._digest(backend, cert, issuer)
        if d in self._seen:
            self._seen.remove(d)
            self._seen.append(d)
            self.hits += 1
            return True
        return False

    def add(self, backend, cert, issuer):
        self._seen.append(self._digest(backend, cert, issuer))
        if len(self._seen) > self.size:
            self._seen.pop(0)
