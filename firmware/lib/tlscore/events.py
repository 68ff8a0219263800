# What the engine tells its caller (h11-style events): the caller feeds bytes in, then
# drains events and bytes to send. KeyOperationRequest is the asynchronous private-key
# seam (mbedTLS's async private-key callbacks): the caller runs the operation wherever
# the key lives and answers with Connection.key_operation_result(), or fails it.


class Event:
    def __repr__(self):
        fields = ", ".join("%s=%r" % (k, v) for k, v in sorted(self.__dict__.items()))
        return "%s(%s)" % (type(self).__name__, fields)


class HandshakeComplete(Event):
    # Negotiated parameters of a finished handshake (initial or renegotiation).
    def __init__(self, version, cipher_suite, extended_master_secret, secure_renegotiation,
                 encrypt_then_mac, peer_certificate, server_name, renegotiation,
                 client_certificate_requested=False, resumed=False, session=None):
        self.version = version
        self.cipher_suite = cipher_suite  # IANA name
        self.extended_master_secret = extended_master_secret
        self.secure_renegotiation = secure_renegotiation
        self.encrypt_then_mac = encrypt_then_mac
        self.peer_certificate = peer_certificate  # x509.Certificate or None
        self.server_name = server_name
        self.renegotiation = renegotiation
        self.client_certificate_requested = client_certificate_requested
        self.resumed = resumed  # an abbreviated handshake (RFC 5246 §7.3)
        # the tlscore.session.Session to resume next time: a client offers it again
        # (TLSConfig.session), a server with a session cache keeps it under its ID
        self.session = session

    @property
    def peer_subject(self):
        return self.peer_certificate.subject_str() if self.peer_certificate else None


class ApplicationData(Event):
    def __init__(self, data):
        self.data = data


class AlertReceived(Event):
    def __init__(self, level, description, name):
        self.level = level
        self.description = description
        self.name = name


class RenegotiationRequested(Event):
    # The peer asked for a new handshake; the engine runs it (or refuses it when
    # secure renegotiation was not negotiated) without further action by the caller.
    def __init__(self, by_peer, accepted):
        self.by_peer = by_peer
        self.accepted = accepted


# The kinds of private-key operation the engine asks for.
DECRYPT = "decrypt"
SIGN = "sign"
SIGN_DIGEST = "sign_digest"
# a server's sessions, sealed with a key the engine never sees
FIND_SESSION = "find_session"  # data: a session ID; answer: that session's bytes, or None
OPEN_TICKET = "open_ticket"  # data: an RFC 5077 ticket; answer: its session's bytes, or None
SEAL_TICKET = "seal_ticket"  # data: Session.to_bytes(); answer: the ticket (None: none given)


class KeyOperationRequest(Event):
    # kind DECRYPT: data is the EncryptedPreMasterSecret; answer (good, message,
    #   substitute): tlscore.pkcs1.depad_premaster's (good, message) for raw RSA's
    #   output (b"" when the ciphertext was refused or the key failed), or
    #   premaster_candidate's for a message decrypted elsewhere, and 46 bytes to use
    #   instead (derived from the ciphertext with a secret, or random). The engine
    #   chooses between them without a branch (server.premaster_from_decryption).
    # kind SIGN: data is the message to sign with `scheme` (e.g. "rsa_pkcs1_sha256",
    #   hash `hash_name`); answer the signature.
    # kind SIGN_DIGEST: data is the `hash_name` digest of the message (a client with
    #   TLSConfig.sign_digest); answer the signature over the message it digests.
    # key_index: which of a server's keys (TLSConfig.sni_certificates), 0 the default.
    def __init__(self, op_id, kind, data, scheme=None, hash_name=None, key_index=0):
        self.key_index = key_index
        self.op_id = op_id
        self.kind = kind
        self.data = data
        self.scheme = scheme
        self.hash_name = hash_name


class ConnectionClosed(Event):
    # The connection is over. alert/reason say why when it was not a clean close:
    # local=True means we sent the fatal alert, False means the peer did.
    def __init__(self, clean, alert=None, reason=None, local=False):
        self.clean = clean
        self.alert = alert
        self.reason = reason
        self.local = local
