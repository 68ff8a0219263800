"""tlscore.x509 and tlscore.der: certificates parsed and checked against `cryptography`,
names, times, PEM, malformed and mutated input, OIDs compared as DER."""

import calendar
import datetime
import random
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from hsmtls.backend import BACKEND
from tlscore import constants as C
from tlscore import der as DER
from tlscore import hostname as H
from tlscore import pathvalidation as PV
from tlscore import x509 as X
from tlscore.errors import TLSError

from support import x509_fixtures
from support.x509_fixtures import (
    KU_FIELDS,
    NOW,
    D,
    P,
    build,
    key_usage,
    name,
)

keys = x509_fixtures.keys
pki = x509_fixtures.pki

# ---------------------------------------------------------------------------------------
# Parsing


def expected_name(n):
    parts = []
    for rdn in reversed(n.rdns):
        parts.append(
            "+".join(
                "%s=%s" % (a.rfc4514_attribute_name, a.value)
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
        days = DER._days_from_civil(dt.year, dt.month, dt.day)
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
            DER.time_value(text, tag, 0, len(text))
    else:
        t = calendar.timegm(expected.timetuple())
        assert DER.time_value(text, tag, 0, len(text)) == t


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
        H.match_hostname(c, "localhost")
        H.match_hostname(c, "127.0.0.1")
        try:
            PV.verify_chain(BACKEND, [blob] + chain_rest, anchors, NOW, hostname="localhost")
        except TLSError:
            pass
    assert parsed > 0  # some flips land in signature bytes or strings


# ---------------------------------------------------------------------------------------
# OIDs compared as DER (no dotted string on the board's hot path)


def test_der_oid_constants_are_the_dotted_oids():
    from boardapp import derwriter

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
    for check in (DER.check_oid, DER.oid_str):
        with pytest.raises(TLSError) as info:
            check(content, 0, len(content))
        assert info.value.reason == "malformed certificate: " + why
    DER.check_oid(b"\x2a\x86\x80\x01", 0, 4)  # 0x80 inside an arc is fine


@pytest.mark.parametrize("dotted", ["2.5.29.19", "1.3.6.1.4.1.55555.1"])
def test_duplicate_extension_refused(dotted):
    from boardapp import derwriter as D

    ext = D.seq(D.oid(dotted), D.tlv(0x04, D.seq()))
    data = D.seq(ext, ext)
    cert = SimpleNamespace(unknown_critical=[])
    with pytest.raises(TLSError) as info:
        X._parse_extensions(cert, data, 0, len(data))
    assert info.value.reason == "malformed certificate: duplicate extension " + dotted

