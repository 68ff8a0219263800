# A small DER writer: just the ASN.1 types a PKCS#10 request needs (RFC 2986), each
# function returning the encoded TLV as bytes. The reader is tlscore/x509.py.

from tlscore import pkcs1


def _len(n):
    if n < 0x80:
        return bytes((n,))
    out = []
    while n:
        out.append(n & 0xFF)
        n >>= 8
    out.reverse()
    return bytes([0x80 | len(out)] + out)


def tlv(tag, body):
    return bytes((tag,)) + _len(len(body)) + body


def integer(v):
    if v < 0:
        raise ValueError("negative INTEGER")
    body = pkcs1.int_to_bytes(v, pkcs1.byte_length(v) or 1)
    if body[0] & 0x80:
        body = b"\x00" + body  # positive: keep the sign bit 0
    return tlv(0x02, body)


def oid(dotted):
    parts = [int(x) for x in dotted.split(".")]
    body = bytearray((parts[0] * 40 + parts[1],))
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        chunk.reverse()
        body += bytes(chunk)
    return tlv(0x06, bytes(body))


def null():
    return b"\x05\x00"


def seq(*items):
    return tlv(0x30, b"".join(items))


def set_of(*items):
    # DER sorts SET OF by encoding
    return tlv(0x31, b"".join(sorted(items)))


def bit_string(data):
    return tlv(0x03, b"\x00" + data)


def utf8(text):
    return tlv(0x0C, text.encode())


def context(n, body, constructed=True):
    return tlv((0xA0 if constructed else 0x80) | n, body)


NAME_OIDS = {"CN": "2.5.4.3", "O": "2.5.4.10", "OU": "2.5.4.11", "C": "2.5.4.6"}


def name(rdns):
    # [("CN", "board 1a2b"), ("O", "hsmtls")] -> Name, one attribute per RDN
    out = []
    for key, value in rdns:
        o = NAME_OIDS.get(key.upper())
        if o is None:
            raise ValueError("unsupported name attribute %s" % key)
        out.append(set_of(seq(oid(o), utf8(value))))
    return seq(*out)
