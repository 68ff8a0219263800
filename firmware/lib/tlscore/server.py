# The server side of the TLS 1.2 RSA handshake, in the classic description's steps:
#  1  ClientHello from the client (or a renegotiation ClientHello, step 11)
#  2  ServerHello, Certificate, [CertificateRequest], ServerHelloDone
#  5/6 [client Certificate + CertificateVerify]: authenticate the client
#  4/6 ClientKeyExchange: the premaster is decrypted by the server's key, wherever it
#     lives (a KeyOperationRequest), with the RFC 5246 §7.4.7.1 countermeasure
#  7  master secret and session keys; 8 the client's ChangeCipherSpec + Finished;
#  9  ours; 10 application data; 11 HelloRequest / renegotiation.
# Only the table below says which message may come next.

from . import pkcs1, suites
from .connection import CCS, CONNECTED, Connection
from .constants import (
    CERTIFICATE,
    CERTIFICATE_VERIFY,
    CLIENT_HELLO,
    CLIENT_KEY_EXCHANGE,
    DECRYPT_ERROR,
    EXT_ENCRYPT_THEN_MAC,
    EXT_EXTENDED_MASTER_SECRET,
    EXT_RENEGOTIATION_INFO,
    EXT_SERVER_NAME,
    EXT_SIGNATURE_ALGORITHMS,
    FINISHED,
    HANDSHAKE_FAILURE,
    ILLEGAL_PARAMETER,
    NO_RENEGOTIATION,
    PROTOCOL_VERSION,
    RSA_PKCS1_SHA256,
    RSA_PKCS1_SHA384,
    RSA_PKCS1_SHA512,
    RSA_SIGN,
    SIGNATURE_SCHEMES,
    TLS1_2,
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
    UNSUPPORTED_CERTIFICATE,
    WARNING,
)
from .errors import TLSError
from .events import RenegotiationRequested
from .keyschedule import ct_equal, ct_select
from .messages import (
    Certificate,
    CertificateRequest,
    HelloRequest,
    ServerHello,
    ServerHelloDone,
    parse_renegotiation_info,
    parse_server_name,
    parse_signature_algorithms,
    renegotiation_info_extension,
)

# What we accept in a client's CertificateVerify, best first.
SERVER_SIGNATURE_SCHEMES = (RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512)

WAIT_CLIENT_HELLO = "WAIT_CLIENT_HELLO"
WAIT_CLIENT_CERTIFICATE = "WAIT_CLIENT_CERTIFICATE"
WAIT_CLIENT_KEY_EXCHANGE = "WAIT_CLIENT_KEY_EXCHANGE"
WAIT_CERTIFICATE_VERIFY = "WAIT_CERTIFICATE_VERIFY"
WAIT_CHANGE_CIPHER_SPEC = "WAIT_CHANGE_CIPHER_SPEC"
WAIT_FINISHED = "WAIT_FINISHED"

TRANSITIONS = {
    WAIT_CLIENT_HELLO: {
        CLIENT_HELLO: ("_on_client_hello", WAIT_CLIENT_KEY_EXCHANGE),
    },
    WAIT_CLIENT_CERTIFICATE: {
        CERTIFICATE: ("_on_client_certificate", WAIT_CLIENT_KEY_EXCHANGE),
    },
    WAIT_CLIENT_KEY_EXCHANGE: {
        CLIENT_KEY_EXCHANGE: ("_on_client_key_exchange", WAIT_CHANGE_CIPHER_SPEC),
    },
    WAIT_CERTIFICATE_VERIFY: {
        CERTIFICATE_VERIFY: ("_on_certificate_verify", WAIT_CHANGE_CIPHER_SPEC),
    },
    WAIT_CHANGE_CIPHER_SPEC: {
        CCS: ("_on_change_cipher_spec", WAIT_FINISHED),
    },
    WAIT_FINISHED: {
        FINISHED: ("_on_client_finished", CONNECTED),
    },
    CONNECTED: {
        CLIENT_HELLO: ("_on_client_hello", WAIT_CLIENT_KEY_EXCHANGE),
    },
}


