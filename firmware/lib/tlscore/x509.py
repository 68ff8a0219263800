# X.509 certificates (RFC 5280) as the handshake needs them on the board: a small DER
# reader, a Certificate holding the fields path validation looks at, and verify_chain,
# which builds a path from the peer's leaf to one of our trust anchors and checks
# signatures (PKCS#1 v1.5), validity, CA constraints, name constraints (in
# nameconstraints.py), key usage by key exchange and the host name (RFC 6125). Keys are
# RSA, or ECDSA P-256 on a client's leaf (CertificateVerify); CAs sign with RSA. Every
# failure is a TLSError carrying the alert to send and a reason that names the
# certificate, and malformed input never escapes as another exception. The reader
# indexes into one bytes object instead of copying, because the board's heap is small;
# no time or datetime module: the caller passes `now` in unix seconds.

import binascii

try:
    from micropython import const  # compile-time constants: no global, inlined
except ImportError:  # CPython

    def const(x):
        return x


from .constants import (
    BAD_CERTIFICATE,
    CERTIFICATE_EXPIRED,
    CERTIFICATE_UNKNOWN,
    MAX_CERTIFICATE_CHAIN,
    UNKNOWN_CA,
    UNSUPPORTED_CERTIFICATE,
)
from .errors import TLSError
from .pkcs1 import bit_length, bytes_to_int
from .pkcs1 import verify as pkcs1_verify

# Policy. Keys below MIN_RSA_BITS are refused on the leaf and on intermediates; keys above
# MAX_RSA_BITS are refused anywhere, because one public operation on them would stall
# the board for seconds.
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
# Hashes we refuse in a signature we have to verify (the anchor's own is never checked).
WEAK_SIGNATURE_HASHES = ("sha1",)

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

# ASN.1 universal tags (const: MicroPython inlines them, as the parser uses them often)
_BOOLEAN = const(0x01)
_INTEGER = const(0x02)
_BIT_STRING = const(0x03)
_OCTET_STRING = const(0x04)
_NULL = const(0x05)
_OID = const(0x06)
_UTF8_STRING = const(0x0C)
_PRINTABLE_STRING = const(0x13)
_T61_STRING = const(0x14)
_IA5_STRING = const(0x16)
_UTC_TIME = const(0x17)
_GENERALIZED_TIME = const(0x18)
_UNIVERSAL_STRING = const(0x1C)
_BMP_STRING = const(0x1E)
_SEQUENCE = const(0x30)
_SET = const(0x31)


def _malformed(why):
    return TLSError(BAD_CERTIFICATE, "malformed certificate: " + why)


# ---------------------------------------------------------------------------------------
# DER reader. A TLV is named by (tag, start, end): the value is data[start:end].


def _read_tlv(data, pos, end):
    if pos + 2 > end:
        raise _malformed("truncated")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise _malformed("high tag number")
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0:
            raise _malformed("indefinite length")
        if n > 3:
            raise _malformed("length too large")
        if pos + n > end:
            raise _malformed("truncated length")
        length = 0
        for i in range(n):
            length = (length << 8) | data[pos + i]
        pos += n
        # DER: the shortest form only, so one value has one encoding
        if length < 0x80 or length >> (8 * (n - 1)) == 0:
            raise _malformed("non-minimal length")
    if length > end - pos:
        raise _malformed("length past the end")
    return tag, pos, pos + length


def _expect(data, pos, end, tag, what):
    t, start, stop = _read_tlv(data, pos, end)
    if t != tag:
        raise _malformed("expected " + what)
    return start, stop


def _children(data, start, end):
    items = []
    while start < end:
        tlv = _read_tlv(data, start, end)
        items.append(tlv)
        start = tlv[2]
    return items


def _check_oid(data, start, end):
    # An OID's encoding checked (X.690 §8.19) without decoding it: most OIDs are only
    # compared (as DER, _is_oid), and a dotted string costs the board ~1 KB of garbage.
    if start >= end:
        raise _malformed("empty OID")
    if data[end - 1] & 0x80:
        raise _malformed("truncated OID")
    for i in range(start, end):
        if data[i] == 0x80 and (i == start or not data[i - 1] & 0x80):
            raise _malformed("non-minimal OID")


