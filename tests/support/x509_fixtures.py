"""Certificates for the tlscore.x509 tests, built by hand or with `cryptography`: a
session's keys, a PKI of good and bad chains, and verify/fails around
pathvalidation.verify_chain. A test module takes the fixtures as `keys =
x509_fixtures.keys` (a fixture imported by name would read as an unused import); each
is made once a session whichever module asks first."""

import datetime
import functools
import ipaddress
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from hsmtls.backend import BACKEND
from tlscore import constants as C
from tlscore import pathvalidation as PV
from tlscore import x509 as X
from tlscore.errors import TLSError

NOW = 1_750_000_000  # 2025-06-15 15:06:40 UTC
DT_NOW = datetime.datetime.fromtimestamp(NOW, datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


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
    return _keys()


@pytest.fixture(scope="session")
def pki():
    return _pki()


@functools.cache
def _keys():
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


@functools.cache
def _pki():
    k = _keys()
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
    return PV.verify_chain(kw.pop("backend"), ders, [P(a) for a in anchors], kw.pop("now"), **kw)


def fails(alert, chain, anchors, **kw):
    with pytest.raises(TLSError) as info:
        verify(chain, anchors, **kw)
    err = info.value
    assert err.alert == alert, (C.alert_name(err.alert), err.reason)
    return err.reason


