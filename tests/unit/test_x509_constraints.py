"""tlscore.pathvalidation's policy beyond the chain itself: nameConstraints
(tlscore.nameconstraints), keyUsage by key exchange, and the CN as a host name only when
asked for. Certificates come from x509_fixtures' builder."""

import ipaddress
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from tlscore import constants as C
from tlscore import nameconstraints as NC

from support.x509_fixtures import (
    CA_KU,
    D,
    P,
    build,
    dns,
    fails,
    ips,
    key_usage,
    name,
    verify,
)


def nc(permitted=None, excluded=None):
    return x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=excluded)


def net(text):
    return x509.IPAddress(ipaddress.ip_network(text))


@pytest.fixture(scope="module")
def mk():
    # mk.ca(constraints, critical) -> a root with them; mk.leaf(root, san=..., **kw)
    keys = SimpleNamespace(**{k: rsa.generate_private_key(65537, 2048) for k in ("ca", "inter", "leaf")})

    def ca(constraints=None, critical=False, cn="Constrained Root"):
        extra = [(constraints, critical)] if constraints is not None else []
        return build(name(cn), name(cn), keys.ca, keys.ca.public_key(), ca=True, ku=CA_KU, extra=extra)

    def inter(root, constraints=None, critical=False):
        extra = [(constraints, critical)] if constraints is not None else []
        return build(name("Constrained Inter"), root.subject, keys.ca, keys.inter.public_key(),
                     ca=True, ku=CA_KU, extra=extra)

    def leaf(issuer, san=(), cn="leaf", ku=None, issuer_key=None, **kw):
        san = dns("localhost") if san == () else san
        return build(name(cn), issuer.subject, issuer_key or keys.ca, keys.leaf.public_key(), ca=False,
                     ku=ku or key_usage("digital_signature", "key_encipherment"),
                     eku=[ExtendedKeyUsageOID.SERVER_AUTH], san=san, **kw)

    return SimpleNamespace(ca=ca, inter=inter, leaf=leaf, keys=keys)


# ---------------------------------------------------------------------------------------
# nameConstraints: enforced critical or not


@pytest.mark.parametrize("critical", [False, True])
def test_permitted_dns_subtree(mk, critical):
    root = mk.ca(nc(permitted=dns("example.com")), critical)
    verify([mk.leaf(root, dns("example.com"))], [root], hostname="example.com")
    verify([mk.leaf(root, dns("www.example.com", "a.b.example.com"))], [root])
    verify([mk.leaf(root, dns("*.example.com"))], [root], hostname="x.example.com")
    for outside in ("evil.org", "badexample.com", "example.com.evil.org"):
        reason = fails(C.BAD_CERTIFICATE, [mk.leaf(root, dns("www.example.com", outside))], [root])
        assert reason == (
            "name %s of certificate CN=leaf, O=hsmtls test is outside the names CA "
            "CN=Constrained Root, O=hsmtls test may certify (nameConstraints)" % outside
        )


def test_leading_dot_permits_only_names_below(mk):
    root = mk.ca(nc(permitted=dns(".example.com")))
    verify([mk.leaf(root, dns("a.example.com"))], [root])
    fails(C.BAD_CERTIFICATE, [mk.leaf(root, dns("example.com"))], [root])


def test_excluded_dns_subtree(mk):
    root = mk.ca(nc(excluded=dns("bad.example.com")))
    verify([mk.leaf(root, dns("good.example.com", "notbad.example.com"))], [root])
    for name_ in ("bad.example.com", "x.bad.example.com", "BAD.example.com"):
        reason = fails(C.BAD_CERTIFICATE, [mk.leaf(root, dns(name_))], [root])
        assert "is excluded by CA CN=Constrained Root" in reason
    # a wildcard that can stand for an excluded name is refused
    reason = fails(C.BAD_CERTIFICATE, [mk.leaf(root, dns("*.example.com"))], [root])
    assert reason.startswith("name *.example.com of certificate")
    verify([mk.leaf(root, dns("*.bad.example.org"))], [root])


