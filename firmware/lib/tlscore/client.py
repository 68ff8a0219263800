# The client side of the TLS 1.2 RSA handshake, as the classic description numbers it:
#  1  ClientHello                                  (initiate / renegotiate)
#  2  ServerHello, Certificate, [CertificateRequest], ServerHelloDone
#  3  authenticate the server: chain, dates, name, key usage (_on_server_certificate)
#     [ServerKeyExchange for ECDHE_RSA: the server's ephemeral key, signed]
#  4  ClientKeyExchange: premaster RSA-encrypted to the server's key, or our
#     ephemeral ECDH key (ECDHE_RSA)
#  5  [Certificate, CertificateVerify] when the server asked for client authentication
#  6-7 master secret and session keys (connection.py)
#  8  ChangeCipherSpec + Finished from us, 9 the same from the server
#  10 application data; 11 renegotiation (HelloRequest from the server, or ours)
# Only the table below says which message may come next.

from . import pkcs1, suites, x509
from .connection import CCS, CONNECTED, INITIATE, RENEGOTIATE, RENEGOTIATION_REFUSED, Connection
from .constants import (
    BAD_CERTIFICATE,
    CERTIFICATE,
    CERTIFICATE_REQUEST,
    DECRYPT_ERROR,
    ECDSA_SECP256R1_SHA256,
    ECDSA_SIGN,
    EXT_ENCRYPT_THEN_MAC,
    EXT_EXTENDED_MASTER_SECRET,
    EXT_MAX_FRAGMENT_LENGTH,
    EXT_RENEGOTIATION_INFO,
    EXT_SERVER_NAME,
    EXT_SESSION_TICKET,
    EXT_SIGNATURE_ALGORITHMS,
    FINISHED,
    HANDSHAKE_FAILURE,
    HELLO_REQUEST,
    ILLEGAL_PARAMETER,
    INTERNAL_ERROR,
    NEW_SESSION_TICKET,
    NO_RENEGOTIATION,
    PROTOCOL_VERSION,
    RSA_PKCS1_SHA256,
    RSA_PKCS1_SHA384,
    RSA_PKCS1_SHA512,
    RSA_PSS_RSAE_SHA256,
    RSA_PSS_RSAE_SHA384,
    RSA_PSS_RSAE_SHA512,
    SERVER_HELLO,
    SERVER_HELLO_DONE,
    SERVER_KEY_EXCHANGE,
    SIGNATURE_SCHEMES,
    TLS1_2,
    UNEXPECTED_MESSAGE,
    UNSUPPORTED_CERTIFICATE,
    UNSUPPORTED_EXTENSION,
    WARNING,
)
from .consttime import ct_equal
from .errors import TLSError
from .events import SIGN, SIGN_DIGEST, RenegotiationRequested
from .messages import (
    Certificate,
    CertificateVerify,
    ClientHello,
    ClientKeyExchange,
    ec_point_formats_extension,
    max_fragment_length_extension,
    parse_max_fragment_length,
    parse_renegotiation_info,
    renegotiation_info_extension,
    server_name_extension,
    signature_algorithms_extension,
    supported_groups_extension,
)

# Signature schemes we make for CertificateVerify, best first: PKCS#1 v1.5 with an RSA
# key (what every RSA key, the board's included, can do), ECDSA with a P-256 key.
CLIENT_SIGNATURE_SCHEMES = (RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512)
CLIENT_ECDSA_SCHEMES = (ECDSA_SECP256R1_SHA256,)
# Signature schemes we verify (ServerKeyExchange), offered in signature_algorithms.
VERIFY_SIGNATURE_SCHEMES = (
    RSA_PSS_RSAE_SHA256, RSA_PKCS1_SHA256, RSA_PSS_RSAE_SHA384, RSA_PKCS1_SHA384,
    RSA_PSS_RSAE_SHA512, RSA_PKCS1_SHA512,
)

