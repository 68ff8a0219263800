"""tlscore.pathvalidation: every verify_chain outcome, and the SignatureCache it uses."""

import pytest
from cryptography.hazmat.primitives import serialization

from hsmtls.backend import BACKEND
from tlscore import constants as C
from tlscore import pathvalidation as PV
from tlscore import x509 as X
from tlscore.errors import TLSError

from support import x509_fixtures
from support.x509_fixtures import (
    DAY,
    DT_NOW,
    D,
    P,
    der,
    fails,
    verify,
)

keys = x509_fixtures.keys
pki = x509_fixtures.pki

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
    real = PV.pkcs1_verify
    monkeypatch.setattr(PV, "pkcs1_verify", lambda *a: calls.append(a) or real(*a))
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
    real = PV.pkcs1_verify
    monkeypatch.setattr(PV, "pkcs1_verify", lambda *a: calls.append(a) or real(*a))
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


