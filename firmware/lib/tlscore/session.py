# A TLS session: what an abbreviated handshake (RFC 5246 §7.3, step 1 with a session
# ID or an RFC 5077 ticket) needs of the full handshake that made it. The engine makes
# one at every completed handshake (HandshakeComplete.session); who keeps it is the
# caller's business: a client offers it next time (TLSConfig.session), a server seals
# it (a ticket, or its session cache) with a key the engine never sees.
#
# Bound to it (RFC 7627 §5.3, RFC 6066 §3): whether extended master secret made it, the
# server name it was made for, and the client's certificate, if any.

_FORMAT = 1  # first byte of to_bytes()


class Session:
    def __init__(self, session_id, cipher_suite, master_secret, extended_master_secret, server_name=None,
                 peer_certificate=None, created=0, ticket=None, lifetime=0):
        self.session_id = session_id  # bytes, up to 32; b"" when there is none
        self.cipher_suite = cipher_suite  # code
        self.master_secret = master_secret
        self.extended_master_secret = extended_master_secret
        self.server_name = server_name  # str or None
        # the peer's leaf: a server keeps the client's DER, a client the parsed server's
        self.peer_certificate = peer_certificate
        self.created = created  # unix seconds
        self.ticket = ticket  # a client's RFC 5077 ticket for it, else None
        self.lifetime = lifetime  # a client's: the server's ticket_lifetime_hint, 0: none

    def to_bytes(self):
        # a server's session for sealing: format, suite, EMS, created, master secret,
        # server name, the client's certificate (DER)
        name = (self.server_name or "").encode()
        cert = self.peer_certificate or b""
        return (
            bytes([_FORMAT]) + self.cipher_suite.to_bytes(2, "big") + bytes([1 if self.extended_master_secret else 0])
            + self.created.to_bytes(4, "big") + bytes(self.master_secret)
            + len(name).to_bytes(2, "big") + name + len(cert).to_bytes(3, "big") + bytes(cert)
        )

    @classmethod
    def from_bytes(cls, data, session_id=b""):
        # -> Session, or None for bytes that are not one (a sealed blob opened with the
        # right key is ours; a format or length mismatch means another version made it)
        data = bytes(data)
        try:
            if data[0] != _FORMAT:
                return None
            suite = int.from_bytes(data[1:3], "big")
            ems = data[3] == 1
            created = int.from_bytes(data[4:8], "big")
            master = data[8:56]
            n = int.from_bytes(data[56:58], "big")
            name = data[58 : 58 + n].decode() if n else None
            pos = 58 + n
            m = int.from_bytes(data[pos : pos + 3], "big")
            cert = data[pos + 3 : pos + 3 + m] if m else None
            if len(master) != 48 or pos + 3 + m != len(data):
                return None
        except (IndexError, UnicodeError):
            return None
        return cls(session_id, suite, master, ems, name, cert, created)
