"""Client authentication with an ECDSA P-256 certificate (RSA CA, EC leaf): the client
signs CertificateVerify with ecdsa_secp256r1_sha256, the server asks for it
(ecdsa_sign, 0x0403) and checks it through the backend; the board's signer (p256 via
boardapp.key_ec.ECBoardKey) against the same server."""

from __future__ import annotations

from pathlib import Path

import pytest
from boardapp import key_ec as boardkey_ec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import utils

from hsmtls.backend import BACKEND, CPythonBackend
from tlscore import constants as C
from tlscore import suites, x509
from tlscore.client import ClientConnection
from tlscore.events import KeyOperationRequest
from tlscore.messages import CertificateRequest, CertificateVerify
from tlscore.server import ServerConnection

from support.engine_pair import Pair

SUITES = [s.name for s in suites.ALL]


def alert_sent(pair: Pair, side: str) -> int | None:
    ev = pair.closed(side)
    assert ev is not None and ev.local, f"{side} did not fail: {pair.cev if side == 'c' else pair.sev}"
    return ev.alert


class BoardSigner:
    """The board's ECDSA key (firmware/lib/boardapp/key_ec.py) answering the engine's requests."""

    performer = "board"
    description = "ECBoardKey"

    def __init__(self, pem: Path) -> None:
        k = serialization.load_pem_private_key(pem.read_bytes(), None)
        n = k.private_numbers()  # type: ignore[union-attr]
        self.key = boardkey_ec.ECBoardKey(n.private_value, n.public_numbers.x, n.public_numbers.y)

    def sign(self, scheme: str, hash_name: str, data: bytes) -> bytes:
        assert self.key.can_sign(scheme)
        return self.key.sign(BACKEND, hash_name, data)

    def decrypt_premaster(self, ciphertext: bytes) -> None:
        raise AssertionError("not a server key")


class RSAOnlyBackend(CPythonBackend):
    ecdsa_groups = ()


@pytest.mark.parametrize("suite", SUITES)
def test_ecdsa_client_certificate(make_configs, client_ec_key, server_key, epki, suite):
    cc, sc = make_configs(suite, "require", epki.client_ec_cert)
    p = Pair(cc, sc, client_ec_key, server_key)
    p.handshake()
    (c_done,), (s_done,) = p.completed("c"), p.completed("s")
    assert c_done.cipher_suite == s_done.cipher_suite == suite
    assert s_done.peer_subject == "CN=hsmtls demo client (ECDSA), O=hsmtls"
    assert isinstance(s_done.peer_certificate.public_key, x509.ECPublicKey)
    (req,) = p.of(KeyOperationRequest, "c")
    assert (req.kind, req.scheme, req.hash_name) == ("sign", "ecdsa_secp256r1_sha256", "sha256")
    # renegotiation signs again, with a fresh nonce
    p.c.renegotiate()
    p.run()
    assert len(p.completed("s")) == 2
    assert len(p.of(KeyOperationRequest, "c")) == 2


def test_certificate_request_offers_ecdsa(make_configs, server_key, epki):
    cc, sc = make_configs(None, "require", epki.client_ec_cert)
    p = Pair(cc, sc, None, server_key)
    p.start()
    p.c2s()
    p.s2c()
    req = p.c.certificate_request
    assert req.certificate_types == [C.RSA_SIGN, C.ECDSA_SIGN]
    assert C.ECDSA_SECP256R1_SHA256 in req.supported_signature_algorithms
    # a server whose backend cannot check ECDSA does not ask for it
    s = ServerConnection(sc, RSAOnlyBackend())
    assert s._signature_schemes() == [
        C.RSA_PSS_RSAE_SHA256, C.RSA_PKCS1_SHA256, C.RSA_PSS_RSAE_SHA384, C.RSA_PKCS1_SHA384,
        C.RSA_PSS_RSAE_SHA512, C.RSA_PKCS1_SHA512,
    ]


def test_board_signer_against_the_engine(make_configs, server_key, epki):
    # p256 (our code, as on the board) signs; the server verifies with `cryptography`
    signer = BoardSigner(epki.client_ec_key)
    for suite in ("TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"):
        cc, sc = make_configs(suite, "require", epki.client_ec_cert)
        p = Pair(cc, sc, signer, server_key)  # type: ignore[arg-type]
        p.handshake()
        assert p.completed("s") and p.completed("c")
        p.c.renegotiate()
        p.run()
        assert len(p.completed("s")) == 2