def _oid_str(data, start, end):
    _check_oid(data, start, end)
    arcs = []
    v = 0
    for i in range(start, end):
        b = data[i]
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(v)
            v = 0
    first = arcs[0]
    if first < 40:
        head = "0." + str(first)
    elif first < 80:
        head = "1." + str(first - 40)
    else:
        head = "2." + str(first - 80)
    return ".".join([head] + [str(a) for a in arcs[1:]])


def _read_oid(data, pos, end):
    start, stop = _expect(data, pos, end, _OID, "OID")
    return _oid_str(data, start, stop), stop


def _read_oid_der(data, pos, end):
    # -> (start, stop) of a checked OID's content octets, for _is_oid
    start, stop = _expect(data, pos, end, _OID, "OID")
    _check_oid(data, start, stop)
    return start, stop


def _is_oid(data, start, stop, der):
    # whether the OID at data[start:stop] is `der` (content octets), without a copy
    if stop - start != len(der):
        return False
    for i in range(len(der)):
        if data[start + i] != der[i]:
            return False
    return True


def _int_value(data, start, end, unsigned):
    if start >= end:
        raise _malformed("empty INTEGER")
    v = bytes_to_int(data[start:end])
    if data[start] & 0x80:
        if unsigned:
            raise _malformed("negative INTEGER")
        # two's complement by hand: MicroPython's from_bytes ignores signed=True
        v -= 1 << (8 * (end - start))
    return v


def _bit_string(data, start, end):
    # The first octet counts unused bits in the last one; signatures and keys have none.
    if start >= end or data[start] != 0:
        raise _malformed("BIT STRING with unused bits")
    return start + 1


def _algorithm(data, start, end):
    # AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }
    oid, _ = _read_oid(data, start, end)
    return oid


def _string_value(data, tag, start, end):
    raw = data[start:end]
    if tag == _BMP_STRING or tag == _UNIVERSAL_STRING:
        width = 2 if tag == _BMP_STRING else 4
        chars = []
        for i in range(0, len(raw) - width + 1, width):
            c = 0
            for j in range(width):
                c = (c << 8) | raw[i + j]
            chars.append(chr(c) if c < 0x110000 and not 0xD800 <= c < 0xE000 else "?")
        return "".join(chars)
    if tag == _T61_STRING:
        # In practice T61String holds Latin-1, which maps byte for code point.
        return "".join([chr(b) for b in raw])
    try:
        return raw.decode("utf-8")
    except UnicodeError:
        return "".join([chr(b) if b < 0x80 else "?" for b in raw])


# ---------------------------------------------------------------------------------------
# Time: UTCTime YYMMDDHHMMSSZ and GeneralizedTime YYYYMMDDHHMMSSZ (RFC 5280 §4.1.2.5).


def _days_from_civil(y, m, d):
    # Howard Hinnant's algorithm: days since 1970-01-01 in the proleptic Gregorian calendar.
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z):
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


_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _digits(data, start, count):
    v = 0
    for i in range(start, start + count):
        c = data[i]
        if c < 0x30 or c > 0x39:
            raise _malformed("bad time")
        v = v * 10 + c - 0x30
    return v