def test_ip_subtrees(mk):
    root = mk.ca(nc(permitted=[net("10.0.0.0/8"), net("2001:db8::/32")], excluded=[net("10.9.0.0/16")]))
    verify([mk.leaf(root, ips("10.1.2.3", "2001:db8::7"))], [root], hostname="10.1.2.3")
    reason = fails(C.BAD_CERTIFICATE, [mk.leaf(root, ips("192.168.1.1"))], [root])
    assert reason.startswith("name 192.168.1.1 of certificate CN=leaf")
    fails(C.BAD_CERTIFICATE, [mk.leaf(root, ips("10.9.1.1"))], [root])
    reason = fails(C.BAD_CERTIFICATE, [mk.leaf(root, ips("2001:db9::1"))], [root])
    assert "name 2001:db9:0:0:0:0:0:1 " in reason
    # DNS names are not constrained by IP subtrees, nor IPs by DNS ones
    verify([mk.leaf(root, dns("anything.example"))], [root])
    v4_only = mk.ca(nc(permitted=[net("10.0.0.0/8")]))
    fails(C.BAD_CERTIFICATE, [mk.leaf(v4_only, ips("::1"))], [v4_only])  # another family: outside
    dns_only = mk.ca(nc(permitted=dns("example.com")))
    verify([mk.leaf(dns_only, ips("127.0.0.1"))], [dns_only])


def test_constraints_of_an_intermediate_bind_the_leaf(mk):
    root = mk.ca(cn="Plain Root")
    inter = mk.inter(root, nc(permitted=dns("example.com")))
    ok = mk.leaf(inter, dns("a.example.com"), issuer_key=mk.keys.inter)
    verify([ok, inter], [root])
    bad = mk.leaf(inter, dns("localhost"), issuer_key=mk.keys.inter)
    reason = fails(C.BAD_CERTIFICATE, [bad, inter], [root], hostname="localhost")
    assert "CA CN=Constrained Inter" in reason
    # and a root's bind the intermediate's own names too
    root2 = mk.ca(nc(permitted=dns("example.org")), cn="Root Two")
    inter2 = build(name("Inter Two"), root2.subject, mk.keys.ca, mk.keys.inter.public_key(),
                   ca=True, ku=CA_KU, san=dns("ca.example.com"))
    leaf2 = mk.leaf(inter2, dns("a.example.org"), issuer_key=mk.keys.inter)
    reason = fails(C.BAD_CERTIFICATE, [leaf2, inter2], [root2])
    assert reason.startswith("name ca.example.com of certificate CN=Inter Two")


@pytest.mark.parametrize("form, what", [
    (x509.DirectoryName(x509.Name([])), "directoryName"),
    (x509.RFC822Name("example.com"), "rfc822Name"),
    (x509.UniformResourceIdentifier("example.com"), "uniformResourceIdentifier"),
])
def test_unsupported_forms_are_refused(mk, form, what):
    root = mk.ca(nc(permitted=dns("example.com") + [form]))
    reason = fails(C.UNSUPPORTED_CERTIFICATE, [mk.leaf(root, dns("a.example.com"))], [root])
    assert reason == (
        "certificate CN=Constrained Root, O=hsmtls test constrains %s names (nameConstraints), "
        "which we cannot check" % what
    )


def test_malformed_name_constraints(mk):
    bad = x509.UnrecognizedExtension(ObjectIdentifier("2.5.29.30"), b"\x30\x03\x02\x01\x00")
    root = mk.ca(bad)
    reason = fails(C.BAD_CERTIFICATE, [mk.leaf(root)], [root])
    assert reason == "malformed certificate: bad NameConstraints"
    # an iPAddress subtree of 5 octets
    bad_ip = x509.UnrecognizedExtension(ObjectIdentifier("2.5.29.30"),
                                        bytes.fromhex("300ba009300787050a00000000"))
    root = mk.ca(bad_ip)
    reason = fails(C.BAD_CERTIFICATE, [mk.leaf(root)], [root])
    assert reason == "malformed certificate: bad iPAddress in nameConstraints"