class PreparedPremaster:
    # Step 4 of RSA key exchange done ahead of time: a fresh pre_master_secret and its
    # encryption to a server key this client has met before, computed while the client
    # would otherwise wait (for the server's flight, or between connections). The RSA
    # public-key operation is the client's slowest step (~1.5 ms on the unix port,
    # ~100 ms estimated on an ESP32). Used at most once, and only if the server
    # presents exactly that key (after its chain has been verified); otherwise the
    # handshake encrypts a new one as usual. Nothing prepared ever leaves the device
    # unless it is used.
    def __init__(self):
        self.key = None  # (n, e) the secret below is encrypted to
        self._secret = None
        self._encrypted = None
        self.used = 0

    def prepare(self, backend, n, e):
        if self._secret is not None and self.key == (n, e):
            return
        secret = TLS1_2.to_bytes(2, "big") + backend.random(46)
        self._encrypted = pkcs1.encrypt(backend, n, e, secret)
        self._secret = secret
        self.key = (n, e)

    @property
    def ready(self):
        return self._secret is not None

    def take(self, n, e):
        # -> (pre_master_secret, encrypted) for this key, once; or None
        if self._secret is None or self.key != (n, e):
            return None
        r = (self._secret, self._encrypted)
        self._secret = self._encrypted = None
        self.used += 1
        return r


START = "START"  # nothing sent yet: initiate() sends the first ClientHello
WAIT_SERVER_HELLO = "WAIT_SERVER_HELLO"
WAIT_SERVER_CERTIFICATE = "WAIT_SERVER_CERTIFICATE"
WAIT_SERVER_KEY_EXCHANGE = "WAIT_SERVER_KEY_EXCHANGE"
WAIT_CERTIFICATE_REQUEST = "WAIT_CERTIFICATE_REQUEST"  # or straight ServerHelloDone
WAIT_SERVER_HELLO_DONE = "WAIT_SERVER_HELLO_DONE"
WAIT_NEW_SESSION_TICKET = "WAIT_NEW_SESSION_TICKET"
WAIT_CHANGE_CIPHER_SPEC = "WAIT_CHANGE_CIPHER_SPEC"
WAIT_FINISHED = "WAIT_FINISHED"

# state: {event: (handler, (next state, other next states the handler may pick))}
TRANSITIONS = {
    START: {
        INITIATE: ("_send_client_hello", (WAIT_SERVER_HELLO,)),
    },
    WAIT_SERVER_HELLO: {
        # a full handshake; or the server resumes our session (RFC 5246 §7.3): its
        # ChangeCipherSpec and Finished come first, maybe after a new ticket
        SERVER_HELLO: ("_on_server_hello", (WAIT_SERVER_CERTIFICATE, WAIT_CHANGE_CIPHER_SPEC, WAIT_NEW_SESSION_TICKET)),
        # RFC 5246 §7.4.1.1: ignored while negotiating
        HELLO_REQUEST: ("_on_hello_request_while_handshaking", (WAIT_SERVER_HELLO,)),
        # the server refused our renegotiation: the current session goes on
        RENEGOTIATION_REFUSED: ("_on_renegotiation_refused", (CONNECTED,)),
    },
    WAIT_SERVER_CERTIFICATE: {
        # RSA key exchange goes on to CertificateRequest/ServerHelloDone, ECDHE_RSA
        # to its ServerKeyExchange
        CERTIFICATE: ("_on_server_certificate", (WAIT_CERTIFICATE_REQUEST, WAIT_SERVER_KEY_EXCHANGE)),
    },
    WAIT_SERVER_KEY_EXCHANGE: {
        SERVER_KEY_EXCHANGE: ("_on_server_key_exchange", (WAIT_CERTIFICATE_REQUEST,)),
    },
    WAIT_CERTIFICATE_REQUEST: {
        CERTIFICATE_REQUEST: ("_on_certificate_request", (WAIT_SERVER_HELLO_DONE,)),
        SERVER_HELLO_DONE: ("_on_server_hello_done", (WAIT_CHANGE_CIPHER_SPEC, WAIT_NEW_SESSION_TICKET)),
    },
    WAIT_SERVER_HELLO_DONE: {
        SERVER_HELLO_DONE: ("_on_server_hello_done", (WAIT_CHANGE_CIPHER_SPEC, WAIT_NEW_SESSION_TICKET)),
    },
    WAIT_NEW_SESSION_TICKET: {
        # RFC 5077 §3.3: announced in ServerHello
        NEW_SESSION_TICKET: ("_on_new_session_ticket", (WAIT_CHANGE_CIPHER_SPEC,)),
    },
    WAIT_CHANGE_CIPHER_SPEC: {
        CCS: ("_on_change_cipher_spec", (WAIT_FINISHED,)),
    },
    WAIT_FINISHED: {
        FINISHED: ("_on_server_finished", (CONNECTED,)),
    },
    CONNECTED: {
        # a renegotiation the server asks for: we start it, or refuse it
        HELLO_REQUEST: ("_on_hello_request", (WAIT_SERVER_HELLO, CONNECTED)),
        RENEGOTIATE: ("_send_client_hello", (WAIT_SERVER_HELLO,)),
    },
}


