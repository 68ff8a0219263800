"""Server names (RFC 6066 §3) against `hsmtls serve` with two certificates: OpenSSL's
s_client gets the certificate for the name it asks for, the default without a name,
unrecognized_name for a name nobody serves (or the default, --no-sni-strict); raw
ClientHellos with a name that is no DNS name, two host_names or a broken list get
illegal_parameter / decode_error; a session is not resumed under another name."""

from __future__ import annotations

import re
import struct

import pytest
from test_malformed_records import (
    DECODE_ERROR,
    DEFAULT_EXTENSIONS,
    client_hello,
    extension,
    record,
    send_and_expect_alert,
    vector,
)

from tlscore.constants import HANDSHAKE, ILLEGAL_PARAMETER

from support.openssl_tools import ONE_WORKER, alert_seen, hsmtls_connect, s_client

pytestmark = pytest.mark.interop

EXT_SERVER_NAME = 0


@pytest.fixture
def two_names(pki, hsmtls_server_pool):
    # localhost (the default) and wrong.example, both signed by the test CA
    srv = hsmtls_server_pool.get(
        pki.server_cert, pki.server_key,
        extra=[*ONE_WORKER, "--cert", str(pki.server_wrong_host_cert), "--key", str(pki.server_wrong_host_key)],
    )
    srv.pki = pki
    return srv


def _subject(output: str) -> str:
    m = re.search(r"^subject=(.*)$", output, re.M)
    assert m, output
    return m.group(1).replace(" ", "")


@pytest.mark.parametrize("name,subject", [("localhost", "CN=localhost"), ("wrong.example", "CN=wrong.example"),
                                          ("WRONG.example", "CN=wrong.example")])
def test_certificate_chosen_by_name(two_names, pki, name, subject):
    result = s_client(two_names.port, ca=pki.ca_cert, servername=name, script=[("send", "ping"), ("expect", "ping")])
    assert result.returncode == 0, result
    assert _subject(result.output) == subject, result


def test_no_name_gets_the_default(two_names, pki):
    result = s_client(two_names.port, ca=pki.ca_cert, servername=None, extra=["-noservername"],
                      script=[("send", "ping"), ("expect", "ping")])
    assert result.returncode == 0, result
    assert _subject(result.output) == "CN=localhost", result


def test_unknown_name_is_unrecognized_name(two_names, pki):
    result = s_client(two_names.port, ca=pki.ca_cert, servername="nobody.example", timeout=5)
    assert result.returncode != 0 and alert_seen(result.output, "unrecognized_name"), result


def test_not_strict_gives_the_default(pki, hsmtls_server, hsmtls_cmd):
    srv = hsmtls_server(pki.server_cert, pki.server_key,
                        extra=[*ONE_WORKER, "--sni", f"wrong.example={pki.server_wrong_host_cert},{pki.server_wrong_host_key}",
                               "--no-sni-strict"])
    got = hsmtls_connect(hsmtls_cmd, srv.port, ca=pki.ca_cert, servername="nobody.example", extra=["--insecure"])
    assert got.returncode == 0 and got.fields["peer"] == "CN=localhost", got
    got = hsmtls_connect(hsmtls_cmd, srv.port, ca=pki.ca_cert, servername="wrong.example")
    assert got.returncode == 0 and got.fields["peer"] == "CN=wrong.example", got


def _hello_with_names(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return record(HANDSHAKE, client_hello(extensions=DEFAULT_EXTENSIONS + extension(EXT_SERVER_NAME, vector(2, body))))


def _host(name: bytes) -> bytes:
    return b"\x00" + vector(2, name)


@pytest.mark.parametrize("name", [b"local\x00host", b"bad\x1bname", b"caf\xc3\xa9.example", b"a..b", b"trailing.",
                                  b"space name", b"x" * 64 + b".example", b"back\\slash"],
                         ids=["nul", "escape", "non-ascii", "empty-label", "trailing-dot", "space", "long-label",
                              "backslash"])
def test_a_host_name_that_is_no_dns_name_is_illegal_parameter(two_names, name):
    send_and_expect_alert(two_names, _hello_with_names(_host(name)), ILLEGAL_PARAMETER)


def test_two_host_names_are_illegal_parameter(two_names):
    send_and_expect_alert(two_names, _hello_with_names(_host(b"localhost"), _host(b"wrong.example")), ILLEGAL_PARAMETER)


@pytest.mark.parametrize("body", [b"\x00\x05\x00\x00\x09localhost", b"\x00", b"\x00\x00", b"\x00\x03\x00\x00\x00"],
                         ids=["length-lies", "truncated", "empty-list", "empty-name"])
def test_a_broken_server_name_list_is_decode_error(two_names, body):
    data = record(HANDSHAKE, client_hello(extensions=DEFAULT_EXTENSIONS + struct.pack("!H", EXT_SERVER_NAME)
                                          + vector(2, body)))
    send_and_expect_alert(two_names, data, DECODE_ERROR)


def test_resumption_under_another_name_is_a_full_handshake(two_names, pki, tmp_path):
    sess = tmp_path / "s.pem"
    first = s_client(two_names.port, ca=pki.ca_cert, servername="localhost", extra=["-sess_out", str(sess), "-no_ticket"],
                     script=[("send", "ping"), ("expect", "ping")])
    assert "New, TLSv1.2" in first.output, first
    same = s_client(two_names.port, ca=pki.ca_cert, servername="localhost", extra=["-sess_in", str(sess), "-no_ticket"],
                    script=[("send", "ping"), ("expect", "ping")])
    assert "Reused, TLSv1.2" in same.output, same
    other = s_client(two_names.port, ca=pki.ca_cert, servername="wrong.example",
                     extra=["-sess_in", str(sess), "-no_ticket"],
                     script=[("send", "ping"), ("expect", "ping")])
    assert other.returncode == 0 and "New, TLSv1.2" in other.output, other
    assert _subject(other.output) == "CN=wrong.example"
