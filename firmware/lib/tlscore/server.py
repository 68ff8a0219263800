# The server side of the TLS 1.2 RSA handshake, in the classic description's steps:
#  1  ClientHello from the client (or a renegotiation ClientHello, step 11)
#  2  ServerHello, Certificate, [CertificateRequest], ServerHelloDone
#  5/6 [client Certificate + CertificateVerify]: authenticate the client
#  4/6 ClientKeyExchange: the premaster is decrypted by the server's key, wherever it
#     lives (a KeyOperationRequest), with the RFC 5246 §7.4.7.1 countermeasure
#  7  master secret and session keys; 8 the client's ChangeCipherSpec + Finished;
#  9  ours; 10 application data; 11 HelloRequest / renegotiation.
# Only the table below says which message may come next.

from . import pkcs1, suites, x509
from .codec import Parser
from .connection import (
    CCS,
    CONNECTED,
    RENEGOTIATE,
    RENEGOTIATION_REFUSED,
    SESSION_ANSWERED,
    Connection,
)
from .constants import (
    CERTIFICATE,
    CERTIFICATE_VERIFY,
    CLIENT_HELLO,
    CLIENT_KEY_EXCHANGE,
    DECRYPT_ERROR,
    ECDSA_SECP256R1_SHA256,
    ECDSA_SIGN,
    EXT_EC_POINT_FORMATS,
    EXT_ENCRYPT_THEN_MAC,
    EXT_EXTENDED_MASTER_SECRET,
    EXT_MAX_FRAGMENT_LENGTH,
    EXT_RENEGOTIATION_INFO,
    EXT_SERVER_NAME,
    EXT_SESSION_TICKET,
    EXT_SIGNATURE_ALGORITHMS,
    EXT_SUPPORTED_GROUPS,
    EXT_SUPPORTED_VERSIONS,
    FINISHED,
    HANDSHAKE_FAILURE,
    ILLEGAL_PARAMETER,
    INTERNAL_ERROR,
    MAX_CLIENT_HELLO,
    NO_RENEGOTIATION,
    POINT_FORMAT_UNCOMPRESSED,
    PROTOCOL_VERSION,
    RSA_PKCS1_SHA1,
    RSA_PKCS1_SHA256,
    RSA_PKCS1_SHA384,
    RSA_PKCS1_SHA512,
    RSA_PSS_RSAE_SHA256,
    RSA_PSS_RSAE_SHA384,
    RSA_PSS_RSAE_SHA512,
    RSA_SIGN,
    SECP256R1,
    SIGNATURE_SCHEMES,
    TLS1_2,
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
    UNEXPECTED_MESSAGE,
    UNRECOGNIZED_NAME,
    UNSUPPORTED_CERTIFICATE,
    WARNING,
)
from .consttime import ct_eq, ct_equal, ct_select
from .errors import TLSError
from .events import DECRYPT, FIND_SESSION, OPEN_TICKET, SEAL_TICKET, SIGN, RenegotiationRequested
from .messages import (
    Certificate,
    CertificateRequest,
    HelloRequest,
    NewSessionTicket,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchange,
    ec_point_formats_extension,
    max_fragment_length_extension,
    one_vector,
    parse_ec_point_formats,
    parse_max_fragment_length,
    parse_renegotiation_info,
    parse_signature_algorithms,
    parse_supported_groups,
    parse_supported_versions,
    renegotiation_info_extension,
)
from .session import Session

# What we accept in a client's CertificateVerify, best first (ECDSA only with a backend
# that verifies it: see _signature_schemes). SHA-1 only with config.allow_sha1.
SERVER_SIGNATURE_SCHEMES = (
    RSA_PSS_RSAE_SHA256, RSA_PKCS1_SHA256, RSA_PSS_RSAE_SHA384, RSA_PKCS1_SHA384,
    RSA_PSS_RSAE_SHA512, RSA_PKCS1_SHA512, ECDSA_SECP256R1_SHA256,
)
# How we sign ServerKeyExchange (ECDHE_RSA), best first, if the client offers it.
SERVER_KEY_EXCHANGE_SCHEMES = (
    RSA_PSS_RSAE_SHA256, RSA_PKCS1_SHA256, RSA_PSS_RSAE_SHA384, RSA_PKCS1_SHA384,
    RSA_PSS_RSAE_SHA512, RSA_PKCS1_SHA512,
)

