"""tlscore.x509: DER parsing checked against `cryptography`, and every verify_chain outcome."""

import calendar
import datetime
import ipaddress
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

_ROOT = Path(__file__).resolve().parents[2]
for _p in (_ROOT / "firmware" / "lib", _ROOT / "host"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from hsmtls.backend import BACKEND  # noqa: E402
from tlscore import constants as C  # noqa: E402
from tlscore import x509 as X  # noqa: E402
from tlscore.errors import TLSError  # noqa: E402

NOW = 1_750_000_000  # 2025-06-15 15:06:40 UTC
DT_NOW = datetime.datetime.fromtimestamp(NOW, datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
SHORT_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "1.2.840.113549.1.9.1": "emailAddress",
}


# ---------------------------------------------------------------------------------------
# Building certificates


def der(tag, body):
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    lb = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(lb)]) + lb + body


ALG_SHA256_RSA = der(0x30, der(0x06, bytes.fromhex("2a864886f70d01010b")) + b"\x05\x00")
ALG_SHA1_RSA = der(0x30, der(0x06, bytes.fromhex("2a864886f70d010105")) + b"\x05\x00")


def sign_tbs(tbs, key, alg, hash_alg):
    sig = key.sign(tbs, padding.PKCS1v15(), hash_alg)
    return der(0x30, tbs + alg + der(0x03, b"\x00" + sig))


def name(cn, org="hsmtls test"):
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


KU_FIELDS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def key_usage(*flags):
    fields = dict.fromkeys(KU_FIELDS, False)
    for f in flags:
        fields[f] = True
    return x509.KeyUsage(**fields)


def build(
    subject,
    issuer,
    issuer_key,
    public_key,
    *,
    ca=None,
    path_len=None,
    ku=None,
    eku=None,
    san=None,
    extra=(),
    not_before=None,
    not_after=None,
    hash_alg=None,
    rsa_padding=None,
    serial=None,
):
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before or DT_NOW - DAY)
        .not_valid_after(not_after or DT_NOW + 365 * DAY)
    )
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=path_len), critical=True)
    if ku is not None:
        b = b.add_extension(ku, critical=True)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if san is not None:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    for ext, critical in extra:
        b = b.add_extension(ext, critical=critical)
    if isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        return b.sign(issuer_key, hashes.SHA256())
    return b.sign(issuer_key, hash_alg or hashes.SHA256(), rsa_padding=rsa_padding)


def dns(*names):
    return [x509.DNSName(n) for n in names]


def ips(*addrs):
    return [x509.IPAddress(ipaddress.ip_address(a)) for a in addrs]


SERVER_KU = key_usage("digital_signature", "key_encipherment")
CA_KU = key_usage("key_cert_sign", "crl_sign")


@pytest.fixture(scope="session")
def keys():
    def rsa_key(bits=2048):
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)

    return SimpleNamespace(
        ca=rsa_key(),
        inter=rsa_key(),
        leaf=rsa_key(),
        other=rsa_key(),
        small=rsa_key(1024),
        ec=ec.generate_private_key(ec.SECP256R1()),
        p384=ec.generate_private_key(ec.SECP384R1()),
    )


