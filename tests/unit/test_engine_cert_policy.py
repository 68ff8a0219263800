"""The client's certificate policy through the engine: the server leaf's keyUsage follows
the suite's key exchange, a verifying client needs a server name, and the CN names the
host only with allow_cn."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from hsmtls import devpki
from hsmtls.backend import BACKEND
from hsmtls.tlsconfig import ConfigError, client_config
from tlscore import constants as C
from tlscore.client import ClientConnection
from tlscore.config import TLSConfig

from support.engine_pair import Pair

RSA_KX = "TLS_RSA_WITH_AES_128_GCM_SHA256"
ECDHE = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"


@pytest.fixture(scope="module")
def certs(epki, tmp_path_factory):
    ca = x509.load_pem_x509_certificate(epki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(epki.ca_key.read_bytes(), None)
    pub = serialization.load_pem_private_key(epki.server_key.read_bytes(), None).public_key()
    d = tmp_path_factory.mktemp("cert-policy")

    def leaf(file, ku, san=True):
        c = devpki.issue(ca, ca_key, pub, "localhost", "server", dns=("localhost",) if san else ())
        b = (x509.CertificateBuilder().subject_name(c.subject).issuer_name(c.issuer).public_key(pub)
             .serial_number(x509.random_serial_number())
             .not_valid_before(c.not_valid_before_utc).not_valid_after(c.not_valid_after_utc))
        for ext in c.extensions:
            if not isinstance(ext.value, x509.KeyUsage):
                b = b.add_extension(ext.value, ext.critical)
        if ku:
            fields = dict.fromkeys(("content_commitment", "data_encipherment", "key_agreement",
                                    "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
                                    "digital_signature", "key_encipherment"), False)
            fields.update({k: True for k in ku})
            b = b.add_extension(x509.KeyUsage(**fields), critical=True)
        return devpki.write_cert(d / file, b.sign(ca_key, hashes.SHA256()))

    class Certs:
        sign_only = leaf("sign_only.pem", ["digital_signature"])
        enc_only = leaf("enc_only.pem", ["key_encipherment"])
        no_san = leaf("no_san.pem", ["digital_signature", "key_encipherment"], san=False)

    return Certs


def _run(make_configs, server_key, cert, suite, allow_cn=False):
    cc, sc = make_configs(suite, server_cert=cert)
    cc.allow_cn = allow_cn
    p = Pair(cc, sc, None, server_key)
    p.handshake()
    return p


@pytest.mark.parametrize("suite, cert, ok, needs", [
    (ECDHE, "sign_only", True, None),
    (ECDHE, "enc_only", False, "digitalSignature"),
    (RSA_KX, "enc_only", True, None),
    (RSA_KX, "sign_only", False, "keyEncipherment"),
])
def test_server_key_usage_follows_the_key_exchange(make_configs, server_key, certs, suite, cert, ok, needs):
    p = _run(make_configs, server_key, getattr(certs, cert), suite)
    if ok:
        assert p.completed("c") and p.completed("s")
    else:
        ev = p.closed("c")
        assert ev is not None and ev.local and ev.alert == C.UNSUPPORTED_CERTIFICATE, ev
        assert "does not allow %s (keyUsage)" % needs in ev.reason
        assert not p.completed("s")


def test_cn_names_the_host_only_with_allow_cn(make_configs, server_key, certs):
    p = _run(make_configs, server_key, certs.no_san, RSA_KX)
    ev = p.closed("c")
    assert ev.alert == C.CERTIFICATE_UNKNOWN and "does not match host 'localhost'" in ev.reason
    p = _run(make_configs, server_key, certs.no_san, RSA_KX, allow_cn=True)
    assert p.completed("c")


def test_verifying_client_needs_a_server_name(epki):
    anchors = client_config(str(epki.ca_cert), "localhost").trust_anchors
    with pytest.raises(ValueError, match="no server_name"):
        ClientConnection(TLSConfig(trust_anchors=anchors), BACKEND)
    with pytest.raises(ValueError, match="no server_name"):
        ClientConnection(TLSConfig(trust_anchors=anchors, server_name=""), BACKEND)
    ClientConnection(TLSConfig(verify_peer=False), BACKEND)  # not verifying: no name needed
    with pytest.raises(ConfigError, match="needs its name"):
        client_config(str(epki.ca_cert), None)


def test_missing_server_name_at_certificate_time_is_an_error(make_configs, server_key):
    # the config is the caller's object: emptied after the connection was made, the
    # name check is still not skipped
    cc, sc = make_configs(RSA_KX)
    p = Pair(cc, sc, None, server_key)
    cc.server_name = None
    p.handshake()
    ev = p.closed("c")
    assert ev.alert == C.INTERNAL_ERROR and "no server_name" in ev.reason
