"""tlscore.hostname: RFC 6125 host-name matching and IP literals."""

import ipaddress

import pytest
from cryptography import x509

from tlscore import hostname as H
from tlscore import x509 as X

from support.x509_fixtures import (
    name,
)

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
    assert H.match_hostname(fake(san_dns=[pattern]), host) is ok


def test_ip_and_cn_rules():
    v4 = bytes([127, 0, 0, 1])
    v6 = ipaddress.ip_address("2001:db8::1").packed
    c = fake(san_dns=["127.0.0.1"], san_ip=[v4, v6], cn="127.0.0.1")
    assert H.match_hostname(c, "127.0.0.1")
    assert H.match_hostname(c, "2001:db8::1")
    assert H.match_hostname(c, "2001:DB8:0:0:0:0:0:1")
    assert H.match_hostname(c, "[2001:db8::1]")
    assert not H.match_hostname(c, "127.0.0.2")
    assert not H.match_hostname(c, "::1")
    # an IP literal never matches a dNSName or the CN
    assert not H.match_hostname(fake(san_dns=["127.0.0.1"], cn="127.0.0.1"), "127.0.0.1")
    assert not H.match_hostname(fake(cn="10.0.0.1", has_san=False), "10.0.0.1")
    # the CN counts only when asked for, and only when there is no subjectAltName at all
    assert not H.match_hostname(fake(cn="board.local", has_san=False), "board.local")
    assert H.match_hostname(fake(cn="board.local", has_san=False), "board.local", allow_cn=True)
    assert not H.match_hostname(fake(san_dns=["x.local"], cn="board.local"), "board.local", True)
    assert not H.match_hostname(fake(san_ip=[v4], cn="board.local"), "board.local", True)
    assert not H.match_hostname(fake(cn="board.local"), "", True)


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
        assert H.parse_ip(text) == ipaddress.ip_address(text).packed
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
        assert H.parse_ip(text) is None, text