@pytest.fixture(scope="session")
def pki(keys):
    k = keys
    p = SimpleNamespace()

    def ca_cert(cn, key, issuer_name=None, issuer_key=None, **kw):
        kw.setdefault("ca", True)
        kw.setdefault("ku", CA_KU)
        return build(name(cn), issuer_name or name(cn), issuer_key or key, key.public_key(), **kw)

    def server(cn, issuer=None, issuer_key=None, public_key=None, **kw):
        kw.setdefault("ca", False)
        kw.setdefault("ku", SERVER_KU)
        kw.setdefault("eku", [ExtendedKeyUsageOID.SERVER_AUTH])
        kw.setdefault("san", dns("localhost") + ips("127.0.0.1", "::1"))
        return build(
            name(cn),
            issuer or p.inter.subject,
            issuer_key or k.inter,
            public_key or k.leaf.public_key(),
            **kw,
        )

    p.root = ca_cert("Test Root CA", k.ca)
    p.inter = ca_cert("Test Intermediate CA", k.inter, p.root.subject, k.ca, path_len=0)
    p.leaf = server("localhost")
    p.client = server(
        "board-01",
        ku=key_usage("digital_signature"),
        eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
        san=None,
    )
    p.expired = server("old.localhost", not_before=DT_NOW - 400 * DAY, not_after=DT_NOW - 30 * DAY)
    p.not_yet = server("new.localhost", not_before=DT_NOW + 2 * DAY, not_after=DT_NOW + 90 * DAY)
    p.wrong_host = server("elsewhere", san=dns("other.example"))
    p.wrong_eku = server("clientonly", eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    p.any_eku = server("anyeku", eku=[x509.oid.ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])
    p.no_key_enc = server("signonly", ku=key_usage("digital_signature"))
    p.unknown_crit = server(
        "strange",
        extra=[
            (x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"), True)
        ],
    )
    p.unknown_noncrit = server(
        "harmless",
        extra=[
            (
                x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"),
                False,
            )
        ],
    )
    p.ec_leaf = server("ec-leaf", public_key=k.ec.public_key())
    client_kw = {"ku": key_usage("digital_signature"), "eku": [ExtendedKeyUsageOID.CLIENT_AUTH], "san": None}
    p.ec_client = server("ec-board", public_key=k.ec.public_key(), **client_kw)
    p.ec_client_no_ds = server(
        "ec-nosign", public_key=k.ec.public_key(), **{**client_kw, "ku": key_usage("key_agreement")}
    )
    p.p384_client = server("p384-board", public_key=k.p384.public_key(), **client_kw)
    p.small_key = server("tiny", public_key=k.small.public_key())
    p.sha384 = server("sha384", hash_alg=hashes.SHA384())
    p.sha512 = server("sha512", hash_alg=hashes.SHA512())
    p.pss = server(
        "pss",
        rsa_padding=padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
    )
    # cryptography 48 refuses to sign with SHA-1, so re-sign the TBS of a SHA-256 one by hand
    base = server("sha1-signed")
    tbs = base.tbs_certificate_bytes
    assert tbs.count(ALG_SHA256_RSA) == 1
    p.sha1_der = sign_tbs(
        tbs.replace(ALG_SHA256_RSA, ALG_SHA1_RSA), k.inter, ALG_SHA1_RSA, hashes.SHA1()
    )

    p.other_root = ca_cert("Other Root CA", k.other)
    p.other_leaf = server("localhost", issuer=p.other_root.subject, issuer_key=k.other)
    # same name as our root, different key
    p.impostor_root = ca_cert("Test Root CA", k.other)
    p.root_expired = ca_cert(
        "Test Root CA", k.ca, not_after=DT_NOW - DAY, not_before=DT_NOW - 99 * DAY
    )
    p.inter_expired = ca_cert(
        "Test Intermediate CA",
        k.inter,
        p.root.subject,
        k.ca,
        not_before=DT_NOW - 50 * DAY,
        not_after=DT_NOW - 5 * DAY,
    )
    # an "intermediate" that is not a CA, and a leaf it signed
    p.not_ca = ca_cert("Not A CA", k.inter, p.root.subject, k.ca, ca=False, ku=None)
    p.under_not_ca = server("localhost", issuer=p.not_ca.subject)
    p.no_bc = ca_cert("No BC", k.inter, p.root.subject, k.ca, ca=None)
    p.under_no_bc = server("localhost", issuer=p.no_bc.subject)
    p.no_certsign = ca_cert("No CertSign", k.inter, p.root.subject, k.ca, ku=key_usage("crl_sign"))
    p.under_no_certsign = server("localhost", issuer=p.no_certsign.subject)
    # pathLenConstraint 0 on the root forbids any intermediate
    p.root_pl0 = ca_cert("PathLen0 Root", k.ca, path_len=0)
    p.inter_pl0 = ca_cert("Under PathLen0", k.inter, p.root_pl0.subject, k.ca)
    p.leaf_pl0 = server("localhost", issuer=p.inter_pl0.subject)
    # leaf directly under a root
    p.direct = server("direct", issuer=p.root.subject, issuer_key=k.ca)
    # a self-signed server certificate trusted as it is
    p.self_signed = server("selfsigned", issuer=name("selfsigned"), issuer_key=k.leaf)
    # a v3 root without basicConstraints is not a CA; a v1 root (no extensions) is
    p.v3_no_bc_root = ca_cert("V3 NoBC Root", k.ca, ca=None, ku=None)
    p.under_v3_no_bc = server("localhost", issuer=p.v3_no_bc_root.subject, issuer_key=k.ca)
    p.v1_root_der = _v1_cert(name("V1 Root"), k.ca)
    p.under_v1 = server("localhost", issuer=name("V1 Root"), issuer_key=k.ca)
    # an ECDSA CA: we cannot check its signatures
    p.ec_root = ca_cert("EC Root", k.ec)
    p.under_ec = server("localhost", issuer=p.ec_root.subject, issuer_key=k.ec)
    # a small-key intermediate
    p.small_inter = ca_cert("Small Intermediate", k.small, p.root.subject, k.ca)
    p.under_small = server("localhost", issuer=p.small_inter.subject, issuer_key=k.small)
    return p


def _v1_cert(subject, key):
    def utc(dt):
        return der(0x17, dt.strftime("%y%m%d%H%M%SZ").encode())

    name_der = subject.public_bytes()
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    tbs = der(
        0x30,
        der(0x02, b"\x01\x23")
        + ALG_SHA256_RSA
        + name_der
        + der(0x30, utc(DT_NOW - 10 * DAY) + utc(DT_NOW + 10 * DAY))
        + name_der
        + spki,
    )
    return sign_tbs(tbs, key, ALG_SHA256_RSA, hashes.SHA256())


def D(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def P(cert):
    return X.parse_certificate(cert if isinstance(cert, bytes) else D(cert))


def verify(chain, anchors, **kw):
    kw.setdefault("backend", BACKEND)
    kw.setdefault("now", NOW)
    ders = [c if isinstance(c, bytes) else D(c) for c in chain]
    return X.verify_chain(kw.pop("backend"), ders, [P(a) for a in anchors], kw.pop("now"), **kw)


def fails(alert, chain, anchors, **kw):
    with pytest.raises(TLSError) as info:
        verify(chain, anchors, **kw)
    err = info.value
    assert err.alert == alert, (C.alert_name(err.alert), err.reason)
    return err.reason


# ---------------------------------------------------------------------------------------
# Parsing


def expected_name(n):
    parts = []
    for rdn in reversed(n.rdns):
        parts.append(
            "+".join(
                "%s=%s" % (SHORT_NAMES.get(a.oid.dotted_string, a.oid.dotted_string), a.value)
                for a in rdn
            )
        )
    return ", ".join(parts)


@pytest.mark.parametrize("which", ["root", "inter", "leaf", "client", "ec_leaf", "sha384", "pss"])
def test_fields_match_cryptography(pki, which):
    ref = getattr(pki, which)
    c = P(ref)
    assert c.der == D(ref)
    assert c.tbs == ref.tbs_certificate_bytes
    assert c.version == 3
    assert c.serial == ref.serial_number
    assert c.issuer == ref.issuer.public_bytes()
    assert c.subject == ref.subject.public_bytes()
    assert c.subject_str() == expected_name(ref.subject)
    assert c.issuer_str() == expected_name(ref.issuer)
    assert c.common_name() == ref.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert c.not_before == int(ref.not_valid_before_utc.timestamp())
    assert c.not_after == int(ref.not_valid_after_utc.timestamp())
    assert c.signature == ref.signature
    assert c.signature_algorithm_oid == ref.signature_algorithm_oid.dotted_string
    pub = ref.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        assert c.key_type == "rsa"
        assert (c.public_key.n, c.public_key.e) == (pub.public_numbers().n, pub.public_numbers().e)
        assert c.public_key.bits == pub.key_size
    else:
        assert c.key_type == "ec" and isinstance(c.public_key, X.ECPublicKey)
        assert c.public_key.point == pub.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    bc = ref.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert c.basic_constraints == (bc.ca, bc.path_length)
    try:
        san = ref.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert c.has_san
        assert c.san_dns == san.get_values_for_type(x509.DNSName)
        assert c.san_ip == [ip.packed for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        assert not c.has_san and c.san_dns == [] and c.san_ip == []
    try:
        eku = ref.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert c.extended_key_usage == [o.dotted_string for o in eku]
    except x509.ExtensionNotFound:
        assert c.extended_key_usage is None
    assert c.unknown_critical == []


def test_signature_hash_names(pki):
    assert P(pki.leaf).signature_hash == "sha256"
    assert P(pki.sha384).signature_hash == "sha384"
    assert P(pki.sha512).signature_hash == "sha512"
    assert P(pki.sha1_der).signature_hash == "sha1"
    pss = P(pki.pss)
    assert pss.signature_hash is None and pss.signature_algorithm_oid == "1.2.840.113549.1.1.10"
    ecsig = P(pki.under_ec)
    assert ecsig.signature_hash is None and ecsig.signature_algorithm_oid == "1.2.840.10045.4.3.2"


def test_key_usage_bits(pki):
    assert P(pki.leaf).key_usage == X.KU_DIGITAL_SIGNATURE | X.KU_KEY_ENCIPHERMENT
    assert P(pki.root).key_usage == X.KU_KEY_CERT_SIGN | X.KU_CRL_SIGN
    all_bits = key_usage(*KU_FIELDS)
    c = P(
        build(
            name("ku"), name("ku"), rsa_key_for_test(), rsa_key_for_test().public_key(), ku=all_bits
        )
    )
    assert c.key_usage == (1 << 9) - 1
    assert X.KU_DECIPHER_ONLY == 1 << 8 and X.KU_NON_REPUDIATION == 1 << 1


_SPARE = []


def rsa_key_for_test():
    # one extra key, made on first use only
    if not _SPARE:
        _SPARE.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _SPARE[0]


def test_unknown_critical_extension_recorded(pki):
    assert P(pki.unknown_crit).unknown_critical == ["1.3.6.1.4.1.55555.1"]
    assert P(pki.unknown_noncrit).unknown_critical == []


def test_v1_certificate(pki):
    c = P(pki.v1_root_der)
    ref = x509.load_der_x509_certificate(pki.v1_root_der)
    assert ref.version == x509.Version.v1
    assert c.version == 1 and c.serial == 0x123
    assert c.basic_constraints is None and c.key_usage is None and not c.has_san
    assert c.subject_str() == "CN=V1 Root, O=hsmtls test"


def test_full_name_attributes_and_escaping():
    key = rsa_key_for_test()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Berlin"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Berlin"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Doe, Ltd"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Lab"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, "42"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Grüße"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@b.example"),
        ]
    )
    c = P(build(subject, subject, key, key.public_key()))
    assert c.subject_str() == (
        "emailAddress=a@b.example, CN=Grüße, 2.5.4.5=42, OU=Lab, O=Doe\\, Ltd, L=Berlin, ST=Berlin, C=DE"
    )
    assert c.common_name() == "Grüße"
    assert c.basic_constraints is None and c.key_usage is None and c.extended_key_usage is None


def test_bmp_string_name():
    key = rsa_key_for_test()
    from cryptography.x509.name import _ASN1Type

    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "Ωmega", _type=_ASN1Type.BMPString)]
    )
    c = P(build(subject, subject, key, key.public_key()))
    assert c.common_name() == "Ωmega"