WAIT_CLIENT_HELLO = "WAIT_CLIENT_HELLO"
WAIT_SESSION = "WAIT_SESSION"  # a resumption offered: its session is being looked up
WAIT_CLIENT_CERTIFICATE = "WAIT_CLIENT_CERTIFICATE"
WAIT_CLIENT_KEY_EXCHANGE = "WAIT_CLIENT_KEY_EXCHANGE"
WAIT_CERTIFICATE_VERIFY = "WAIT_CERTIFICATE_VERIFY"
WAIT_CHANGE_CIPHER_SPEC = "WAIT_CHANGE_CIPHER_SPEC"
WAIT_FINISHED = "WAIT_FINISHED"

# state: {event: (handler, (next state, other next states the handler may pick))}
TRANSITIONS = {
    WAIT_CLIENT_HELLO: {
        # a full handshake, or a session to look up first
        CLIENT_HELLO: ("_on_client_hello", (WAIT_CLIENT_KEY_EXCHANGE, WAIT_CLIENT_CERTIFICATE, WAIT_SESSION)),
    },
    WAIT_SESSION: {
        # the caller opened the ticket or found the ID (or not): resume, or a full handshake
        SESSION_ANSWERED: (
            "_on_session_answered", (WAIT_CLIENT_KEY_EXCHANGE, WAIT_CLIENT_CERTIFICATE, WAIT_CHANGE_CIPHER_SPEC)
        ),
    },
    WAIT_CLIENT_CERTIFICATE: {
        CERTIFICATE: ("_on_client_certificate", (WAIT_CLIENT_KEY_EXCHANGE,)),
    },
    WAIT_CLIENT_KEY_EXCHANGE: {
        # with a client certificate, its CertificateVerify comes next
        CLIENT_KEY_EXCHANGE: ("_on_client_key_exchange", (WAIT_CHANGE_CIPHER_SPEC, WAIT_CERTIFICATE_VERIFY)),
    },
    WAIT_CERTIFICATE_VERIFY: {
        CERTIFICATE_VERIFY: ("_on_certificate_verify", (WAIT_CHANGE_CIPHER_SPEC,)),
    },
    WAIT_CHANGE_CIPHER_SPEC: {
        CCS: ("_on_change_cipher_spec", (WAIT_FINISHED,)),
    },
    WAIT_FINISHED: {
        FINISHED: ("_on_client_finished", (CONNECTED,)),
    },
    CONNECTED: {
        # a renegotiation: the client's own, or its answer to our HelloRequest; we
        # refuse it (no_renegotiation) where the configuration says so
        CLIENT_HELLO: ("_on_client_hello", (WAIT_CLIENT_KEY_EXCHANGE, WAIT_CLIENT_CERTIFICATE, CONNECTED)),
        RENEGOTIATE: ("_send_hello_request", (CONNECTED,)),
        # the client declined our HelloRequest
        RENEGOTIATION_REFUSED: ("_on_renegotiation_refused", (CONNECTED,)),
    },
}


def parse_server_name(data):
    # RFC 6066 §3: a ServerNameList holding at most one host_name, a DNS name in ASCII
    # (lower-cased here), no trailing dot; other name types are skipped
    sub = Parser(one_vector(data, 2, 1))
    host = None
    while sub.remaining():
        name_type = sub.get(1)
        name = sub.get_vector(2, 1)
        if name_type == 0:
            if host is not None:
                raise TLSError(ILLEGAL_PARAMETER, "server_name lists more than one host_name")
            host = _dns_name(name)
    return host


