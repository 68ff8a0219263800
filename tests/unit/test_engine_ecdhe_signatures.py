"""ECDHE_RSA complete (issue: RFC 8422, RFC 8446 §4.2.3 schemes in TLS 1.2): the CBC
suites, ec_point_formats without "uncompressed", and what the server takes in a
client's CertificateVerify: RSA-PSS yes, SHA-1 only when allowed, a scheme it did not
offer illegal_parameter, a wrong signature decrypt_error."""

from __future__ import annotations

import pytest

from tlscore import constants as C
from tlscore.client import ClientConnection
from tlscore.messages import ClientHello, frame

from support.engine_pair import Pair, record

ECDHE_CBC = [
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
]


@pytest.mark.parametrize("etm", [True, False], ids=["etm", "mac-then-encrypt"])
@pytest.mark.parametrize("suite", ECDHE_CBC)
def test_ecdhe_cbc_suites(make_configs, client_key, server_key, epki, suite, etm):
    cc, sc = make_configs(suite, "require", epki.client_cert)
    cc.encrypt_then_mac = etm
    p = Pair(cc, sc, client_key, server_key)
    p.handshake()
    (c_done,), (s_done,) = p.completed("c"), p.completed("s")
    assert c_done.cipher_suite == s_done.cipher_suite == suite and c_done.encrypt_then_mac == etm
    p.c.send_application_data(b"x" * 1000)
    p.s.send_application_data(b"y" * 300)
    p.run()
    p.c.renegotiate()
    p.run()
    assert len(p.completed("s")) == 2


def _hello(extensions) -> bytes:
    ch = ClientHello(0x0303, bytes(32), b"", [0xC02F, 0x009C], [0], extensions)
    return record(C.HANDSHAKE, frame(C.CLIENT_HELLO, ch.write()))


def _server_after(data: bytes, make_configs) -> Pair:
    cc, sc = make_configs()
    p = Pair(cc, sc)
    p._answer(p.s, None, p.s.receive_data(data), p.sev)
    return p


def test_point_formats_without_uncompressed_is_illegal_parameter(make_configs):
    groups = (C.EXT_SUPPORTED_GROUPS, bytes([0, 2, 0, 23]))
    p = _server_after(_hello([groups, (C.EXT_EC_POINT_FORMATS, bytes([1, 1]))]), make_configs)
    closed = p.closed("s")
    assert closed is not None and closed.alert == C.ILLEGAL_PARAMETER and "uncompressed" in closed.reason


def test_no_supported_groups_means_secp256r1(make_configs):
    # RFC 8422 §4: an ECDHE offer without supported_groups: the server picks secp256r1
    sig = (C.EXT_SIGNATURE_ALGORITHMS, bytes([0, 2, 4, 1]))
    p = _server_after(_hello([sig]), make_configs)
    assert p.closed("s") is None and p.s.suite.name == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert p.s._ecdhe == (C.SECP256R1, C.RSA_PKCS1_SHA256)


class _SchemeClient(ClientConnection):
    """A client that signs CertificateVerify with the scheme it is told, offered or not."""

    scheme = C.RSA_PSS_RSAE_SHA256
    corrupt = False

    def _choose_certificate_verify_scheme(self):
        return self.scheme

    def _on_certificate_verify_signed(self, op, signature):
        if self.corrupt:
            signature = bytes([signature[0] ^ 1]) + bytes(signature[1:])
        ClientConnection._on_certificate_verify_signed(self, op, signature)


def _with_scheme(make_configs, client_key, server_key, epki, scheme, corrupt=False, allow_sha1=False):
    cc, sc = make_configs("TLS_RSA_WITH_AES_128_GCM_SHA256", "require", epki.client_cert)
    sc.allow_sha1 = allow_sha1

    class Client(_SchemeClient):
        pass

    Client.scheme, Client.corrupt = scheme, corrupt
    p = Pair(cc, sc, client_key, server_key, client_cls=Client)
    p.handshake()
    return p


@pytest.mark.parametrize("scheme", [C.RSA_PSS_RSAE_SHA256, C.RSA_PSS_RSAE_SHA384, C.RSA_PSS_RSAE_SHA512])
def test_rsa_pss_certificate_verify_is_accepted(make_configs, client_key, server_key, epki, scheme):
    p = _with_scheme(make_configs, client_key, server_key, epki, scheme)
    assert len(p.completed("s")) == 1 and p.completed("s")[0].peer_subject is not None


@pytest.mark.parametrize("scheme", [C.RSA_PSS_RSAE_SHA256, C.RSA_PKCS1_SHA256])
def test_wrong_signature_is_decrypt_error(make_configs, client_key, server_key, epki, scheme):
    p = _with_scheme(make_configs, client_key, server_key, epki, scheme, corrupt=True)
    closed = p.closed("s")
    assert closed is not None and closed.alert == C.DECRYPT_ERROR and not p.completed("s")


def test_sha1_certificate_verify_refused_unless_allowed(make_configs, client_key, server_key, epki):
    p = _with_scheme(make_configs, client_key, server_key, epki, C.RSA_PKCS1_SHA1)
    closed = p.closed("s")
    assert closed is not None and closed.alert == C.ILLEGAL_PARAMETER and "did not offer" in closed.reason
    assert C.RSA_PKCS1_SHA1 not in p.c.certificate_request.supported_signature_algorithms
    p = _with_scheme(make_configs, client_key, server_key, epki, C.RSA_PKCS1_SHA1, allow_sha1=True)
    assert len(p.completed("s")) == 1
    assert C.RSA_PKCS1_SHA1 in p.c.certificate_request.supported_signature_algorithms