def test_dates_utctime_and_generalizedtime():
    key = rsa_key_for_test()
    nb = datetime.datetime(1960, 3, 1, 12, 0, 1, tzinfo=datetime.timezone.utc)
    na = datetime.datetime(2061, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)
    ref = build(name("dates"), name("dates"), key, key.public_key(), not_before=nb, not_after=na)
    raw = D(ref)
    assert b"\x17\x0d600301120001Z" in raw  # UTCTime, 19xx
    assert b"\x18\x0f20611231235959Z" in raw  # GeneralizedTime after 2049
    c = P(ref)
    assert c.not_before == int(nb.timestamp()) and c.not_before < 0
    assert c.not_after == int(na.timestamp())


def test_calendar_arithmetic_against_python():
    rng = random.Random(5)
    for _ in range(500):
        t = rng.randrange(-2_000_000_000, 10_000_000_000)
        dt = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
        assert X.format_time(t) == dt.strftime("%Y-%m-%d %H:%M:%S UTC")
        days = X._days_from_civil(dt.year, dt.month, dt.day)
        assert days * 86400 == calendar.timegm((dt.year, dt.month, dt.day, 0, 0, 0))


@pytest.mark.parametrize(
    "tag, text, expected",
    [
        (0x17, b"240229235959Z", datetime.datetime(2024, 2, 29, 23, 59, 59)),
        (0x17, b"491231235959Z", datetime.datetime(2049, 12, 31, 23, 59, 59)),
        (0x17, b"500101000000Z", datetime.datetime(1950, 1, 1)),
        (0x18, b"20000229000000Z", datetime.datetime(2000, 2, 29)),
        (0x18, b"99991231235959Z", datetime.datetime(9999, 12, 31, 23, 59, 59)),
        (0x17, b"230229000000Z", None),  # not a leap year
        (0x18, b"21000229000000Z", None),
        (0x17, b"241301000000Z", None),
        (0x17, b"240431000000Z", None),
        (0x17, b"240101240000Z", None),
        (0x17, b"240101006000Z", None),
        (0x17, b"240101000060Z", None),
        (0x17, b"2401010000Z", None),  # seconds are required
        (0x17, b"240101000000+", None),
        (0x17, b"24010100000aZ", None),
        (0x18, b"20240101000000.5Z", None),
        (0x18, b"240101000000Z", None),
        (0x04, b"240101000000Z", None),
    ],
)
def test_time_values(tag, text, expected):
    if expected is None:
        with pytest.raises(TLSError):
            X._time_value(text, tag, 0, len(text))
    else:
        t = calendar.timegm(expected.timetuple())
        assert X._time_value(text, tag, 0, len(text)) == t


