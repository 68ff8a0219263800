# Settings for one side of a connection. Plain attributes with defaults, so the board
# can build one without any host-side machinery.

from . import suites


class TLSConfig:
    def __init__(self, **kw):
        self.cipher_suites = list(suites.ALL)  # preference order (server) / offer order
        self.certificate_chain = []  # our DER certificates, leaf first
        self.trust_anchors = []  # x509.Certificate: server CAs (client), client CAs (server)
        self.server_name = None  # client: host name to verify, and to send as SNI
        self.verify_peer = True  # client: check the server's chain and name (needs server_name)
        # client: a server certificate without subjectAltName may name its host in its CN
        self.allow_cn = False
        # server: accept SHA-1 in a client's CertificateVerify (refused by default: SHA-1
        # signatures are forgeable by chosen-prefix collision, SHAttered/Shambles)
        self.allow_sha1 = False
        # server: more certificates, chosen by the client's server_name (RFC 6066 §3): a
        # list of (names, chain) with DNS names ("*.example.com" matches one label); the
        # key of the i-th is asked for with KeyOperationRequest.key_index i + 1 (0: the
        # default, certificate_chain). sni_strict: a name none of them serves is a fatal
        # unrecognized_name, else it gets the default certificate.
        self.sni_certificates = []
        self.sni_strict = False
        self.certificate_names = ()  # server: the DNS names of certificate_chain, for SNI
        # resumption (RFC 5246 §7.3, RFC 5077). client: the Session to offer
        # (HandshakeComplete.session of an earlier connection to the same server), and
        # whether to ask for a ticket. server: look offered session IDs up
        # (KeyOperationRequest FIND_SESSION) and/or issue and open tickets (SEAL_TICKET,
        # OPEN_TICKET); sessions older than session_lifetime seconds are not resumed.
        self.session = None
        self.session_tickets = False
        self.session_cache = False
        self.session_lifetime = 7200
        self.client_auth = "none"  # server: "none", "optional" or "require"
        self.now = None  # callable -> unix seconds (the board gets it from the host)
        self.extended_master_secret = True
        self.encrypt_then_mac = True
        self.allow_renegotiation = True
        # a peer may not keep a connection renegotiating forever (CPU exhaustion: each
        # renegotiation costs the server a private-key operation)
        self.max_renegotiations = 100
        # RFC 6066: client: offer this record size (512..4096) so the board's receive
        # buffer can be small; server: honour a client's request
        self.max_fragment_length = None
        self.accept_max_fragment_length = True
        self.max_handshake_message = 1 << 16
        # a bytearray for the record layer's receive buffer, lent for the connection's
        # life (the board reuses one for all its sessions); None: the connection's own
        self.record_buffer = None
        self.trace = None  # observer: see Connection._trace
        # revoked peer certificates: a set of (issuer Name DER, serial) from CRLs the
        # host has checked (the board gets none: no CRL distribution to it yet)
        self.revoked = None
        # x509.SignatureCache shared by this peer's connections (the board keeps one),
        # so a certificate seen before costs no RSA operation; None: check every time
        self.signature_cache = None
        # client: a client.PreparedPremaster the driver filled while waiting, used if
        # the server's key is the one it was made for
        self.prepared_premaster = None
        # client: the key signs CertificateVerify's digest, taken from the transcript's
        # running hash (KeyOperationRequest kind "sign_digest"), not the messages, so
        # no copy of the handshake is kept (the board). Only schemes whose hash is the
        # suite's PRF hash can be chosen then: SHA-256 for every suite the board offers.
        self.sign_digest = False
        for k in kw:
            if not hasattr(self, k):
                raise TypeError("unknown TLSConfig setting %r" % k)
            setattr(self, k, kw[k])
