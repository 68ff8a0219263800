# The DER reader behind x509.py and nameconstraints.py (X.690 as RFC 5280 uses it) and
# the two time forms a certificate carries. A TLV is named by (tag, start, end) and its
# value is data[start:end]: the reader indexes into one bytes object instead of copying,
# because the board's heap is small. Everything it refuses is a "malformed certificate"
# TLSError (bad_certificate); it never lets another exception escape. No time or
# datetime module: times come out as unix seconds.

try:
    from micropython import const  # compile-time constants: no global, inlined
except ImportError:  # CPython

    def const(x):
        return x


from .constants import BAD_CERTIFICATE
from .errors import TLSError
from .pkcs1 import bytes_to_int

# ASN.1 universal tags read here (const: MicroPython inlines them, and so they cannot be
# imported: x509.py names its own)
_OID = const(0x06)
_T61_STRING = const(0x14)
_UTC_TIME = const(0x17)
_GENERALIZED_TIME = const(0x18)
_UNIVERSAL_STRING = const(0x1C)
_BMP_STRING = const(0x1E)


def malformed(why):
    return TLSError(BAD_CERTIFICATE, "malformed certificate: " + why)


def read_tlv(data, pos, end):
    if pos + 2 > end:
        raise malformed("truncated")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise malformed("high tag number")
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0:
            raise malformed("indefinite length")
        if n > 3:
            raise malformed("length too large")
        if pos + n > end:
            raise malformed("truncated length")
        length = 0
        for i in range(n):
            length = (length << 8) | data[pos + i]
        pos += n
        # DER: the shortest form only, so one value has one encoding
        if length < 0x80 or length >> (8 * (n - 1)) == 0:
            raise malformed("non-minimal length")
    if length > end - pos:
        raise malformed("length past the end")
    return tag, pos, pos + length


def expect(data, pos, end, tag, what):
    t, start, stop = read_tlv(data, pos, end)
    if t != tag:
        raise malformed("expected " + what)
    return start, stop


def children(data, start, end):
    items = []
    while start < end:
        tlv = read_tlv(data, start, end)
        items.append(tlv)
        start = tlv[2]
    return items


def check_oid(data, start, end):
    # An OID's encoding checked (X.690 §8.19) without decoding it: most OIDs are only
    # compared (as DER, is_oid), and a dotted string costs the board ~1 KB of garbage.
    if start >= end:
        raise malformed("empty OID")
    if data[end - 1] & 0x80:
        raise malformed("truncated OID")
    for i in range(start, end):
        if data[i] == 0x80 and (i == start or not data[i - 1] & 0x80):
            raise malformed("non-minimal OID")


def oid_str(data, start, end):
    check_oid(data, start, end)
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


def read_oid(data, pos, end):
    start, stop = expect(data, pos, end, _OID, "OID")
    return oid_str(data, start, stop), stop


def read_oid_der(data, pos, end):
    # -> (start, stop) of a checked OID's content octets, for is_oid
    start, stop = expect(data, pos, end, _OID, "OID")
    check_oid(data, start, stop)
    return start, stop


def is_oid(data, start, stop, der):
    # whether the OID at data[start:stop] is `der` (content octets), without a copy
    if stop - start != len(der):
        return False
    for i in range(len(der)):
        if data[start + i] != der[i]:
            return False
    return True


def int_value(data, start, end, unsigned):
    if start >= end:
        raise malformed("empty INTEGER")
    v = bytes_to_int(data[start:end])
    if data[start] & 0x80:
        if unsigned:
            raise malformed("negative INTEGER")
        # two's complement by hand: MicroPython's from_bytes ignores signed=True
        v -= 1 << (8 * (end - start))
    return v


def bit_string(data, start, end):
    # The first octet counts unused bits in the last one; signatures and keys have none.
    if start >= end or data[start] != 0:
        raise malformed("BIT STRING with unused bits")
    return start + 1




def string_value(data, tag, start, end):
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


_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _digits(data, start, count):
    v = 0
    for i in range(start, start + count):
        c = data[i]
        if c < 0x30 or c > 0x39:
            raise malformed("bad time")
        v = v * 10 + c - 0x30
    return v


def time_value(data, tag, start, end):
    if tag == _UTC_TIME:
        if end - start != 13:
            raise malformed("bad UTCTime")
        year = _digits(data, start, 2)
        year += 1900 if year >= 50 else 2000
        pos = start + 2
    elif tag == _GENERALIZED_TIME:
        if end - start != 15:
            raise malformed("bad GeneralizedTime")
        year = _digits(data, start, 4)
        pos = start + 4
    else:
        raise malformed("expected a time")
    if data[end - 1] != 0x5A:  # "Z": RFC 5280 allows only UTC
        raise malformed("time not in UTC")
    month = _digits(data, pos, 2)
    day = _digits(data, pos + 2, 2)
    hour = _digits(data, pos + 4, 2)
    minute = _digits(data, pos + 6, 2)
    second = _digits(data, pos + 8, 2)
    if not 1 <= month <= 12 or not 1 <= day <= _DAYS_IN_MONTH[month - 1]:
        raise malformed("bad date")
    if month == 2 and day == 29 and (year % 4 or (year % 100 == 0 and year % 400)):
        raise malformed("bad date")
    if hour > 23 or minute > 59 or second > 59:
        raise malformed("bad time of day")
    return ((_days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60 + second