def test_pem_helpers(pki):
    pem = (
        b"junk before\n"
        + pki.root.public_bytes(serialization.Encoding.PEM)
        + b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        + pki.other_root.public_bytes(serialization.Encoding.PEM)
    )
    assert X.pem_to_der_list(pem) == [D(pki.root), D(pki.other_root)]
    assert X.pem_to_der_list(pem.decode()) == [D(pki.root), D(pki.other_root)]
    anchors = X.load_anchors(pem)
    assert [a.subject_str() for a in anchors] == [
        "CN=Test Root CA, O=hsmtls test",
        "CN=Other Root CA, O=hsmtls test",
    ]
    assert X.pem_to_der_list("no certificates here") == []
    with pytest.raises(TLSError):
        X.pem_to_der_list("-----BEGIN CERTIFICATE-----\nAAA\n")
    with pytest.raises(TLSError):
        X.pem_to_der_list("-----BEGIN CERTIFICATE-----\nA!A\n-----END CERTIFICATE-----\n")


# ---------------------------------------------------------------------------------------
# Malformed input


@pytest.mark.parametrize(
    "blob, why",
    [
        (b"", "truncated"),
        (b"\x30", "truncated"),
        (b"\x30\x80\x00\x00", "indefinite length"),
        (b"\x30\x05\x02\x01\x01", "length past the end"),
        (b"\x30\x84\x00\x00\x00\x01\x00", "length too large"),
        (b"\x30\x81\x03\x02\x01\x01", "non-minimal length"),
        (b"\x30\x03\x02\x01\x01\x00", "trailing data"),
        (b"\x31\x00", "expected Certificate"),
        (b"\x30\x00", "truncated"),
    ],
)
def test_malformed_der(blob, why):
    with pytest.raises(TLSError) as info:
        X.parse_certificate(blob)
    assert info.value.alert == C.BAD_CERTIFICATE
    assert info.value.reason == "malformed certificate: " + why


def test_every_truncation_is_a_tlserror(pki):
    raw = D(pki.leaf)
    for n in range(len(raw)):
        with pytest.raises(TLSError):
            X.parse_certificate(raw[:n])
    with pytest.raises(TLSError):
        X.parse_certificate(raw + b"\x00")


def _mutations(raw, count, seed):
    rng = random.Random(seed)
    for _ in range(count):
        b = bytearray(raw)
        kind = rng.randrange(4)
        if kind == 0:
            b = b[: rng.randrange(len(b))]
        elif kind == 1:
            for _ in range(rng.randrange(1, 4)):
                i = rng.randrange(len(b))
                b[i] ^= 1 << rng.randrange(8)
        elif kind == 2:
            b[rng.randrange(len(b))] = rng.choice([0x00, 0x7F, 0x80, 0x81, 0x82, 0x83, 0xFF])
        else:
            i = rng.randrange(len(b))
            del b[i : i + rng.randrange(1, 8)]
        yield bytes(b)


@pytest.mark.parametrize("which", ["leaf", "inter"])
def test_fuzz_only_tlserror(pki, which):
    raw = D(getattr(pki, which))
    chain_rest = [] if which == "inter" else [D(pki.inter)]
    anchors = [P(pki.root)]
    parsed = 0
    for blob in _mutations(raw, 400, seed=which):
        try:
            c = X.parse_certificate(blob)
        except TLSError as e:
            assert e.alert == C.BAD_CERTIFICATE
            continue
        parsed += 1
        # whatever parsed must be usable without surprises
        c.subject_str(), c.issuer_str(), c.common_name()
        X.match_hostname(c, "localhost")
        X.match_hostname(c, "127.0.0.1")
        try:
            X.verify_chain(BACKEND, [blob] + chain_rest, anchors, NOW, hostname="localhost")
        except TLSError:
            pass
    assert parsed > 0  # some flips land in signature bytes or strings