# a wrong ECDSA CertificateVerify signature: test_engine.test_bad_certificate_verify_signature[ecdsa]


@pytest.mark.parametrize("mangle", ["ber_length", "trailing", "raw_r_s"])
def test_non_der_ecdsa_signature_refused(make_configs, client_ec_key, server_key, epki, mangle):
    class Mangler(ClientConnection):
        def _on_certificate_verify_signed(self, op, signature):
            sig = bytes(signature)
            if mangle == "ber_length":  # long-form length where the short one fits
                sig = b"\x30\x81" + sig[1:]
            elif mangle == "trailing":
                sig = sig + b"\x00"
            else:  # IEEE P1363 r || s instead of DER
                r, s = utils.decode_dss_signature(sig)
                sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
            ClientConnection._on_certificate_verify_signed(self, op, sig)

    cc, sc = make_configs(None, "require", epki.client_ec_cert)
    p = Pair(cc, sc, client_ec_key, server_key, client_cls=Mangler)
    p.handshake()
    assert alert_sent(p, "s") == C.DECRYPT_ERROR


def test_algorithm_must_match_the_key(make_configs, client_key, client_ec_key, server_key, epki):
    # an RSA certificate with an ECDSA CertificateVerify, and the reverse
    class Liar(ClientConnection):
        def _on_certificate_verify_signed(self, op, signature):
            other = C.RSA_PKCS1_SHA256 if self._cv_scheme == C.ECDSA_SECP256R1_SHA256 else C.ECDSA_SECP256R1_SHA256
            self._send_handshake(CertificateVerify(other, bytes(signature)))
            self._send_client_finished()

    for cert, key in ((epki.client_cert, client_key), (epki.client_ec_cert, client_ec_key)):
        cc, sc = make_configs(None, "require", cert)
        p = Pair(cc, sc, key, server_key, client_cls=Liar)
        p.handshake()
        assert alert_sent(p, "s") == C.ILLEGAL_PARAMETER
        assert "does not match" in p.closed("s").reason


def test_ecdsa_client_and_a_server_without_ecdsa(make_configs, client_ec_key, server_key, epki):
    # the server does not list ecdsa_sign: the client says why instead of signing
    cc, sc = make_configs(None, "require", epki.client_ec_cert)
    p = Pair(cc, sc, client_ec_key, server_key)
    p.s = ServerConnection(sc, RSAOnlyBackend())
    p.handshake()
    assert alert_sent(p, "c") == C.HANDSHAKE_FAILURE
    assert "ECDSA" in p.closed("c").reason
    assert not p.of(KeyOperationRequest, "c")


def test_server_without_ecdsa_refuses_an_ec_certificate(make_configs, client_ec_key, server_key, epki):
    # a client that sends its EC certificate anyway gets unsupported_certificate
    class Pushy(ClientConnection):
        def _on_certificate_request(self, msg):
            ClientConnection._on_certificate_request(
                self, CertificateRequest(msg.certificate_types + [C.ECDSA_SIGN],
                                         msg.supported_signature_algorithms + [C.ECDSA_SECP256R1_SHA256],
                                         msg.certificate_authorities))

    cc, sc = make_configs(None, "require", epki.client_ec_cert)
    p = Pair(cc, sc, client_ec_key, server_key, client_cls=Pushy)
    p.s = ServerConnection(sc, RSAOnlyBackend())
    p.handshake()
    assert alert_sent(p, "s") == C.UNSUPPORTED_CERTIFICATE


def test_ecdsa_client_signs_the_running_hash(make_configs, client_ec_key, server_key, epki):
    # TLSConfig.sign_digest, as the board signs: the digest, no transcript kept
    cc, sc = make_configs(None, "require", epki.client_ec_cert)
    cc.sign_digest = True
    p = Pair(cc, sc, client_ec_key, server_key)
    p.start()
    p.c2s()
    p.s2c()
    assert p.c.transcript.data is None  # from ServerHello on: running hashes only
    p.run()
    assert p.completed("s")
    (req,) = p.of(KeyOperationRequest, "c")
    assert (req.kind, req.scheme, len(req.data)) == ("sign_digest", "ecdsa_secp256r1_sha256", 32)