def _time_value(data, tag, start, end):
    if tag == _UTC_TIME:
        if end - start != 13:
            raise _malformed("bad UTCTime")
        year = _digits(data, start, 2)
        year += 1900 if year >= 50 else 2000
        pos = start + 2
    elif tag == _GENERALIZED_TIME:
        if end - start != 15:
            raise _malformed("bad GeneralizedTime")
        year = _digits(data, start, 4)
        pos = start + 4
    else:
        raise _malformed("expected a time")
    if data[end - 1] != 0x5A:  # "Z": RFC 5280 allows only UTC
        raise _malformed("time not in UTC")
    month = _digits(data, pos, 2)
    day = _digits(data, pos + 2, 2)
    hour = _digits(data, pos + 4, 2)
    minute = _digits(data, pos + 6, 2)
    second = _digits(data, pos + 8, 2)
    if not 1 <= month <= 12 or not 1 <= day <= _DAYS_IN_MONTH[month - 1]:
        raise _malformed("bad date")
    if month == 2 and day == 29 and (year % 4 or (year % 100 == 0 and year % 400)):
        raise _malformed("bad date")
    if hour > 23 or minute > 59 or second > 59:
        raise _malformed("bad time of day")
    return ((_days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60 + second


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
    start, end = _expect(data, 0, len(data), _SEQUENCE, "Name")
    rdns = []
    for t, s, e in _children(data, start, end):
        if t != _SET:
            raise _malformed("expected RelativeDistinguishedName")
        rdn = []
        for t2, s2, e2 in _children(data, s, e):
            if t2 != _SEQUENCE:
                raise _malformed("expected AttributeTypeAndValue")
            if decode:
                oid, pos = _read_oid(data, s2, e2)
            else:
                pos = _read_oid_der(data, s2, e2)[1]
            vt, vs, ve = _read_tlv(data, pos, e2)
            if ve != e2:
                raise _malformed("trailing data in AttributeTypeAndValue")
            value = _string_value(data, vt, vs, ve)
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


def parse_certificate(der):
    # Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    data = bytes(der)
    cert = Certificate(data)
    start, end = _expect(data, 0, len(data), _SEQUENCE, "Certificate")
    if end != len(data):
        raise _malformed("trailing data")
    tbs_tag, tbs_start, tbs_end = _read_tlv(data, start, end)
    if tbs_tag != _SEQUENCE:
        raise _malformed("expected TBSCertificate")
    # a view, not a copy: it is only ever hashed, and it is most of the certificate
    cert.tbs = memoryview(data)[start:tbs_end]
    s, e = _expect(data, tbs_end, end, _SEQUENCE, "signatureAlgorithm")
    outer_alg = data[s:e]
    cert.signature_algorithm_oid = _algorithm(data, s, e)
    cert.signature_hash = SIGNATURE_HASHES.get(cert.signature_algorithm_oid)
    s, e = _expect(data, e, end, _BIT_STRING, "signatureValue")
    if e != end:
        raise _malformed("trailing data in Certificate")
    cert.signature = data[_bit_string(data, s, e) : e]
    _parse_tbs(cert, data, tbs_start, tbs_end, outer_alg)
    return cert


def _parse_tbs(cert, data, pos, end, outer_alg):
    items = _children(data, pos, end)
    i = 0
    if items and items[0][0] == 0xA0:  # version [0] EXPLICIT INTEGER DEFAULT v1
        s, e = _expect(data, items[0][1], items[0][2], _INTEGER, "version")
        v = _int_value(data, s, e, True)
        if v > 2:
            raise _malformed("unknown version")
        cert.version = v + 1
        i = 1
    if len(items) < i + 6:
        raise _malformed("TBSCertificate too short")
    t, s, e = items[i]
    if t != _INTEGER:
        raise _malformed("expected serialNumber")
    cert.serial = _int_value(data, s, e, False)
    t, s, e = items[i + 1]
    # RFC 5280 §4.1.1.2: the signed copy of the algorithm must equal the unsigned one
    if t != _SEQUENCE or data[s:e] != outer_alg:
        raise _malformed("signature algorithms differ")
    t, s, e = items[i + 2]
    if t != _SEQUENCE:
        raise _malformed("expected issuer")
    cert.issuer = data[_tlv_start(items, i + 2, pos) : e]
    t, s, e = items[i + 3]
    if t != _SEQUENCE:
        raise _malformed("expected validity")
    nb = _read_tlv(data, s, e)
    na = _read_tlv(data, nb[2], e)
    if na[2] != e:
        raise _malformed("trailing data in validity")
    cert.not_before = _time_value(data, nb[0], nb[1], nb[2])
    cert.not_after = _time_value(data, na[0], na[1], na[2])
    t, s, e = items[i + 4]
    if t != _SEQUENCE:
        raise _malformed("expected subject")
    cert.subject = data[_tlv_start(items, i + 4, pos) : e]
    # Decode both names now so a bad one fails here, not inside an error message later.
    name_rdns(cert.issuer, False)
    name_rdns(cert.subject, False)
    t, s, e = items[i + 5]
    if t != _SEQUENCE:
        raise _malformed("expected subjectPublicKeyInfo")
    _parse_spki(cert, data, s, e)
    for t, s, e in items[i + 6 :]:
        if t == 0x81 or t == 0x82:  # issuerUniqueID, subjectUniqueID: ignored
            if cert.version < 2:
                raise _malformed("unique ID in a v1 certificate")
        elif t == 0xA3:
            if cert.version != 3:
                raise _malformed("extensions in a v%d certificate" % cert.version)
            if e != end:
                raise _malformed("data after extensions")
            _parse_extensions(cert, data, s, e)
        else:
            raise _malformed("unexpected field in TBSCertificate")


def _tlv_start(items, k, pos):
    # where item k's header begins: right after the item before it
    return items[k - 1][2] if k else pos


def _parse_spki(cert, data, start, end):
    # SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
    s, e = _expect(data, start, end, _SEQUENCE, "key algorithm")
    os_, oe = _read_oid_der(data, s, e)
    ks, ke = _expect(data, e, end, _BIT_STRING, "subjectPublicKey")
    if _is_oid(data, os_, oe, OID_EC_PUBLIC_KEY_DER):
        cert.key_type = "ec"
        _parse_ec_key(cert, data, oe, e, ks, ke)
        return
    if not _is_oid(data, os_, oe, OID_RSA_ENCRYPTION_DER):
        oid = _oid_str(data, os_, oe)
        cert.key_type = KEY_TYPES.get(oid, oid)
        return
    cert.key_type = "rsa"
    # RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
    s, e = _expect(data, _bit_string(data, ks, ke), ke, _SEQUENCE, "RSAPublicKey")
    ns, ne = _expect(data, s, e, _INTEGER, "modulus")
    es, ee = _expect(data, ne, e, _INTEGER, "publicExponent")
    n = _int_value(data, ns, ne, True)
    exp = _int_value(data, es, ee, True)
    if n < 3 or exp < 3 or not n & 1 or not exp & 1:
        raise _malformed("bad RSA key")
    cert.public_key = RSAPublicKey(n, exp)


def _parse_ec_key(cert, data, pos, e, ks, ke):
    # The AlgorithmIdentifier's parameters (from pos): ECParameters ::= CHOICE {
    # namedCurve OID, ... } (RFC 5480 §2.1.1); the key is an ECPoint in the BIT STRING.
    # Other curves and compressed points leave public_key None (unsupported, not
    # malformed).
    if pos >= e:
        raise _malformed("EC key without parameters")
    t, cs, ce = _read_tlv(data, pos, e)
    if ce != e:
        raise _malformed("trailing data in EC key algorithm")
    if t != _OID:
        return
    _check_oid(data, cs, ce)
    if not _is_oid(data, cs, ce, OID_PRIME256V1_DER):
        return
    start = _bit_string(data, ks, ke)
    if ke - start != 65 or data[start] != 4:
        return
    x = bytes_to_int(data[start + 1 : start + 33])
    y = bytes_to_int(data[start + 33 : ke])
    p = _P256_P
    if x >= p or y >= p or (y * y - x * x * x + 3 * x - _P256_B) % p:
        raise _malformed("EC public key is not a point on P-256")
    cert.public_key = ECPublicKey(data[start:ke])


def _parse_extensions(cert, data, start, end):
    s, e = _expect(data, start, end, _SEQUENCE, "Extensions")
    seen = []
    for t, xs, xe in _children(data, s, e):
        # Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
        if t != _SEQUENCE:
            raise _malformed("expected Extension")
        os_, pos = _read_oid_der(data, xs, xe)
        # id-ce by its last octet (no dotted string), anything else by its DER
        is_ce = pos - os_ == 3 and data[os_] == ID_CE_DER[0] and data[os_ + 1] == ID_CE_DER[1]
        ce = data[os_ + 2] if is_ce else -1
        oid = ce if is_ce else data[os_:pos]
        if oid in seen:
            raise _malformed("duplicate extension " + _oid_str(data, os_, pos))
        seen.append(oid)
        critical = False
        tag, vs, ve = _read_tlv(data, pos, xe)
        if tag == _BOOLEAN:
            if ve - vs != 1:
                raise _malformed("bad BOOLEAN")
            critical = data[vs] != 0
            tag, vs, ve = _read_tlv(data, ve, xe)
        if tag != _OCTET_STRING or ve != xe:
            raise _malformed("expected extnValue")
        if ce == _CE_BASIC_CONSTRAINTS:
            _parse_basic_constraints(cert, data, vs, ve)
        elif ce == _CE_KEY_USAGE:
            _parse_key_usage(cert, data, vs, ve)
        elif ce == _CE_EXT_KEY_USAGE:
            bs, be = _expect(data, vs, ve, _SEQUENCE, "ExtKeyUsageSyntax")
            eku = []
            for ot, os_, oe in _children(data, bs, be):
                if ot != _OID:
                    raise _malformed("expected KeyPurposeId")
                eku.append(_oid_str(data, os_, oe))
            cert.extended_key_usage = eku
        elif ce == _CE_SUBJECT_ALT_NAME:
            _parse_san(cert, data, vs, ve)
        elif ce == _CE_NAME_CONSTRAINTS:
            cert.name_constraints = (vs, ve)
        elif critical and ce not in CE_KNOWN:
            cert.unknown_critical.append(_oid_str(data, os_, pos))


def _parse_basic_constraints(cert, data, start, end):
    # BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }
    s, e = _expect(data, start, end, _SEQUENCE, "BasicConstraints")
    if e != end:
        raise _malformed("trailing data in BasicConstraints")
    ca = False
    path_len = None
    for t, vs, ve in _children(data, s, e):
        if t == _BOOLEAN and path_len is None:
            if ve - vs != 1:
                raise _malformed("bad BOOLEAN")
            ca = data[vs] != 0
        elif t == _INTEGER and path_len is None:
            path_len = _int_value(data, vs, ve, True)
        else:
            raise _malformed("bad BasicConstraints")
    cert.basic_constraints = (ca, path_len)


def _parse_key_usage(cert, data, start, end):
    s, e = _expect(data, start, end, _BIT_STRING, "KeyUsage")
    if e != end or s >= e or data[s] > 7:
        raise _malformed("bad KeyUsage")
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
    s, e = _expect(data, start, end, _SEQUENCE, "GeneralNames")
    if e != end:
        raise _malformed("trailing data in subjectAltName")
    cert.has_san = True
    for t, vs, ve in _children(data, s, e):
        if t == 0x82:
            cert.san_dns.append(_string_value(data, _IA5_STRING, vs, ve))
        elif t == 0x87:
            cert.san_ip.append(data[vs:ve])


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
# Host names (RFC 6125 §6.4)


def _number(text, base, max_len):
    # int() would also accept "+1", " 1" and "1_0"; an address part is plain digits
    if not 1 <= len(text) <= max_len:
        return None
    v = 0
    for c in text.lower():
        d = "0123456789abcdef".find(c)
        if d < 0 or d >= base:
            return None
        v = v * base + d
    return v


def _parse_ipv4(text):
    parts = text.split(".")
    if len(parts) != 4:
        return None
    out = bytearray()
    for p in parts:
        v = _number(p, 10, 3)
        if v is None or v > 255:
            return None
        out.append(v)
    return bytes(out)


def _parse_ipv6(text):
    if ":" not in text:
        return None
    if "%" in text:  # zone index never appears in a certificate
        text = text.split("%", 1)[0]
    tail = b""
    last_colon = text.rfind(":")
    if "." in text[last_colon + 1 :]:
        tail = _parse_ipv4(text[last_colon + 1 :])
        if tail is None:
            return None
        text = text[: last_colon + 1] + "0:0"
    halves = text.split("::")
    if len(halves) > 2:
        return None
    groups = []
    for half in halves:
        words = []
        if half:
            for w in half.split(":"):
                v = _number(w, 16, 4)
                if v is None:
                    return None
                words.append(v)
        groups.append(words)
    if len(halves) == 2:
        missing = 8 - len(groups[0]) - len(groups[1])
        if missing < 1:
            return None
        words = groups[0] + [0] * missing + groups[1]
    else:
        words = groups[0]
    if len(words) != 8:
        return None
    out = bytearray()
    for w in words:
        out.append(w >> 8)
        out.append(w & 0xFF)
    if tail:
        out[12:16] = tail
    return bytes(out)


def parse_ip(text):
    # 4 or 16 octets as iPAddress holds them, or None if text is not an IP literal
    ip = _parse_ipv4(text)
    if ip is None:
        ip = _parse_ipv6(text)
    return ip


def _dns_match(pattern, host):
    pattern = pattern.lower()
    if pattern.endswith("."):
        pattern = pattern[:-1]
    if not pattern:
        return False
    if "*" not in pattern:
        return pattern == host
    # Only a whole left-most label may be "*", and it must leave at least two labels,
    # so "*.com" never matches; "*" stands for exactly one non-empty label.
    if not pattern.startswith("*.") or "*" in pattern[1:]:
        return False
    suffix = pattern[2:]
    if "." not in suffix:
        return False
    dot = host.find(".")
    return dot > 0 and host[dot + 1 :] == suffix


def match_hostname(cert, hostname, allow_cn=False):
    # allow_cn: a certificate without subjectAltName may name its host in its CN (an
    # old practice RFC 6125 §6.4.4 leaves to the client; off unless asked for)
    if not hostname:
        return False
    host = hostname.lower()
    if host.endswith("."):
        host = host[:-1]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    ip = parse_ip(host)
    if ip is not None:
        # IP literals match iPAddress entries only, never a DNS name or the CN.
        for candidate in cert.san_ip:
            if candidate == ip:
                return True
        return False
    for pattern in cert.san_dns:
        if _dns_match(pattern, host):
            return True
    if cert.has_san or not allow_cn:
        return False
    cn = cert.common_name()
    return cn is not None and _dns_match(cn, host)


# ---------------------------------------------------------------------------------------
# Path validation (RFC 5280 §6, reduced to what a TLS client or server on the board needs)


def _who(cert):
    name = cert.subject_str()
    return name if name else "with serial %d" % cert.serial


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


def _check_signature(backend, cert, issuers, cache=None):
    # Returns the first issuer whose key verifies cert's signature, or None.
    h = cert.signature_hash
    if h is None:
        raise TLSError(
            UNSUPPORTED_CERTIFICATE,
            "certificate %s is signed with unsupported algorithm %s"
            % (_who(cert), cert.signature_algorithm_oid),
        )
    if h in WEAK_SIGNATURE_HASHES:
        raise TLSError(
            BAD_CERTIFICATE,
            "certificate %s is signed with weak hash %s" % (_who(cert), h),
        )
    if h not in backend.hash_names:
        raise TLSError(
            UNSUPPORTED_CERTIFICATE,
            "certificate %s is signed with %s, which this device cannot compute" % (_who(cert), h),
        )
    for issuer in issuers:
        key = issuer.public_key
        if not isinstance(key, RSAPublicKey):
            continue
        if key.bits > MAX_RSA_BITS:
            raise TLSError(
                UNSUPPORTED_CERTIFICATE,
                "RSA key of %d bits in %s is too large" % (key.bits, _who(issuer)),
            )
        if cache is not None and cache.check(backend, cert, issuer):
            return issuer
        if pkcs1_verify(backend, key.n, key.e, h, cert.tbs, cert.signature):
            if cache is not None:
                cache.add(backend, cert, issuer)
            return issuer
    return None


def _build_path(backend, leaf, presented, anchors, cache):
    # Returns (path, anchor): path runs from the leaf up to, not including, the anchor.
    # Each step uses up one presented certificate, so the path is never longer than
    # the chain, which verify_chain has already bounded.
    for anchor in anchors:
        if anchor.der == leaf.der:
            return [], anchor
    path = [leaf]
    cur = leaf
    remaining = list(presented)
    while True:
        # Anchors first: a chain that also carries the root (or a cross-signed copy of
        # an anchor) should end at our copy, not continue through the presented one.
        by_anchor = [a for a in anchors if a.subject == cur.issuer]
        by_chain = [c for c in remaining if c.subject == cur.issuer]
        if not by_anchor and not by_chain:
            raise TLSError(UNKNOWN_CA, "certificate %s is not signed by a trusted CA" % _who(cur))
        anchor = _check_signature(backend, cur, by_anchor, cache)
        if anchor is not None:
            return path, anchor
        if not by_chain:
            # a trusted CA of that name exists, but its key did not sign this: an
            # impostor CA (or a re-keyed one) is an unknown CA, as for OpenSSL
            raise TLSError(
                UNKNOWN_CA,
                "certificate %s is not signed by a trusted CA (a trusted CA has its issuer's name, but not its key)"
                % _who(cur),
            )
        issuer = _check_signature(backend, cur, by_chain, cache)
        if issuer is None:
            raise TLSError(BAD_CERTIFICATE, "signature on %s does not verify" % _who(cur))
        remaining.remove(issuer)
        path.append(issuer)
        cur = issuer


def _check_validity(cert, now):
    if now < cert.not_before:
        raise TLSError(
            CERTIFICATE_EXPIRED,
            "certificate %s is not valid before %s" % (_who(cert), format_time(cert.not_before)),
        )
    if now > cert.not_after:
        raise TLSError(
            CERTIFICATE_EXPIRED,
            "certificate %s expired on %s" % (_who(cert), format_time(cert.not_after)),
        )


def _check_issuer(cert, below, is_anchor):
    # below: the certificates this one vouches for, excluding the leaf, which is what
    # pathLenConstraint counts (self-issued ones excepted, RFC 5280 §4.2.1.9).
    bc = cert.basic_constraints
    if bc is None and is_anchor and cert.version == 1:
        return
    if bc is None or not bc[0]:
        raise TLSError(UNKNOWN_CA, "certificate %s is not a CA (basicConstraints)" % _who(cert))
    if cert.key_usage is not None and not cert.key_usage & KU_KEY_CERT_SIGN:
        raise TLSError(
            UNKNOWN_CA, "CA certificate %s may not sign certificates (keyUsage)" % _who(cert)
        )
    if bc[1] is not None:
        count = 0
        for c in below:
            if not c.is_self_issued():
                count += 1
        if count > bc[1]:
            raise TLSError(
                UNKNOWN_CA,
                "CA certificate %s allows %d intermediates below it, found %d"
                % (_who(cert), bc[1], count),
            )


# What the leaf must allow, by the role it plays (extendedKeyUsage) and by what its key
# does (keyUsage, RFC 5246 §7.4.2, RFC 5280 §4.2.1.3): a server's key decrypts the
# premaster_secret in the RSA key exchange and signs ServerKeyExchange in ECDHE_RSA; a
# client's signs CertificateVerify.
_PURPOSES = {"server": (EKU_SERVER_AUTH, "serverAuth"), "client": (EKU_CLIENT_AUTH, "clientAuth")}
_KEY_USES = {
    "RSA": (KU_KEY_ENCIPHERMENT, "keyEncipherment"),
    "ECDHE_RSA": (KU_DIGITAL_SIGNATURE, "digitalSignature"),
    "sign": (KU_DIGITAL_SIGNATURE, "digitalSignature"),
}


def _check_leaf(leaf, purpose, key_exchange):
    key = leaf.public_key
    # a client signs (RSA or ECDSA P-256); a server's key decrypts the premaster (RSA)
    if key is None or (purpose == "server" and not isinstance(key, RSAPublicKey)):
        raise TLSError(
            UNSUPPORTED_CERTIFICATE,
            "certificate %s has a %s key; only %s is supported"
            % (_who(leaf), leaf.key_type, "RSA" if purpose == "server" else "RSA or ECDSA P-256"),
        )
    if isinstance(key, RSAPublicKey):
        _check_key_size(leaf)
    eku, eku_name = _PURPOSES[purpose]
    ku, ku_name = _KEY_USES[key_exchange if purpose == "server" else "sign"]
    if leaf.extended_key_usage is not None:
        if eku not in leaf.extended_key_usage and EKU_ANY not in leaf.extended_key_usage:
            raise TLSError(
                UNSUPPORTED_CERTIFICATE,
                "certificate %s is not for %s (extendedKeyUsage)" % (_who(leaf), eku_name),
            )
    if leaf.key_usage is not None and not leaf.key_usage & ku:
        raise TLSError(
            UNSUPPORTED_CERTIFICATE,
            "certificate %s does not allow %s (keyUsage)" % (_who(leaf), ku_name),
        )


def _check_key_size(cert):
    bits = cert.public_key.bits
    if bits < MIN_RSA_BITS:
        raise TLSError(
            BAD_CERTIFICATE, "RSA key of %d bits in %s is too small" % (bits, _who(cert))
        )
    if bits > MAX_RSA_BITS:
        raise TLSError(
            UNSUPPORTED_CERTIFICATE, "RSA key of %d bits in %s is too large" % (bits, _who(cert))
        )


def verify_chain(backend, chain, anchors, now, hostname=None, purpose="server", cache=None,
                 key_exchange="RSA", allow_cn=False):
    # chain: DER certificates as a TLS Certificate message carries them, leaf first;
    # cache: a SignatureCache kept across connections, or None; hostname: the name the
    # leaf must match, None for no name check (the client refuses to verify without
    # one); key_exchange: the suite's ("RSA" or "ECDHE_RSA"), which decides the keyUsage
    # a server's leaf needs; allow_cn: see match_hostname.
    # Returns the leaf Certificate, or raises TLSError with the alert to send.
    if purpose not in _PURPOSES:
        raise ValueError("purpose must be 'server' or 'client'")
    if key_exchange not in _KEY_USES:
        raise ValueError("key_exchange must be 'RSA' or 'ECDHE_RSA'")
    if not chain:
        raise TLSError(BAD_CERTIFICATE, "no certificate")
    if len(chain) > MAX_CERTIFICATE_CHAIN:
        raise TLSError(BAD_CERTIFICATE, "more than %d certificates" % MAX_CERTIFICATE_CHAIN)
    certs = [parse_certificate(der) if cache is None else cache.parse(der) for der in chain]
    leaf = certs[0]
    path, anchor = _build_path(backend, leaf, certs[1:], anchors, cache)
    full = path + [anchor]
    for cert in full:
        if cert.unknown_critical:
            raise TLSError(
                UNSUPPORTED_CERTIFICATE,
                "certificate %s has unsupported critical extension %s"
                % (_who(cert), ", ".join(cert.unknown_critical)),
            )
    for cert in full:
        _check_validity(cert, now)
    for i in range(1, len(full)):
        _check_issuer(full[i], full[1:i], full[i] is anchor)
    for cert in full[1:]:
        if cert.name_constraints is not None:
            from . import nameconstraints

            nameconstraints.check(full, allow_cn and purpose == "server")
            break
    _check_leaf(leaf, purpose, key_exchange)
    for cert in path[1:]:
        # the anchor's key is left out: trusting it was the owner's choice
        if isinstance(cert.public_key, RSAPublicKey):
            _check_key_size(cert)
    if hostname is not None and not match_hostname(leaf, hostname, allow_cn):
        raise TLSError(
            CERTIFICATE_UNKNOWN, "certificate %s does not match host %r" % (_who(leaf), hostname)
        )
    return leaf