# ---------------------------------------------------------------------------------------
# Host names


def fake(san_dns=(), san_ip=(), cn=None, has_san=True):
    c = X.Certificate(b"")
    c.san_dns = list(san_dns)
    c.san_ip = list(san_ip)
    c.has_san = has_san
    n = name(cn) if cn else x509.Name([])
    c.subject = n.public_bytes()
    return c


@pytest.mark.parametrize(
    "pattern, host, ok",
    [
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "A.Example.COM", True),
        ("*.EXAMPLE.com", "a.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", ".example.com", False),
        ("*.com", "example.com", False),
        ("*", "example", False),
        ("f*.example.com", "foo.example.com", False),
        ("a.*.example.com", "a.b.example.com", False),
        ("**.example.com", "a.example.com", False),
        ("www.example.com", "www.example.com", True),
        ("www.example.com", "www.example.com.", True),
        ("www.example.com.", "www.example.com", True),
        ("www.example.com", "example.com", False),
        ("*.example.com", "127.0.0.1", False),
    ],
)
def test_wildcards(pattern, host, ok):
    assert X.match_hostname(fake(san_dns=[pattern]), host) is ok


def test_ip_and_cn_rules():
    v4 = bytes([127, 0, 0, 1])
    v6 = ipaddress.ip_address("2001:db8::1").packed
    c = fake(san_dns=["127.0.0.1"], san_ip=[v4, v6], cn="127.0.0.1")
    assert X.match_hostname(c, "127.0.0.1")
    assert X.match_hostname(c, "2001:db8::1")
    assert X.match_hostname(c, "2001:DB8:0:0:0:0:0:1")
    assert X.match_hostname(c, "[2001:db8::1]")
    assert not X.match_hostname(c, "127.0.0.2")
    assert not X.match_hostname(c, "::1")
    # an IP literal never matches a dNSName or the CN
    assert not X.match_hostname(fake(san_dns=["127.0.0.1"], cn="127.0.0.1"), "127.0.0.1")
    assert not X.match_hostname(fake(cn="10.0.0.1", has_san=False), "10.0.0.1")
    # the CN counts only when asked for, and only when there is no subjectAltName at all
    assert not X.match_hostname(fake(cn="board.local", has_san=False), "board.local")
    assert X.match_hostname(fake(cn="board.local", has_san=False), "board.local", allow_cn=True)
    assert not X.match_hostname(fake(san_dns=["x.local"], cn="board.local"), "board.local", True)
    assert not X.match_hostname(fake(san_ip=[v4], cn="board.local"), "board.local", True)
    assert not X.match_hostname(fake(cn="board.local"), "", True)


def test_parse_ip():
    for text in [
        "1.2.3.4",
        "::",
        "::1",
        "fe80::1:2",
        "1:2:3:4:5:6:7:8",
        "::ffff:10.1.2.3",
        "64:ff9b::1.2.3.4",
    ]:
        assert X.parse_ip(text) == ipaddress.ip_address(text).packed
    for text in [
        "1.2.3",
        "1.2.3.256",
        "1.2.3.4.5",
        "a.b.c.d",
        "1::2::3",
        "1:2:3:4:5:6:7:8:9",
        "12345::",
        "g::1",
        "localhost",
        "1.2.3.-4",
        "::-1",
        "+1::",
        " 1::",
        "1_0::1",
        "1.2.3.0x4",
        "1.2.3.+4",
        "1.2.3.1_0",
    ]:
        assert X.parse_ip(text) is None, text


# ---------------------------------------------------------------------------------------
# verify_chain: success paths


def test_server_chain_ok(pki):
    leaf = verify([pki.leaf, pki.inter], [pki.root], hostname="localhost")
    assert leaf.subject_str() == "CN=localhost, O=hsmtls test"
    assert verify([pki.leaf, pki.inter], [pki.root], hostname="127.0.0.1").der == D(pki.leaf)
    assert verify([pki.leaf, pki.inter], [pki.root], hostname="::1")
    assert verify([pki.leaf, pki.inter], [pki.root])  # no host check asked for


def test_chain_order_and_extras(pki):
    # root sent along, intermediates in any order, unrelated certificates ignored
    verify(
        [pki.leaf, pki.root, pki.other_root, pki.inter],
        [pki.other_root, pki.root],
        hostname="localhost",
    )
    verify([pki.leaf, pki.inter, pki.root], [pki.root])


def test_leaf_directly_under_root_and_anchor_equal_to_leaf(pki):
    verify([pki.direct], [pki.root])
    verify([pki.self_signed], [pki.self_signed], hostname="localhost")
    verify([pki.leaf], [pki.inter], hostname="localhost")  # an intermediate as the anchor


def test_client_certificate(pki):
    leaf = verify([pki.client, pki.inter], [pki.root], purpose="client")
    assert leaf.common_name() == "board-01"


def test_any_eku_and_unknown_noncritical(pki):
    verify([pki.any_eku, pki.inter], [pki.root])
    verify([pki.any_eku, pki.inter], [pki.root], purpose="client")
    verify([pki.unknown_noncrit, pki.inter], [pki.root])


def test_v1_anchor_allowed(pki):
    verify([pki.under_v1], [pki.v1_root_der])


def test_sha384_sha512_chains(pki):
    verify([pki.sha384, pki.inter], [pki.root])
    verify([pki.sha512, pki.inter], [pki.root])


def test_validity_bounds_are_inclusive(pki):
    c = P(pki.leaf)
    verify([pki.leaf, pki.inter], [pki.root], now=c.not_before)
    verify([pki.leaf, pki.inter], [pki.root], now=c.not_after)


