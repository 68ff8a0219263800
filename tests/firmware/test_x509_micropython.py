"""tlscore.x509 under the MicroPython unix port: the same chain CPython builds, checked
with a backend of what the ESP32 firmware has (hashlib sha1/sha256, os.urandom)."""

import datetime
import ipaddress
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from support.required_tools import requires_tool

pytestmark = [
    pytest.mark.micropython,
    requires_tool("micropython"),
]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("x509_check.py")
NOW = 1_750_000_000
DT_NOW = datetime.datetime.fromtimestamp(NOW, datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def _name(cn):
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hsmtls test"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ku(**flags):
    names = [
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    ]
    return x509.KeyUsage(**{n: flags.get(n, False) for n in names})


def _cert(subject, issuer, issuer_key, key, ca, *, days=(-1, 365), eku=None, san=None, h=None, ku=None,
          extra=()):
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(DT_NOW + days[0] * DAY)
        .not_valid_after(DT_NOW + days[1] * DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(_ku(key_cert_sign=True, crl_sign=True), critical=True)
    else:
        b = b.add_extension(ku or _ku(digital_signature=True, key_encipherment=True), critical=True)
        b = b.add_extension(x509.ExtendedKeyUsage(eku or [ExtendedKeyUsageOID.SERVER_AUTH]), False)
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    for ext in extra:
        b = b.add_extension(ext, critical=False)
    return b.sign(issuer_key, h or hashes.SHA256())


@pytest.fixture(scope="module")
def chain_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("x509_mp")
    ca_key, inter_key, leaf_key = (rsa.generate_private_key(65537, 2048) for _ in range(3))
    root = _cert(_name("MP Root"), _name("MP Root"), ca_key, ca_key, True)
    other = _cert(_name("MP Other Root"), _name("MP Other Root"), leaf_key, leaf_key, True)
    inter = _cert(_name("MP Intermediate"), root.subject, ca_key, inter_key, True)
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    leaf = _cert(_name("localhost"), inter.subject, inter_key, leaf_key, False, san=san)
    files = {
        "leaf.der": leaf,
        "inter.der": inter,
        "expired.der": _cert(
            _name("old"), inter.subject, inter_key, leaf_key, False, days=(-90, -3)
        ),
        "sha384.der": _cert(
            _name("s384"), inter.subject, inter_key, leaf_key, False, h=hashes.SHA384()
        ),
        "client.der": _cert(
            _name("board-01"),
            inter.subject,
            inter_key,
            leaf_key,
            False,
            eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
        ),
    }
    # nameConstraints (non-critical) on a root; keyUsage by key exchange; a CN-only leaf
    nc = x509.NameConstraints(permitted_subtrees=[x509.DNSName("example.com")],
                              excluded_subtrees=[x509.IPAddress(ipaddress.ip_network("127.0.0.0/8"))])
    nc_root = _cert(_name("MP NC Root"), _name("MP NC Root"), ca_key, ca_key, True, extra=[nc])
    dir_nc = x509.NameConstraints(permitted_subtrees=[x509.DirectoryName(_name("x"))], excluded_subtrees=None)
    dir_root = _cert(_name("MP Dir Root"), _name("MP Dir Root"), ca_key, ca_key, True, extra=[dir_nc])

    def under(root, cn, san, **kw):
        return _cert(_name(cn), root.subject, ca_key, leaf_key, False, san=san, **kw)

    files.update({
        "nc_ok.der": under(nc_root, "nc-ok", [x509.DNSName("www.example.com")]),
        "nc_out.der": under(nc_root, "nc-out", [x509.DNSName("localhost")]),
        "nc_ip.der": under(nc_root, "nc-ip", [x509.DNSName("a.example.com"), san[1]]),
        "dir_leaf.der": under(dir_root, "dir-leaf", [x509.DNSName("localhost")]),
        "sign_only.der": under(root, "sign-only", san, ku=_ku(digital_signature=True)),
        "enc_only.der": under(root, "enc-only", san, ku=_ku(key_encipherment=True)),
        "cn_only.der": under(root, "localhost", None),
    })
    for fname, cert in (("nc_root.pem", nc_root), ("dir_root.pem", dir_root)):
        (d / fname).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    for fname, cert in files.items():
        (d / fname).write_bytes(cert.public_bytes(serialization.Encoding.DER))
    (d / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (d / "other.pem").write_bytes(other.public_bytes(serialization.Encoding.PEM))
    return d, leaf, leaf_key


@pytest.fixture(scope="module")
def output(chain_dir):
    d = chain_dir[0]
    proc = subprocess.run(
        ["micropython", str(SCRIPT), str(ROOT / "firmware" / "lib"), str(d), str(NOW), "200"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = {}
    for line in proc.stdout.splitlines():
        key, _, rest = line.partition(" ")
        lines[key] = rest
    return lines


def test_parsed_fields_match_cryptography(output, chain_dir):
    leaf = chain_dir[1]
    pub = leaf.public_key().public_numbers()
    assert output["subject"] == "CN=localhost, O=hsmtls test, C=DE"
    assert output["issuer"] == "CN=MP Intermediate, O=hsmtls test, C=DE"
    assert output["serial"] == str(leaf.serial_number)
    assert output["validity"] == "%d %d" % (
        leaf.not_valid_before_utc.timestamp(),
        leaf.not_valid_after_utc.timestamp(),
    )
    assert output["key"] == "rsa 2048 %d %d" % (pub.e, pub.n % 1000003)
    assert output["san"] == "localhost 4"
    assert output["ku"] == "5 eku 1.3.6.1.5.5.7.3.1"
    assert output["bc"] == "(True, None)"
    assert output["hash"] == "sha256"


def test_verify_chain_results(output):
    assert output["good"] == "OK localhost"
    assert output["good_ip"] == "OK localhost"
    assert output["expired"].startswith(
        "ALERT 45 certificate CN=old, O=hsmtls test, C=DE expired on "
    )
    assert output["unknown_ca"] == (
        "ALERT 48 certificate CN=MP Intermediate, O=hsmtls test, C=DE is not signed by a trusted CA"
    )
    assert output["wrong_host"].startswith("ALERT 46 ")
    assert "example.com" in output["wrong_host"]
    # the board has no SHA-384: the certificate is refused, not crashed on
    assert output["sha384_missing"].startswith("ALERT 43 ")
    assert output["client"] == "OK board-01"


def test_name_constraints_key_usage_and_cn(output):
    assert output["nc_ok"] == "OK nc-ok"
    assert output["nc_out"] == (
        "ALERT 42 name localhost of certificate CN=nc-out, O=hsmtls test, C=DE is outside the names "
        "CA CN=MP NC Root, O=hsmtls test, C=DE may certify (nameConstraints)"
    )
    assert output["nc_ip"] == (
        "ALERT 42 name 127.0.0.1 of certificate CN=nc-ip, O=hsmtls test, C=DE is excluded by "
        "CA CN=MP NC Root, O=hsmtls test, C=DE (nameConstraints)"
    )
    assert output["dir_nc"] == (
        "ALERT 43 certificate CN=MP Dir Root, O=hsmtls test, C=DE constrains directoryName names "
        "(nameConstraints), which we cannot check"
    )
    assert output["sign_only_ecdhe"] == "OK sign-only"
    assert output["sign_only_rsa"].startswith("ALERT 43 ") and "keyEncipherment" in output["sign_only_rsa"]
    assert output["enc_only_rsa"] == "OK enc-only"
    assert output["enc_only_ecdhe"].startswith("ALERT 43 ") and "digitalSignature" in output["enc_only_ecdhe"]
    assert output["cn_only"].startswith("ALERT 46 ")
    assert output["cn_allowed"] == "OK localhost"


def test_mutated_certificates_raise_only_tlserror(output):
    parsed, crashes = output["fuzz"].split()[1::2]
    assert crashes == "0"
    assert int(parsed) > 0


def test_board_helpers(output):
    assert output["ip"] == "True None"
    assert output["wild"] == "True False"
    assert output["time"] == "1969-12-31 23:59:59 UTC 2100-01-01 00:00:00 UTC"


def test_rsa_encrypt_on_micropython_decrypts_in_cpython(output, chain_dir):
    leaf_key = chain_dir[2]
    c = bytes.fromhex(output["rsa_encrypt"])
    assert len(c) == 256
    assert leaf_key.decrypt(c, padding.PKCS1v15()) == b"\x03\x03" + b"\x5a" * 46