_own_key = None  # (DER, key type) of the last leaf of ours looked at


def _own_key_type(der):
    # the key type of our own leaf, parsed once, not at every handshake: a client
    # sends the same certificate each time (on the board a parse is about 0.4 ms)
    global _own_key
    if _own_key is None or _own_key[0] != der:
        _own_key = (der, x509.parse_certificate(der).key_type)
    return _own_key[1]


def _is_ip_literal(name):
    return ":" in name or name.replace(".", "").isdigit()


class ClientConnection(Connection):
    is_client = True
    INITIAL_STATE = START
    TRANSITIONS = TRANSITIONS

    def __init__(self, config, backend):
        # a verified chain with no name to check says nothing about whom we talk to
        if config.verify_peer and not config.server_name:
            raise ValueError("no server_name to check the server's certificate against (or verify_peer=False)")
        Connection.__init__(self, config, backend)

    def initiate(self):
        # Step 1: queue the first ClientHello; call data_to_send() next.
        if self.state != START:
            raise ValueError("handshake already started")
        self._run(self._dispatch, INITIATE)

    def renegotiate(self):
        # Step 11, client side: a new ClientHello under the current keys.
        if self.state != CONNECTED:
            raise ValueError("can renegotiate only on an established, idle connection")
        if not self.secure_renegotiation:
            raise ValueError("the server did not negotiate secure renegotiation (RFC 5746)")
        self.renegotiating = True
        self._run(self._dispatch, RENEGOTIATE)

    # --- step 1 -------------------------------------------------------------------------

    def _offered_suites(self):
        return suites.supported_by(self.backend, self.config.cipher_suites)

    def _signature_schemes(self, schemes=CLIENT_SIGNATURE_SCHEMES):
        names = self.backend.hash_names
        return [s for s in schemes if SIGNATURE_SCHEMES[s][1] in names]

    def _reset_handshake(self):
        Connection._reset_handshake(self)
        self.offered_suites = None
        self.offered_extensions = None
        self.server_key_exchange = None
        self.certificate_request = None
        self._cv_scheme = None
        self._offered_session = None  # the Session our ClientHello offers to resume
        self._expect_ticket = False
        self._ticket = None  # (ticket, lifetime hint) from NewSessionTicket

    def _send_client_hello(self, msg=None):
        self._reset_handshake()
        self.transcript = self._new_transcript()
        cfg = self.config
        offered = self._offered_suites()
        if not offered:
            raise TLSError(HANDSHAKE_FAILURE, "no cipher suite to offer")
        self.offered_suites = offered
        ext = []
        if cfg.server_name and not _is_ip_literal(cfg.server_name):
            ext.append(server_name_extension(cfg.server_name))
        ext.append(signature_algorithms_extension(self._signature_schemes(VERIFY_SIGNATURE_SCHEMES)))
        if [s for s in offered if s.key_exchange == "ECDHE_RSA"]:
            ext.append(supported_groups_extension(list(self.backend.groups)))
            ext.append(ec_point_formats_extension())
        if cfg.max_fragment_length:
            ext.append(max_fragment_length_extension(cfg.max_fragment_length))
        if cfg.extended_master_secret:
            ext.append((EXT_EXTENDED_MASTER_SECRET, b""))
        if cfg.encrypt_then_mac and [s for s in offered if s.cipher == "CBC"]:
            ext.append((EXT_ENCRYPT_THEN_MAC, b""))
        ext.append(renegotiation_info_extension(self.client_verify_data if self.established else b""))
        session_id = b""
        s = cfg.session if not self.established else None
        if s is not None and s.server_name == cfg.server_name and [x for x in offered if x.code == s.cipher_suite]:
            self._offered_session = s
            # with a ticket, an ID of our own: the server echoes it if it resumes (RFC 5077 §3.4)
            session_id = s.session_id or self.backend.random(32)
            s.session_id = session_id
        if cfg.session_tickets:
            t = self._offered_session.ticket if self._offered_session is not None else None
            ext.append((EXT_SESSION_TICKET, t or b""))
        self.offered_extensions = [t for t, _ in ext]
        self.client_random = self.backend.random(32)
        self._send_handshake(
            ClientHello(TLS1_2, self.client_random, session_id, [s.code for s in offered], [0], ext)
        )
        self._flush_handshake()

    # --- step 2 -------------------------------------------------------------------------

    def _on_server_hello(self, msg):
        if msg.server_version != TLS1_2:
            raise TLSError(PROTOCOL_VERSION, "server chose version 0x%04x, not TLS 1.2" % msg.server_version)
        suite = None
        for s in self.offered_suites:
            if s.code == msg.cipher_suite:
                suite = s
        if suite is None:
            raise TLSError(ILLEGAL_PARAMETER, "server chose cipher suite 0x%04x we did not offer" % msg.cipher_suite)
        if msg.compression_method != 0:
            raise TLSError(ILLEGAL_PARAMETER, "server chose compression")
        for t, _ in msg.extensions:
            if t not in self.offered_extensions or t == EXT_SIGNATURE_ALGORITHMS:
                raise TLSError(UNSUPPORTED_EXTENSION, "server sent extension %d we did not offer" % t)
        self.suite = suite
        self.transcript.start(suite.prf_hash)
        self.server_random = msg.random
        ri = msg.extension(EXT_RENEGOTIATION_INFO)
        if self.established:
            expected = self.client_verify_data + self.server_verify_data
            if ri is None or not ct_equal(parse_renegotiation_info(ri), expected):
                raise TLSError(HANDSHAKE_FAILURE, "renegotiation_info does not match the previous handshake")
        elif ri is not None:
            if len(parse_renegotiation_info(ri)):
                raise TLSError(HANDSHAKE_FAILURE, "non-empty renegotiation_info in the initial handshake")
            self.secure_renegotiation = True
        self.use_ems = msg.has_extension(EXT_EXTENDED_MASTER_SECRET)
        self._check_ems_kept()
        self.use_etm = msg.has_extension(EXT_ENCRYPT_THEN_MAC)
        if self.use_etm and suite.cipher != "CBC":
            raise TLSError(ILLEGAL_PARAMETER, "encrypt_then_mac with an AEAD suite")
        mfl = msg.extension(EXT_MAX_FRAGMENT_LENGTH)
        if mfl is not None:
            if parse_max_fragment_length(mfl) != self.config.max_fragment_length:
                raise TLSError(ILLEGAL_PARAMETER, "server answered a max_fragment_length we did not ask for")
            self._limit_fragments(self.config.max_fragment_length)
        if msg.has_extension(EXT_SERVER_NAME):
            self.server_name = self.config.server_name
        self.session_id = bytes(msg.session_id)
        self._expect_ticket = msg.has_extension(EXT_SESSION_TICKET)
        s = self._offered_session
        if s is not None and len(msg.session_id) and ct_equal(msg.session_id, s.session_id):
            return self._resume(s)
        return None  # WAIT_SERVER_CERTIFICATE

    def _resume(self, s):
        # the server took our session: its keys, its certificate; no RSA, no chain
        if self.suite.code != s.cipher_suite:
            raise TLSError(ILLEGAL_PARAMETER, "server resumed the session with another cipher suite")
        if self.use_ems != s.extended_master_secret:
            # RFC 7627 §5.3
            raise TLSError(HANDSHAKE_FAILURE, "server resumed a session with extended_master_secret changed")
        self.resumed = True
        self.master_secret = s.master_secret
        self.peer_certificate = s.peer_certificate
        self.server_name = s.server_name
        self._derive_keys()
        if self._expect_ticket:
            return WAIT_NEW_SESSION_TICKET
        return WAIT_CHANGE_CIPHER_SPEC

    def _on_new_session_ticket(self, msg):
        # an empty ticket: the server announced one and then could not make it
        self._ticket = (msg.ticket, msg.ticket_lifetime_hint) if len(msg.ticket) else None

    # --- step 3 -------------------------------------------------------------------------

    def _on_server_certificate(self, msg):
        chain = msg.certificate_list
        if self.config.verify_peer:
            if not self.config.server_name:  # checked at __init__; the config is the caller's
                raise TLSError(INTERNAL_ERROR, "no server_name to check the server's certificate against")
            leaf = self._verify_chain(chain, "server", self.config.server_name, self.suite.key_exchange)
        else:
            if not chain:
                raise TLSError(BAD_CERTIFICATE, "server sent no certificate")
            leaf = x509.parse_certificate(chain[0])
        if not isinstance(leaf.public_key, x509.RSAPublicKey):
            raise TLSError(UNSUPPORTED_CERTIFICATE, "server certificate key is not RSA: RSA key exchange needs one")
        self.peer_certificate = leaf
        if self.suite.key_exchange == "ECDHE_RSA":
            return WAIT_SERVER_KEY_EXCHANGE
        return None  # WAIT_CERTIFICATE_REQUEST

    def _on_server_key_exchange(self, msg):
        # ECDHE_RSA: the server's ephemeral key, signed by its certificate key
        if msg.named_curve not in self.backend.groups:
            raise TLSError(ILLEGAL_PARAMETER, "server chose group %d we did not offer" % msg.named_curve)
        if msg.algorithm not in self._signature_schemes(VERIFY_SIGNATURE_SCHEMES):
            raise TLSError(ILLEGAL_PARAMETER, "ServerKeyExchange signed with an algorithm we did not offer")
        name, hash_name = SIGNATURE_SCHEMES[msg.algorithm]
        key = self.peer_certificate.public_key
        signed = self.client_random + self.server_random + msg.params()
        check = pkcs1.verify_pss if name.startswith("rsa_pss") else pkcs1.verify
        if not check(self.backend, key.n, key.e, hash_name, signed, msg.signature):
            raise TLSError(DECRYPT_ERROR, "ServerKeyExchange signature does not verify with the server certificate")
        self.server_key_exchange = msg

    def _on_certificate_request(self, msg):
        self.client_cert_requested = True
        self.certificate_request = msg

    # --- steps 4 and 5 ----------------------------------------------------------------

    def _on_server_hello_done(self, msg):
        b = self.backend
        chain = self.config.certificate_chain if self.client_cert_requested else []
        if self.client_cert_requested:
            self._send_handshake(Certificate(chain))
        if self.suite.key_exchange == "ECDHE_RSA":
            ske = self.server_key_exchange
            private, public = b.ecdh_generate(ske.named_curve)
            pre_master_secret = b.ecdh_shared(ske.named_curve, private, ske.public)
            if pre_master_secret is None:
                raise TLSError(ILLEGAL_PARAMETER, "server's ECDHE public key is not a valid point")
            self._send_handshake(ClientKeyExchange.ecdhe(public))
        else:
            key = self.peer_certificate.public_key
            prepared = self.config.prepared_premaster
            ready = prepared.take(key.n, key.e) if prepared is not None else None
            if ready is not None:
                pre_master_secret, encrypted = ready
            else:
                pre_master_secret = TLS1_2.to_bytes(2, "big") + b.random(46)
                encrypted = pkcs1.encrypt(b, key.n, key.e, pre_master_secret)
            self._send_handshake(ClientKeyExchange.rsa(encrypted))
        session_hash = self._session_hash()
        self._derive_master_secret(pre_master_secret, session_hash)
        if chain:
            scheme = self._choose_certificate_verify_scheme()
            name, hash_name = SIGNATURE_SCHEMES[scheme]
            self._cv_scheme = scheme
            # Certificate and ClientKeyExchange go out now: the server decrypts the
            # premaster while our key signs (tens of ms on the board)
            self._flush_handshake()
            if self.config.sign_digest:
                # step 7 signs the messages through ClientKeyExchange: with EMS that is
                # the session_hash just taken (a MicroPython hash gives one digest)
                digest = session_hash if session_hash is not None else self.transcript.digest()
                self._request_key_operation(
                    SIGN_DIGEST, digest, self._on_certificate_verify_signed, name, hash_name
                )
            else:
                self._request_key_operation(
                    SIGN, self.transcript.messages(), self._on_certificate_verify_signed, name, hash_name
                )
        else:
            self._send_client_finished()
        if self._expect_ticket:
            return WAIT_NEW_SESSION_TICKET
        return None  # WAIT_CHANGE_CIPHER_SPEC

    def _choose_certificate_verify_scheme(self):
        # by the key in our own certificate (the leaf we just sent)
        req = self.certificate_request
        theirs = req.supported_signature_algorithms
        if _own_key_type(self.config.certificate_chain[0]) == "ec":
            if ECDSA_SIGN not in req.certificate_types:
                raise TLSError(HANDSHAKE_FAILURE, "server does not take ECDSA client certificates (certificate_types)")
            ours = self._signature_schemes(CLIENT_ECDSA_SCHEMES)
        else:
            ours = self._signature_schemes()
        if self.config.sign_digest:
            ours = [s for s in ours if SIGNATURE_SCHEMES[s][1] == self.suite.prf_hash]
        for s in ours:
            if s in theirs:
                return s
        raise TLSError(HANDSHAKE_FAILURE, "no signature algorithm in common for CertificateVerify")

    def _on_certificate_verify_signed(self, op, signature):
        self._send_handshake(CertificateVerify(self._cv_scheme, bytes(signature)))
        self._send_client_finished()

    def _send_client_finished(self):
        # step 8
        self._send_change_cipher_spec()
        self._send_finished()

    # --- step 9 -------------------------------------------------------------------------

    def _on_server_finished(self, msg):
        self._check_peer_finished(msg)
        if self.resumed:  # the server's Finished went first: ours now
            self._send_client_finished()
        s = self.session = self._offered_session if self.resumed else self._new_session()
        if self._ticket is not None:
            s.ticket, s.lifetime = self._ticket
        self._handshake_complete()

    # --- step 11 ------------------------------------------------------------------------

    def _on_hello_request(self, msg):
        if not self._may_renegotiate():
            self.events.append(RenegotiationRequested(True, False))
            self._send_alert(WARNING, NO_RENEGOTIATION)
            return CONNECTED
        self.events.append(RenegotiationRequested(True, True))
        self.renegotiating = True
        self._send_client_hello()
        return None  # WAIT_SERVER_HELLO

    def _on_hello_request_while_handshaking(self, msg):
        pass

    def _on_renegotiation_refused(self, msg):
        if not self.established:
            raise TLSError(UNEXPECTED_MESSAGE, "no_renegotiation alert in answer to a first ClientHello")
        self.renegotiating = False
        self.transcript = self._new_transcript()