# ---------------------------------------------------------------------------------------
# verify_chain: failures


def test_no_certificate():
    reason = fails(C.BAD_CERTIFICATE, [], [])
    assert reason == "no certificate"


def test_too_many_certificates(pki):
    fails(C.BAD_CERTIFICATE, [pki.leaf] + [pki.inter] * 10, [pki.root])


def test_malformed_in_chain(pki):
    reason = fails(C.BAD_CERTIFICATE, [pki.leaf, D(pki.inter)[:-3]], [pki.root])
    assert reason.startswith("malformed certificate")


def test_unknown_ca(pki):
    reason = fails(C.UNKNOWN_CA, [pki.other_leaf], [pki.root], hostname="localhost")
    assert reason == "certificate CN=localhost, O=hsmtls test is not signed by a trusted CA"
    reason = fails(C.UNKNOWN_CA, [pki.leaf], [pki.root])  # intermediate missing
    assert "CN=localhost" in reason
    reason = fails(C.UNKNOWN_CA, [pki.leaf, pki.inter], [])
    assert "CN=Test Intermediate CA" in reason
    fails(C.UNKNOWN_CA, [pki.self_signed], [pki.root])


def test_bad_signature(pki):
    raw = bytearray(D(pki.leaf))
    raw[-1] ^= 0x01
    reason = fails(C.BAD_CERTIFICATE, [bytes(raw), pki.inter], [pki.root])
    assert reason == "signature on CN=localhost, O=hsmtls test does not verify"
    # same issuer name as a trusted CA, different key: an impostor is an unknown CA
    reason = fails(C.UNKNOWN_CA, [pki.leaf, pki.inter], [pki.impostor_root])
    assert "CN=Test Intermediate CA" in reason and "not signed by a trusted CA" in reason


def test_tampered_tbs(pki):
    raw = D(pki.leaf)
    tampered = raw.replace(b"localhost", b"localhosx")
    assert tampered != raw
    fails(C.BAD_CERTIFICATE, [tampered, pki.inter], [pki.root])


def test_sha1_signature_refused(pki):
    reason = fails(C.BAD_CERTIFICATE, [pki.sha1_der, pki.inter], [pki.root])
    assert "CN=sha1-signed" in reason and "sha1" in reason


def test_unknown_signature_algorithms(pki):
    reason = fails(C.UNSUPPORTED_CERTIFICATE, [pki.pss, pki.inter], [pki.root])
    assert "CN=pss" in reason and "1.2.840.113549.1.1.10" in reason
    reason = fails(C.UNSUPPORTED_CERTIFICATE, [pki.under_ec], [pki.ec_root])
    assert "1.2.840.10045.4.3.2" in reason


def test_hash_missing_from_backend(pki):
    class NoSha384:
        hash_names = ("sha1", "sha256")

        def hash(self, name, data):
            assert name in self.hash_names
            return BACKEND.hash(name, data)

    verify([pki.leaf, pki.inter], [pki.root], backend=NoSha384())
    reason = fails(
        C.UNSUPPORTED_CERTIFICATE, [pki.sha384, pki.inter], [pki.root], backend=NoSha384()
    )
    assert "CN=sha384" in reason and "sha384" in reason


def test_expired_and_not_yet_valid(pki):
    reason = fails(
        C.CERTIFICATE_EXPIRED, [pki.expired, pki.inter], [pki.root], hostname="localhost"
    )
    assert reason.startswith("certificate CN=old.localhost, O=hsmtls test expired on ")
    date = (DT_NOW - 30 * DAY).strftime("%Y-%m-%d")
    assert date in reason
    reason = fails(C.CERTIFICATE_EXPIRED, [pki.not_yet, pki.inter], [pki.root])
    assert (
        "CN=new.localhost" in reason
        and "not valid before " + (DT_NOW + 2 * DAY).strftime("%Y-%m-%d") in reason
    )
    c = P(pki.leaf)
    fails(C.CERTIFICATE_EXPIRED, [pki.leaf, pki.inter], [pki.root], now=c.not_after + 1)
    fails(C.CERTIFICATE_EXPIRED, [pki.leaf, pki.inter], [pki.root], now=c.not_before - 1)


def test_expired_intermediate_and_anchor(pki):
    reason = fails(C.CERTIFICATE_EXPIRED, [pki.leaf, pki.inter_expired], [pki.root])
    assert "CN=Test Intermediate CA" in reason and "expired" in reason
    reason = fails(C.CERTIFICATE_EXPIRED, [pki.leaf, pki.inter], [pki.root_expired])
    assert "CN=Test Root CA" in reason and "expired" in reason


def test_issuer_must_be_a_ca(pki):
    reason = fails(C.UNKNOWN_CA, [pki.under_not_ca, pki.not_ca], [pki.root])
    assert "CN=Not A CA" in reason and "not a CA" in reason
    reason = fails(C.UNKNOWN_CA, [pki.under_no_bc, pki.no_bc], [pki.root])
    assert "CN=No BC" in reason
    reason = fails(C.UNKNOWN_CA, [pki.under_no_certsign, pki.no_certsign], [pki.root])
    assert "CN=No CertSign" in reason and "keyUsage" in reason
    # a v3 anchor needs basicConstraints too; only a v1 anchor is exempt
    reason = fails(C.UNKNOWN_CA, [pki.under_v3_no_bc], [pki.v3_no_bc_root])
    assert "CN=V3 NoBC Root" in reason