def test_cn_is_constrained_when_it_is_used_as_a_name(mk):
    root = mk.ca(nc(permitted=dns("example.com")))
    leaf = mk.leaf(root, san=None, cn="evil.org")
    # unused as a name: nothing to constrain, and nothing matches either
    verify([leaf], [root])
    fails(C.CERTIFICATE_UNKNOWN, [leaf], [root], hostname="evil.org")
    reason = fails(C.BAD_CERTIFICATE, [leaf], [root], hostname="evil.org", allow_cn=True)
    assert reason.startswith("name evil.org of certificate CN=evil.org")
    good = mk.leaf(root, san=None, cn="www.example.com")
    verify([good], [root], hostname="www.example.com", allow_cn=True)


def test_within_rules():
    within = NC._dns_within
    assert within("a.example.com", "", False)
    assert within("example.com", "example.com", False)
    assert not within("xexample.com", "example.com", False)
    assert not within("*.example.com", "a.example.com", False)  # permitted: all it covers must be in
    assert within("*.example.com", "a.example.com", True)  # excluded: any it covers
    assert not within("*.example.com", "b.a.example.com", True)
    assert not within("*.example.com", ".a.example.com", True)
    assert NC._ip_within(bytes([10, 1, 2, 3]), bytes([10, 0, 0, 0]), bytes([255, 0, 0, 0]))
    assert not NC._ip_within(bytes(16), bytes(4), bytes(4))


def test_name_constraints_extension_is_known():
    assert 30 in __import__("tlscore.x509", fromlist=["x"]).CE_KNOWN


# ---------------------------------------------------------------------------------------
# keyUsage follows the key exchange


def test_key_usage_by_key_exchange(mk):
    root = mk.ca(cn="KU Root")
    sign_only = mk.leaf(root, ku=key_usage("digital_signature"))
    enc_only = mk.leaf(root, ku=key_usage("key_encipherment"))
    both = mk.leaf(root)
    # RSA key exchange: the key decrypts the premaster
    verify([enc_only], [root], key_exchange="RSA")
    verify([both], [root], key_exchange="RSA")
    reason = fails(C.UNSUPPORTED_CERTIFICATE, [sign_only], [root], key_exchange="RSA")
    assert reason == "certificate CN=leaf, O=hsmtls test does not allow keyEncipherment (keyUsage)"
    # ECDHE_RSA: the key signs ServerKeyExchange
    verify([sign_only], [root], key_exchange="ECDHE_RSA")
    verify([both], [root], key_exchange="ECDHE_RSA")
    reason = fails(C.UNSUPPORTED_CERTIFICATE, [enc_only], [root], key_exchange="ECDHE_RSA")
    assert reason == "certificate CN=leaf, O=hsmtls test does not allow digitalSignature (keyUsage)"
    # no keyUsage at all: any use
    verify([mk.leaf(root, ku=None)], [root], key_exchange="ECDHE_RSA")
    with pytest.raises(ValueError):
        verify([both], [root], key_exchange="DHE_RSA")


# ---------------------------------------------------------------------------------------
# The CN names a host only when asked for


def test_cn_only_with_allow_cn(mk):
    root = mk.ca(cn="CN Root")
    no_san = mk.leaf(root, san=None, cn="localhost")
    reason = fails(C.CERTIFICATE_UNKNOWN, [no_san], [root], hostname="localhost")
    assert reason == "certificate CN=localhost, O=hsmtls test does not match host 'localhost'"
    assert verify([no_san], [root], hostname="localhost", allow_cn=True).der == D(no_san)
    # with a subjectAltName the CN never counts
    with_san = mk.leaf(root, san=dns("other.example"), cn="localhost")
    fails(C.CERTIFICATE_UNKNOWN, [with_san], [root], hostname="localhost", allow_cn=True)
    assert P(no_san).common_name() == "localhost"