def _eq_mask(x, y):
    # 1 if the small non-negative ints x == y else 0, without a comparison branch
    return ((((x ^ y) - 1) >> 32) & 1)


def premaster_from_decryption(result, client_version, substitute):
    # RFC 5246 §7.4.7.1: whatever the decryption gave (wrong padding, wrong length,
    # wrong version, or an error reported as None) the handshake continues with a
    # premaster; only a Finished mismatch later reveals it, as for any wrong key.
    m = bytes(result) if result is not None else b""
    good = _eq_mask(len(m), 48)
    m48 = (m + bytes(48))[:48]
    good &= _eq_mask(m48[0], client_version >> 8) & _eq_mask(m48[1], client_version & 0xFF)
    fallback = bytes([client_version >> 8, client_version & 0xFF]) + substitute[:46]
    return ct_select(good, m48, fallback)


class ServerConnection(Connection):
    is_client = False
    INITIAL_STATE = WAIT_CLIENT_HELLO
    TRANSITIONS = TRANSITIONS

    def renegotiate(self):
        # Step 11, server side: ask the client for a new handshake (HelloRequest).
        if self.state != CONNECTED:
            raise ValueError("can renegotiate only on an established, idle connection")
        if not self.secure_renegotiation:
            raise ValueError("the client did not negotiate secure renegotiation (RFC 5746)")
        self.renegotiating = True
        self._run(self._send_handshake, HelloRequest())

    def _on_no_renegotiation(self):
        if self.renegotiating and self.state == CONNECTED:
            self.renegotiating = False  # the client declined our HelloRequest
        else:
            Connection._on_no_renegotiation(self)

    def _signature_schemes(self):
        names = self.backend.hash_names
        return [s for s in SERVER_SIGNATURE_SCHEMES if SIGNATURE_SCHEMES[s][1] in names]

    # --- steps 1 and 2 ----------------------------------------------------------------

    def _on_client_hello(self, msg):
        renegotiation = self.established
        ri = msg.extension(EXT_RENEGOTIATION_INFO)
        scsv = TLS_EMPTY_RENEGOTIATION_INFO_SCSV in msg.cipher_suites
        if renegotiation:
            if not (self.secure_renegotiation and self.config.allow_renegotiation):
                self.events.append(RenegotiationRequested(True, False))
                self.transcript = bytearray()
                self._send_alert(WARNING, NO_RENEGOTIATION)
                return CONNECTED
            if scsv or ri is None or not ct_equal(parse_renegotiation_info(ri), self.client_verify_data):
                raise TLSError(HANDSHAKE_FAILURE, "renegotiation ClientHello without the right renegotiation_info")
            if not self.renegotiating:  # else it answers our HelloRequest
                self.events.append(RenegotiationRequested(True, True))
            self.renegotiating = True
        if (msg.client_version >> 8) != 3 or msg.client_version < TLS1_2:
            raise TLSError(
                PROTOCOL_VERSION,
                "client offers version 0x%04x; this server speaks TLS 1.2 (0x0303) only" % msg.client_version,
            )
        if not renegotiation:
            if ri is not None:
                if len(parse_renegotiation_info(ri)):
                    raise TLSError(HANDSHAKE_FAILURE, "non-empty renegotiation_info in the initial handshake")
            self.secure_renegotiation = ri is not None or scsv
        if 0 not in msg.compression_methods:
            raise TLSError(ILLEGAL_PARAMETER, "client does not offer null compression")
        self._reset_handshake()
        self.client_version = msg.client_version
        self.client_random = msg.random
        cfg = self.config
        suite = None
        for s in suites.supported_by(self.backend, cfg.cipher_suites):
            if s.code in msg.cipher_suites:
                suite = s
                break
        if suite is None:
            raise TLSError(HANDSHAKE_FAILURE, "no cipher suite in common with the client")
        self.suite = suite
        sig = msg.extension(EXT_SIGNATURE_ALGORITHMS)
        if sig is not None:
            parse_signature_algorithms(sig)
        sni = msg.extension(EXT_SERVER_NAME)
        if sni is not None:
            self.server_name = parse_server_name(sni)
        self.use_ems = cfg.extended_master_secret and msg.has_extension(EXT_EXTENDED_MASTER_SECRET)
        self.use_etm = cfg.encrypt_then_mac and suite.cipher == "CBC" and msg.has_extension(EXT_ENCRYPT_THEN_MAC)
        ext = []
        if self.secure_renegotiation:
            ext.append(renegotiation_info_extension(self.client_verify_data + self.server_verify_data))
        if self.use_ems:
            ext.append((EXT_EXTENDED_MASTER_SECRET, b""))
        if self.use_etm:
            ext.append((EXT_ENCRYPT_THEN_MAC, b""))
        self.server_random = self.backend.random(32)
        self._send_handshake(ServerHello(TLS1_2, self.server_random, b"", suite.code, 0, ext))
        self._send_handshake(Certificate(cfg.certificate_chain))
        if cfg.client_auth != "none":
            self.client_cert_requested = True
            names = [a.subject for a in cfg.trust_anchors]
            self._send_handshake(CertificateRequest([RSA_SIGN], self._signature_schemes(), names))
        self._send_handshake(ServerHelloDone())
        self._flush_handshake()
        if self.client_cert_requested:
            return WAIT_CLIENT_CERTIFICATE
        return WAIT_CLIENT_KEY_EXCHANGE

    # --- steps 5/6: the client's certificate ------------------------------------------

    def _on_client_certificate(self, msg):
        if not msg.certificate_list:
            if self.config.client_auth == "require":
                raise TLSError(HANDSHAKE_FAILURE, "client sent no certificate but one is required")
            return None
        leaf = self._verify_chain(msg.certificate_list, "client", None)
        if leaf.public_key is None:
            raise TLSError(UNSUPPORTED_CERTIFICATE, "client certificate key is not RSA")
        self.peer_certificate = leaf

    # --- steps 4/6: the premaster -------------------------------------------------------

    def _on_client_key_exchange(self, msg):
        self._ems_transcript = bytes(self.transcript)
        self._request_key_operation("decrypt", msg.encrypted_pre_master_secret, self._on_premaster_decrypted)
        if self.peer_certificate is not None:
            return WAIT_CERTIFICATE_VERIFY
        return None

    def _on_premaster_decrypted(self, op, result):
        # result: the decrypted message, or (message, substitute) from a key that
        # derives its substitute deterministically from the ciphertext (implicit
        # rejection in a token); otherwise the substitute is random.
        if isinstance(result, tuple):
            result, substitute = result
        else:
            substitute = self.backend.random(46)
        pre_master_secret = premaster_from_decryption(result, self.client_version, substitute)
        self._derive_master_secret(pre_master_secret, self._ems_transcript)
        self._ems_transcript = None

    def _on_certificate_verify(self, msg):
        if msg.algorithm not in self._signature_schemes():
            raise TLSError(ILLEGAL_PARAMETER, "CertificateVerify uses a signature algorithm we did not offer")
        hash_name = SIGNATURE_SCHEMES[msg.algorithm][1]
        key = self.peer_certificate.public_key
        signed = self.transcript[: self.transcript_before]
        if not pkcs1.verify(self.backend, key.n, key.e, hash_name, bytes(signed), msg.signature):
            raise TLSError(DECRYPT_ERROR, "client CertificateVerify signature does not verify")

    # --- steps 8 and 9 ------------------------------------------------------------------

    def _on_client_finished(self, msg):
        self._check_peer_finished(msg)
        self._send_change_cipher_spec()
        self._send_finished()
        self._handshake_complete()