def test_path_len_constraint(pki):
    reason = fails(C.UNKNOWN_CA, [pki.leaf_pl0, pki.inter_pl0], [pki.root_pl0])
    assert "CN=PathLen0 Root" in reason
    # the intermediate's own pathLen 0 still allows a leaf directly below it
    verify([pki.leaf, pki.inter], [pki.root])


def test_unknown_critical_extension(pki):
    reason = fails(C.UNSUPPORTED_CERTIFICATE, [pki.unknown_crit, pki.inter], [pki.root])
    assert "CN=strange" in reason and "1.3.6.1.4.1.55555.1" in reason


def test_ec_leaf_unsupported(pki):
    # a server's key must decrypt the premaster: RSA only, as before
    reason = fails(C.UNSUPPORTED_CERTIFICATE, [pki.ec_leaf, pki.inter], [pki.root])
    assert reason == "certificate CN=ec-leaf, O=hsmtls test has a ec key; only RSA is supported"


def test_ec_p256_client_leaf(pki, keys):
    leaf = verify([pki.ec_client, pki.inter], [pki.root], purpose="client")
    nums = keys.ec.public_key().public_numbers()
    assert leaf.public_key.point == b"\x04" + nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")
    assert leaf.public_key.group == C.SECP256R1 and leaf.public_key.bits == 256
    reason = fails(C.UNSUPPORTED_CERTIFICATE, [pki.ec_client_no_ds, pki.inter], [pki.root], purpose="client")
    assert "CN=ec-nosign" in reason and "digitalSignature" in reason
    # the key is no RSA key to any RSA path
    fails(C.UNSUPPORTED_CERTIFICATE, [pki.ec_client, pki.inter], [pki.root])


def test_ec_other_curves_unsupported(pki):
    c = P(pki.p384_client)
    assert c.key_type == "ec" and c.public_key is None
    reason = fails(C.UNSUPPORTED_CERTIFICATE, [pki.p384_client, pki.inter], [pki.root], purpose="client")
    assert reason == "certificate CN=p384-board, O=hsmtls test has a ec key; only RSA or ECDSA P-256 is supported"


def _ec_spki_body(params, point):
    # the contents of a SubjectPublicKeyInfo SEQUENCE, as _parse_spki reads them
    alg = der(0x30, der(0x06, bytes.fromhex("2a8648ce3d0201")) + params)
    return alg + der(0x03, b"\x00" + point)


P256_OID = der(0x06, bytes.fromhex("2a8648ce3d030107"))


@pytest.mark.parametrize("case", ["ok", "compressed", "explicit", "off_curve", "short", "no_params"])
def test_ec_spki_parsing(keys, case):
    pub = keys.ec.public_key()
    point = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    params = P256_OID
    if case == "compressed":
        point = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    elif case == "explicit":
        params = der(0x30, der(0x02, b"\x01"))  # specifiedCurve: not taken
    elif case == "off_curve":
        point = point[:-1] + bytes([point[-1] ^ 1])
    elif case == "short":
        point = point[:-1]
    elif case == "no_params":
        params = b""
    spki = _ec_spki_body(params, point)
    cert = X.Certificate(b"")
    if case in ("off_curve", "no_params"):
        with pytest.raises(TLSError) as info:
            X._parse_spki(cert, spki, 0, len(spki))
        assert info.value.alert == C.BAD_CERTIFICATE
        return
    X._parse_spki(cert, spki, 0, len(spki))
    assert cert.key_type == "ec"
    if case == "ok":
        assert cert.public_key.point == point
    else:
        assert cert.public_key is None


def test_small_keys(pki):
    reason = fails(C.BAD_CERTIFICATE, [pki.small_key, pki.inter], [pki.root])
    assert reason == "RSA key of 1024 bits in CN=tiny, O=hsmtls test is too small"
    reason = fails(C.BAD_CERTIFICATE, [pki.under_small, pki.small_inter], [pki.root])
    assert "CN=Small Intermediate" in reason


def test_purpose_server(pki):
    reason = fails(C.UNSUPPORTED_CERTIFICATE, [pki.wrong_eku, pki.inter], [pki.root])
    assert "CN=clientonly" in reason and "serverAuth" in reason
    reason = fails(C.UNSUPPORTED_CERTIFICATE, [pki.no_key_enc, pki.inter], [pki.root])
    assert "CN=signonly" in reason and "keyEncipherment" in reason
    fails(C.UNSUPPORTED_CERTIFICATE, [pki.client, pki.inter], [pki.root])


def test_purpose_client(pki):
    reason = fails(C.UNSUPPORTED_CERTIFICATE, [pki.leaf, pki.inter], [pki.root], purpose="client")
    assert "CN=localhost" in reason and "clientAuth" in reason
    with pytest.raises(ValueError):
        verify([pki.leaf, pki.inter], [pki.root], purpose="email")


def test_wrong_host(pki):
    reason = fails(
        C.CERTIFICATE_UNKNOWN, [pki.wrong_host, pki.inter], [pki.root], hostname="localhost"
    )
    assert reason == "certificate CN=elsewhere, O=hsmtls test does not match host 'localhost'"
    fails(C.CERTIFICATE_UNKNOWN, [pki.leaf, pki.inter], [pki.root], hostname="127.0.0.2")
    fails(C.CERTIFICATE_UNKNOWN, [pki.leaf, pki.inter], [pki.root], hostname="evil.localhost")


# ---------------------------------------------------------------------------------------
# SignatureCache: a signature verified once is not verified again; nothing else is skipped