def _dns_name(raw):
    # letters, digits, '-', '_' and '.', labels of 1 to 63, 253 in all: anything else
    # (NUL, control characters, escapes, bytes over 0x7f, an empty label) is no host name
    if len(raw) > 253:
        raise TLSError(ILLEGAL_PARAMETER, "server_name host_name longer than 253 bytes")
    label = 0
    for b in raw:
        if b == 0x2E:
            if label == 0:
                raise TLSError(ILLEGAL_PARAMETER, "server_name host_name has an empty label")
            label = 0
        elif (0x61 <= b <= 0x7A) or (0x41 <= b <= 0x5A) or (0x30 <= b <= 0x39) or b == 0x2D or b == 0x5F:
            label += 1
            if label > 63:
                raise TLSError(ILLEGAL_PARAMETER, "server_name host_name has a label over 63 bytes")
        else:
            raise TLSError(ILLEGAL_PARAMETER, "server_name host_name is not a DNS name (byte 0x%02x)" % b)
    if label == 0:
        raise TLSError(ILLEGAL_PARAMETER, "server_name host_name ends in a dot")
    return bytes(raw).decode().lower()


def premaster_from_decryption(good, message, client_version, substitute):
    # RFC 5246 §7.4.7.1, the one place the premaster is chosen: whatever the decryption
    # gave (wrong padding: good == 0, wrong version, no decryption at all) the handshake
    # goes on with a premaster, and only a Finished mismatch later reveals it, as for
    # any wrong key. message: 48 bytes; substitute: 46 bytes (a key's answer, DECRYPT).
    if len(message) != 48 or len(substitute) < 46:  # the answer's shape is public
        raise TLSError(INTERNAL_ERROR, "the key's premaster answer is not (good, 48 bytes, 46 bytes)")
    good &= ct_eq(message[0], client_version >> 8) & ct_eq(message[1], client_version & 0xFF)
    fallback = bytes([client_version >> 8, client_version & 0xFF]) + substitute[:46]
    return ct_select(good, message, fallback)