def test_signature_cache_skips_only_the_rsa_check(pki, monkeypatch):
    calls = []
    real = X.pkcs1_verify
    monkeypatch.setattr(X, "pkcs1_verify", lambda *a: calls.append(a) or real(*a))
    cache = X.SignatureCache(size=2)
    chain = [pki.leaf, pki.inter]
    verify(chain, [pki.root], hostname="localhost", cache=cache)
    assert len(calls) == 2 and cache.hits == 0  # leaf by intermediate, intermediate by root
    verify(chain, [pki.root], hostname="localhost", cache=cache)
    assert len(calls) == 2 and cache.hits == 2
    # what changes with time and context is still checked on every handshake
    fails(C.CERTIFICATE_EXPIRED, chain, [pki.root], now=P(pki.leaf).not_after + 1, cache=cache)
    fails(C.CERTIFICATE_UNKNOWN, chain, [pki.root], hostname="other.example", cache=cache)
    fails(C.UNKNOWN_CA, chain, [pki.other_root], cache=cache)  # anchor no longer trusted
    # a certificate that differs in any byte is a different entry, checked in full
    raw = bytearray(D(pki.leaf))
    raw[-1] ^= 0x01
    n = len(calls)
    fails(C.BAD_CERTIFICATE, [bytes(raw), pki.inter], [pki.root], cache=cache)
    assert len(calls) > n
    # failures are not remembered: the bad one costs a check every time
    n = len(calls)
    fails(C.BAD_CERTIFICATE, [bytes(raw), pki.inter], [pki.root], cache=cache)
    assert len(calls) > n


def test_signature_cache_is_bounded_least_recently_used(pki, monkeypatch):
    calls = []
    real = X.pkcs1_verify
    monkeypatch.setattr(X, "pkcs1_verify", lambda *a: calls.append(a) or real(*a))
    cache = X.SignatureCache(size=1)
    verify([pki.direct], [pki.root], cache=cache)
    verify([pki.direct], [pki.root], cache=cache)
    assert len(calls) == 1
    verify([pki.sha384, pki.inter], [pki.root], cache=cache)  # two new entries: direct evicted
    verify([pki.direct], [pki.root], cache=cache)
    assert len(calls) == 4


def test_signature_cache_reuses_parsed_certificates(pki, monkeypatch):
    chain = [pki.leaf, pki.inter]
    ders = [D(c) for c in chain]
    parses = []  # of the chain's certificates (the test parses its anchors itself)
    real = X.parse_certificate
    monkeypatch.setattr(X, "parse_certificate", lambda der: (der in ders and parses.append(der)) or real(der))
    cache = X.SignatureCache(size=2, parsed=2)
    first = verify(chain, [pki.root], hostname="localhost", cache=cache)
    assert len(parses) == 2 and cache.parsed_hits == 0
    again = verify(chain, [pki.root], hostname="localhost", cache=cache)
    assert len(parses) == 2 and cache.parsed_hits == 2 and again is first
    # checks on the reused certificate still run
    fails(C.CERTIFICATE_EXPIRED, chain, [pki.root], now=P(pki.leaf).not_after + 1, cache=cache)
    fails(C.CERTIFICATE_UNKNOWN, chain, [pki.root], hostname="other.example", cache=cache)
    # a byte changed is another certificate: parsed (and checked) afresh
    raw = bytearray(D(pki.leaf))
    raw[-1] ^= 0x01
    ders.append(bytes(raw))
    fails(C.BAD_CERTIFICATE, [bytes(raw), pki.inter], [pki.root], cache=cache)
    assert parses[-1] == bytes(raw)
    # only the last `parsed` are kept
    assert len(cache._parsed) == 2
    assert X.SignatureCache(parsed=0).parse(D(pki.leaf)).der == D(pki.leaf)


# ---------------------------------------------------------------------------------------
# OIDs compared as DER (no dotted string on the board's hot path)


def test_der_oid_constants_are_the_dotted_oids():
    import derwriter

    for dotted, der in (
        (X.OID_RSA_ENCRYPTION, X.OID_RSA_ENCRYPTION_DER),
        (X.OID_EC_PUBLIC_KEY, X.OID_EC_PUBLIC_KEY_DER),
        ("1.2.840.10045.3.1.7", X.OID_PRIME256V1_DER),
    ):
        assert derwriter.oid(dotted)[2:] == der
    for ce in X.CE_KNOWN:
        assert derwriter.oid("2.5.29.%d" % ce)[2:] == X.ID_CE_DER + bytes([ce])


@pytest.mark.parametrize("content, why", [
    (b"", "empty OID"),
    (b"\x2a\x86", "truncated OID"),
    (b"\x80\x01", "non-minimal OID"),
    (b"\x2a\x80\x01", "non-minimal OID"),
])
def test_bad_oid_encodings(content, why):
    for check in (X._check_oid, X._oid_str):
        with pytest.raises(TLSError) as info:
            check(content, 0, len(content))
        assert info.value.reason == "malformed certificate: " + why
    X._check_oid(b"\x2a\x86\x80\x01", 0, 4)  # 0x80 inside an arc is fine


@pytest.mark.parametrize("dotted", ["2.5.29.19", "1.3.6.1.4.1.55555.1"])
def test_duplicate_extension_refused(dotted):
    import derwriter as D

    ext = D.seq(D.oid(dotted), D.tlv(0x04, D.seq()))
    data = D.seq(ext, ext)
    cert = SimpleNamespace(unknown_critical=[])
    with pytest.raises(TLSError) as info:
        X._parse_extensions(cert, data, 0, len(data))
    assert info.value.reason == "malformed certificate: duplicate extension " + dotted