class ServerConnection(Connection):
    is_client = False
    max_client_hello = MAX_CLIENT_HELLO
    INITIAL_STATE = WAIT_CLIENT_HELLO
    TRANSITIONS = TRANSITIONS
    client_auth = None  # renegotiate(client_auth=...): this connection's, over the config's

    def renegotiate(self, client_auth=None):
        # Step 11, server side: ask the client for a new handshake (HelloRequest).
        # client_auth: "optional"/"require" asks for a client certificate from this
        # handshake on (mod_ssl's per-location SSLVerifyClient), whatever the config says.
        if self.state != CONNECTED:
            raise ValueError("can renegotiate only on an established, idle connection")
        if not self.secure_renegotiation:
            raise ValueError("the client did not negotiate secure renegotiation (RFC 5746)")
        if client_auth is not None:
            self.client_auth = client_auth
        self.renegotiating = True
        self._run(self._dispatch, RENEGOTIATE)

    def _client_auth(self):
        return self.client_auth or self.config.client_auth

    def _send_hello_request(self, msg):
        self._send_handshake(HelloRequest())

    def _on_renegotiation_refused(self, msg):
        if not self.renegotiating:
            raise TLSError(UNEXPECTED_MESSAGE, "no_renegotiation alert without our HelloRequest")
        self.renegotiating = False

    def _reset_handshake(self):
        Connection._reset_handshake(self)
        self.client_version = None
        self._suites = ()  # what we and the client both have, our preference first
        self._client_ems = self._client_etm = self._client_point_formats = self._client_tickets = False
        self._mfl = None
        self._offered_session_id = b""
        self._found = None
        self._issue_ticket = False
        self._sni_used = False
        self._ecdhe = None  # (group, signature scheme) of ECDHE_RSA
        self._ecdh_private = None
        self._ske = None
        self._ems_hash = None

    def _ecdsa(self):
        # whether the backend checks ECDSA P-256 signatures (the board's does not)
        return SECP256R1 in getattr(self.backend, "ecdsa_groups", ())

    def _signature_schemes(self):
        names = self.backend.hash_names
        ecdsa = self._ecdsa()
        schemes = SERVER_SIGNATURE_SCHEMES + ((RSA_PKCS1_SHA1,) if self.config.allow_sha1 else ())
        return [
            s for s in schemes
            if SIGNATURE_SCHEMES[s][1] in names and (ecdsa or s != ECDSA_SECP256R1_SHA256)
        ]

    # --- steps 1 and 2 ----------------------------------------------------------------

    def _on_client_hello(self, msg):
        renegotiation = self.established
        ri = msg.extension(EXT_RENEGOTIATION_INFO)
        scsv = TLS_EMPTY_RENEGOTIATION_INFO_SCSV in msg.cipher_suites
        if renegotiation:
            if not self._may_renegotiate():
                self.events.append(RenegotiationRequested(True, False))
                self.transcript = self._new_transcript()
                self._send_alert(WARNING, NO_RENEGOTIATION)
                return CONNECTED
            if scsv or ri is None or not ct_equal(parse_renegotiation_info(ri), self.client_verify_data):
                raise TLSError(HANDSHAKE_FAILURE, "renegotiation ClientHello without the right renegotiation_info")
            if not self.renegotiating:  # else it answers our HelloRequest
                self.events.append(RenegotiationRequested(True, True))
            self.renegotiating = True
        self._check_version(msg)
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
        sig = msg.extension(EXT_SIGNATURE_ALGORITHMS)
        # RFC 5246 §7.4.1.4.1: no extension means the client does SHA-1 only
        client_schemes = parse_signature_algorithms(sig) if sig is not None else [RSA_PKCS1_SHA1]
        ecdhe = self._ecdhe_parameters(msg, client_schemes)
        self._suites = [s for s in suites.supported_by(self.backend, cfg.cipher_suites) if s.code in msg.cipher_suites]
        suite = None
        for s in self._suites:
            if s.key_exchange == "RSA" or ecdhe is not None:
                suite = s
                break
        if suite is None:
            raise TLSError(HANDSHAKE_FAILURE, "no cipher suite in common with the client")
        self.suite = suite
        self._ecdhe = ecdhe if suite.key_exchange == "ECDHE_RSA" else None
        sni = msg.extension(EXT_SERVER_NAME)
        if sni is not None:
            self.server_name = parse_server_name(sni)
        self._client_ems = msg.has_extension(EXT_EXTENDED_MASTER_SECRET)
        self._client_etm = msg.has_extension(EXT_ENCRYPT_THEN_MAC)
        self._client_point_formats = msg.has_extension(EXT_EC_POINT_FORMATS)
        mfl = msg.extension(EXT_MAX_FRAGMENT_LENGTH)
        if mfl is not None and cfg.accept_max_fragment_length:
            self._mfl = parse_max_fragment_length(mfl)
            if self._mfl is None:
                raise TLSError(ILLEGAL_PARAMETER, "max_fragment_length code not in RFC 6066")
            if self.max_fragment_length not in (None, self._mfl):
                raise TLSError(ILLEGAL_PARAMETER, "max_fragment_length changed in a renegotiation")
        # step 1 with a session to resume (RFC 5246 §7.3, RFC 5077 §3.1): the caller
        # opens a ticket or looks the ID up, with keys the engine never sees; none in a
        # renegotiation
        ticket = msg.extension(EXT_SESSION_TICKET)
        self._client_tickets = ticket is not None and cfg.session_tickets
        self._offered_session_id = bytes(msg.session_id)
        if not renegotiation:
            if self._client_tickets and len(ticket):
                self._request_key_operation(OPEN_TICKET, bytes(ticket), self._on_session_answer)
                return WAIT_SESSION
            if cfg.session_cache and len(msg.session_id):
                self._request_key_operation(FIND_SESSION, self._offered_session_id, self._on_session_answer)
                return WAIT_SESSION
        return self._full_handshake()

    def _on_session_answer(self, op, answer):
        self._found = Session.from_bytes(answer, self._offered_session_id) if answer else None
        self._dispatch(SESSION_ANSWERED)

    def _on_session_answered(self, msg):
        s = self._found
        self._found = None
        if s is not None and s.extended_master_secret and not self._client_ems:
            # RFC 7627 §5.3: an EMS session resumed by a hello without it
            raise TLSError(HANDSHAKE_FAILURE, "resumption of an extended_master_secret session without it")
        suite = self._resumable_suite(s)
        if suite is None:
            return self._full_handshake()
        # the abbreviated handshake (RFC 5246 §7.3): ServerHello with the client's
        # session ID, then our ChangeCipherSpec and Finished first
        self.suite = suite
        self.resumed = True
        self.session = s
        self.master_secret = s.master_secret
        self.use_ems = s.extended_master_secret
        if s.peer_certificate:
            self.peer_certificate = x509.parse_certificate(s.peer_certificate)
        self._send_server_hello(self._offered_session_id)
        self._derive_keys()
        self._send_change_cipher_spec()
        self._send_finished()
        return WAIT_CHANGE_CIPHER_SPEC

    def _resumable_suite(self, s):
        # the session's suite if this hello may resume it, else None (a full handshake)
        cfg = self.config
        if s is None:
            return None
        age = self._now() - s.created
        if age < -60 or age > cfg.session_lifetime:
            return None
        if not s.extended_master_secret and self._client_ems and cfg.extended_master_secret:
            return None  # RFC 7627 §5.3: a full handshake, which gets EMS
        if s.server_name != self.server_name:
            return None  # RFC 6066 §3: a session is bound to its name
        if self._client_auth() == "require" and not s.peer_certificate:
            return None
        for suite in self._suites:
            if suite.code == s.cipher_suite:
                return suite
        return None

    def _choose_certificate(self):
        # RFC 6066 §3: the certificate for the client's server_name, else the default
        cfg = self.config
        name = self.server_name
        if name is None or not cfg.sni_certificates:
            return cfg.certificate_chain
        for i, (names, chain) in enumerate([(cfg.certificate_names, cfg.certificate_chain)] + cfg.sni_certificates):
            for n in names:
                if n == name or (n.startswith("*.") and "." in name and name[name.index(".") :] == n[1:]):
                    self._key_index = i
                    self._sni_used = True
                    return chain
        if cfg.sni_strict:
            raise TLSError(UNRECOGNIZED_NAME, "no certificate for server name %r" % name)
        return cfg.certificate_chain

    def _send_server_hello(self, session_id):
        cfg = self.config
        suite = self.suite
        self.transcript.start(suite.prf_hash)
        if not self.resumed:
            self.use_ems = cfg.extended_master_secret and self._client_ems
            self._check_ems_kept()
        self.use_etm = cfg.encrypt_then_mac and suite.cipher == "CBC" and self._client_etm
        ext = []
        if self.secure_renegotiation:
            ext.append(renegotiation_info_extension(self.client_verify_data + self.server_verify_data))
        if self.use_ems:
            ext.append((EXT_EXTENDED_MASTER_SECRET, b""))
        if self.use_etm:
            ext.append((EXT_ENCRYPT_THEN_MAC, b""))
        if self._ecdhe is not None and not self.resumed and self._client_point_formats:
            ext.append(ec_point_formats_extension())
        if self._mfl is not None:
            ext.append(max_fragment_length_extension(self._mfl))
        if self._issue_ticket:
            ext.append((EXT_SESSION_TICKET, b""))  # a NewSessionTicket will come
        if self._sni_used:
            ext.append((EXT_SERVER_NAME, b""))  # RFC 6066 §3: the name chose the certificate
        self.session_id = session_id
        self.server_random = self.backend.random(32)
        self._send_handshake(ServerHello(TLS1_2, self.server_random, session_id, suite.code, 0, ext))
        if self._mfl is not None:
            # from here on; the flight is written out later, so all of it is limited
            self._limit_fragments(self._mfl)

    def _full_handshake(self):
        self._issue_ticket = self._client_tickets  # RFC 5077: a ticket for a client that asks
        chain = self._choose_certificate()
        self._send_server_hello(self.backend.random(32))
        self._send_handshake(Certificate(chain))
        self.client_cert_requested = self._client_auth() != "none"
        if self._ecdhe is not None:
            # ServerKeyExchange: an ephemeral key, signed where the key lives
            group, scheme = self._ecdhe
            self._ecdh_private, public = self.backend.ecdh_generate(group)
            self._ske = ServerKeyExchange(group, public, scheme, b"")
            name, hash_name = SIGNATURE_SCHEMES[scheme]
            signed = self.client_random + self.server_random + self._ske.params()
            self._request_key_operation(SIGN, signed, self._on_server_key_exchange_signed, name, hash_name)
        else:
            self._send_certificate_request_and_done()
        if self.client_cert_requested:
            return WAIT_CLIENT_CERTIFICATE
        return WAIT_CLIENT_KEY_EXCHANGE

    def _check_version(self, msg):
        # A TLS 1.3 client lists its versions in supported_versions (RFC 8446 §4.2.1,
        # client_version is then 0x0303); others offer their highest in client_version,
        # and any above TLS 1.2 gets TLS 1.2 (RFC 5246 Appendix E.1).
        sv = msg.extension(EXT_SUPPORTED_VERSIONS)
        if sv is not None:
            if TLS1_2 not in parse_supported_versions(sv):
                raise TLSError(PROTOCOL_VERSION, "client's supported_versions has no TLS 1.2 (0x0303)")
        elif msg.client_version < TLS1_2:
            raise TLSError(
                PROTOCOL_VERSION,
                "client offers version 0x%04x; this server speaks TLS 1.2 (0x0303) only" % msg.client_version,
            )

    def _ecdhe_parameters(self, msg, client_schemes):
        # (group, signature scheme) for ECDHE_RSA with this client, or None
        groups_ext = msg.extension(EXT_SUPPORTED_GROUPS)
        theirs = parse_supported_groups(groups_ext) if groups_ext is not None else [SECP256R1]
        formats = msg.extension(EXT_EC_POINT_FORMATS)
        if formats is not None and POINT_FORMAT_UNCOMPRESSED not in parse_ec_point_formats(formats):
            # RFC 8422 §5.1.2: with curves offered, uncompressed points are a must
            if groups_ext is not None:
                raise TLSError(ILLEGAL_PARAMETER, "ec_point_formats without the uncompressed format")
            return None
        group = None
        for g in self.backend.groups:
            if g in theirs:
                group = g
                break
        scheme = None
        names = self.backend.hash_names
        for s in SERVER_KEY_EXCHANGE_SCHEMES + (RSA_PKCS1_SHA1,):
            if s in client_schemes and SIGNATURE_SCHEMES[s][1] in names:
                scheme = s
                break
        if group is None or scheme is None:
            return None
        return group, scheme

    def _on_server_key_exchange_signed(self, op, signature):
        self._ske.signature = bytes(signature)
        self._send_handshake(self._ske)
        self._send_certificate_request_and_done()

    def _send_certificate_request_and_done(self):
        cfg = self.config
        if self.client_cert_requested:
            names = [a.subject for a in cfg.trust_anchors]
            types = [RSA_SIGN, ECDSA_SIGN] if self._ecdsa() else [RSA_SIGN]
            self._send_handshake(CertificateRequest(types, self._signature_schemes(), names))
        self._send_handshake(ServerHelloDone())
        self._flush_handshake()

    # --- steps 5/6: the client's certificate ------------------------------------------

    def _on_client_certificate(self, msg):
        if not msg.certificate_list:
            if self._client_auth() == "require":
                raise TLSError(HANDSHAKE_FAILURE, "client sent no certificate but one is required")
            return None
        leaf = self._verify_chain(msg.certificate_list, "client", None)
        if leaf.public_key is None:
            raise TLSError(UNSUPPORTED_CERTIFICATE, "client certificate key is not RSA")
        if isinstance(leaf.public_key, x509.ECPublicKey) and not self._ecdsa():
            raise TLSError(UNSUPPORTED_CERTIFICATE, "client certificate key is ECDSA, which this server cannot check")
        self.peer_certificate = leaf

    # --- steps 4/6: the premaster -------------------------------------------------------

    def _on_client_key_exchange(self, msg):
        if self._ecdhe is not None:
            shared = self.backend.ecdh_shared(self._ecdhe[0], self._ecdh_private, msg.ecdh_yc())
            self._ecdh_private = None
            if shared is None:
                raise TLSError(ILLEGAL_PARAMETER, "client's ECDHE public key is not a valid point")
            self._derive_master_secret(shared, self._session_hash())
        else:
            self._ems_hash = self._session_hash()
            self._request_key_operation(
                DECRYPT, msg.encrypted_pre_master_secret(), self._on_premaster_decrypted
            )
        if self.peer_certificate is not None:
            return WAIT_CERTIFICATE_VERIFY
        return None  # WAIT_CHANGE_CIPHER_SPEC

    def _on_premaster_decrypted(self, op, answer):
        good, message, substitute = answer
        pre_master_secret = premaster_from_decryption(good, message, self.client_version, substitute)
        self._derive_master_secret(pre_master_secret, self._ems_hash)
        self._ems_hash = None

    def _on_certificate_verify(self, msg):
        if msg.algorithm not in self._signature_schemes():
            raise TLSError(ILLEGAL_PARAMETER, "CertificateVerify uses a signature algorithm we did not offer")
        hash_name = SIGNATURE_SCHEMES[msg.algorithm][1]
        key = self.peer_certificate.public_key
        ecdsa = msg.algorithm == ECDSA_SECP256R1_SHA256
        if ecdsa != isinstance(key, x509.ECPublicKey):
            raise TLSError(ILLEGAL_PARAMETER, "CertificateVerify algorithm does not match the client certificate's key")
        signed = self.transcript.messages_before_last()
        if ecdsa:
            ok = self.backend.ecdsa_verify(key.group, key.point, hash_name, signed, bytes(msg.signature))
        elif SIGNATURE_SCHEMES[msg.algorithm][0].startswith("rsa_pss"):
            ok = pkcs1.verify_pss(self.backend, key.n, key.e, hash_name, signed, msg.signature)
        else:
            ok = pkcs1.verify(self.backend, key.n, key.e, hash_name, signed, msg.signature)
        if not ok:
            raise TLSError(DECRYPT_ERROR, "client CertificateVerify signature does not verify")

    # --- steps 8 and 9 ------------------------------------------------------------------

    def _on_client_finished(self, msg):
        self._check_peer_finished(msg)
        if self.resumed:  # our Finished went first
            self._handshake_complete()
        elif self._issue_ticket:
            # RFC 5077 §3.3: NewSessionTicket before our ChangeCipherSpec; the ticket is
            # the session sealed by the caller
            self.session = self._new_session()
            self._request_key_operation(SEAL_TICKET, self.session.to_bytes(), self._on_ticket_sealed)
        else:
            self._send_server_finished()

    def _on_ticket_sealed(self, op, ticket):
        if ticket:  # a sealing failure leaves the session without a ticket, not the handshake
            self._send_handshake(NewSessionTicket(self.config.session_lifetime, bytes(ticket)))
        else:
            self._send_handshake(NewSessionTicket(0, b""))  # RFC 5077 §3.3: it was announced
        self._send_server_finished()

    def _send_server_finished(self):
        self._send_change_cipher_spec()
        self._send_finished()
        self._handshake_complete()
