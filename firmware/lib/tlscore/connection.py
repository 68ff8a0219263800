# What client and server connections share: bytes in and out, the record layer,
# reassembly of handshake messages across records, the transcript, ChangeCipherSpec,
# alerts, application data, and the dispatch of each event through the role's
# transition table. The table of client.py / server.py is the whole state machine:
#
#     TRANSITIONS[state][event] -> (handler name, (next state, other next states...))
#
# An event is a handshake message type, CCS, or one of the local events below (a call
# of the API, a no_renegotiation alert). The handler runs, and returns None for the
# first next state or names one of the others; _dispatch checks the pick. An event not
# in the table is unexpected_message, raised in one place (_dispatch). Only _enter()
# assigns a state from the table; _close() is the one exit, from any state to CLOSED
# (a fatal alert either way, close_notify, or close()). Every failure becomes a fatal
# alert, a closed connection and a ConnectionClosed event; no exception leaves
# receive_data().
#
# Over 600 lines on purpose: the core both roles share is one module, as the board
# pays for each module it loads (its object and globals: ~150 B a module on a 32-bit
# board, docs/board.md "Heap").

from . import keyschedule, pathvalidation
from .constants import (
    ALERT,
    ALERT_NAMES,
    APPLICATION_DATA,
    CERTIFICATE_REVOKED,
    CHANGE_CIPHER_SPEC,
    CLIENT_HELLO,
    CLOSE_NOTIFY,
    DECODE_ERROR,
    DECRYPT_ERROR,
    FATAL,
    FINISHED,
    HANDSHAKE,
    HANDSHAKE_FAILURE,
    HANDSHAKE_NAMES,
    ILLEGAL_PARAMETER,
    INTERNAL_ERROR,
    NO_RENEGOTIATION,
    UNEXPECTED_MESSAGE,
    WARNING,
    alert_name,
)
from .consttime import ct_equal
from .errors import TLSError
from .events import (
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    HandshakeComplete,
    KeyOperationRequest,
)
from .messages import MESSAGE_CLASSES, Finished, frame
from .record import RecordLayer, make_protections

# Pseudo message type for ChangeCipherSpec in the transition tables (it is a record
# content type, not a handshake message, but its place in the flow is fixed).
CCS = "ChangeCipherSpec"

# Local events: a call of the API, or the alert that refuses a renegotiation.
INITIATE = "initiate()"
RENEGOTIATE = "renegotiate()"
RENEGOTIATION_REFUSED = "no_renegotiation alert"
SESSION_ANSWERED = "session answered"  # the caller's answer to FIND_SESSION / OPEN_TICKET

CONNECTED = "CONNECTED"
CLOSED = "CLOSED"


def _event_name(event):
    return event if type(event) is str else HANDSHAKE_NAMES.get(event, "handshake type %s" % event)


class Transcript:
    # handshake_messages (RFC 5246 §7.4.9) of the handshake in progress. The key
    # schedule needs their hash at three points: RFC 7627's session_hash after
    # ClientKeyExchange, our Finished, and the messages before the peer's Finished.
    # Once the suite fixes the hash (start()), each message goes into running hashes
    # as it passes. The bytes themselves are kept only where CertificateVerify (step
    # 7) needs them (keep): a server checks its client's signature over them, and a
    # client with a certificate hands them to its key to sign (messages(): handed
    # over, not copied, and not kept after that), unless its key signs a digest
    # (TLSConfig.sign_digest): that is the session_hash point's digest. So the board
    # never holds a copy of the server's certificate chain.
    #
    # MicroPython's hashlib cannot copy a state, so one hash runs per digest still to
    # come and each digest() finishes one; where hashes copy (CPython), one suffices.
    def __init__(self, backend, keep=True):
        self.backend = backend
        self.keep = keep
        self.data = bytearray()  # the messages (keep, or before start()), else None
        self.before = 0  # len(data) before the last message
        self.hashes = None  # running hashes, from start()
        self.before_last = None  # digest of the messages before a peer's Finished

    def start(self, hash_name):
        h = self.backend.new_hash(hash_name)
        self.hashes = [h] if hasattr(h, "copy") else [h] + [self.backend.new_hash(hash_name) for _ in range(2)]
        for h in self.hashes:
            h.update(self.data)
        if not self.keep:
            self.data = None

    def add(self, raw, snapshot=False):
        if snapshot:
            self.before_last = self.digest()
        if self.data is not None:
            self.before = len(self.data)
            self.data += raw
        if self.hashes is not None:
            for h in self.hashes:
                h.update(raw)

    def digest(self):
        # hash of all messages so far
        hs = self.hashes
        if not hs:
            raise TLSError(INTERNAL_ERROR, "transcript hash asked for before the suite or more often than a handshake does")
        if hasattr(hs[0], "copy"):
            return hs[0].copy().digest()
        return hs.pop().digest()

    def digest_before_last(self):
        return self.before_last

    def messages(self):
        # all messages so far, handed over to be signed: from here on only hashed
        data = self.data
        self.data = None
        return data

    def messages_before_last(self):
        return bytes(memoryview(self.data)[: self.before])


class Connection:
    is_client = False
    max_client_hello = 0  # a server reads any ClientHello, past max_handshake_message
    TRANSITIONS = {}
    INITIAL_STATE = None

    def __init__(self, config, backend):
        self.config = config
        self.backend = backend
        self.records = RecordLayer(config.record_buffer)
        self.state = self.INITIAL_STATE
        self.events = []
        self.out = bytearray()
        # handshake bytes not yet dispatched: a view of the record just read while
        # _process runs, bytes of our own (a message split across records) otherwise
        self._hs_in = b""
        self._hs_out = bytearray()  # handshake messages waiting for a record
        self.transcript = self._new_transcript()
        self.pending_op = None
        self._next_op_id = 1
        self._after_op = None
        self.established = False  # a first handshake has completed
        self.renegotiating = False
        self.client_verify_data = b""
        self.server_verify_data = b""
        self.secure_renegotiation = False
        self.renegotiation_count = 0
        self.session_used_ems = False
        self.max_fragment_length = None
        self._reset_handshake()

    def _limit_fragments(self, size):
        # RFC 6066: both directions' records carry at most `size` plaintext bytes
        self.max_fragment_length = size
        self.records.max_fragment = size
        self.records.max_incoming = size

    def _reset_handshake(self):
        self.suite = None
        self.client_random = None
        self.server_random = None
        self.master_secret = None
        self.use_ems = False
        self.use_etm = False
        self.peer_certificate = None
        self.pending_protections = None
        self.server_name = None
        self.client_cert_requested = False
        self.session_id = b""
        self._key_index = 0  # a server's certificate and key for this handshake (SNI)
        self.session = None  # the Session this handshake resumes or makes
        self.resumed = False
        # and each role's own (ClientConnection, ServerConnection): nothing of one
        # handshake survives into a renegotiation's

    # --- caller API ---------------------------------------------------------------

    def receive_data(self, data=b""):
        # Feed bytes from the peer (and any buffered before); returns the events they
        # produced.
        self.buffer_data(data)
        if self.state != CLOSED:
            self._run(self._process)
        return self.next_events()

    def buffer_data(self, data):
        # Keep bytes from the peer for the next receive_data(), without running the
        # engine: a driver that gets them in small pieces (the board: link frames)
        # buffers each as it comes, straight into the record buffer, and runs the
        # engine once per batch.
        if self.state != CLOSED and data:
            self.records.feed(data)

    def next_events(self):
        ev = self.events
        self.events = []
        return ev

    def data_to_send(self):
        if self.pending_op is None:  # a flight waiting on a key operation goes out whole
            self._flush_handshake()
        data = bytes(self.out)
        self.out = bytearray()
        return data

    @property
    def closed(self):
        return self.state == CLOSED

    @property
    def handshaking(self):
        return self.state != CONNECTED and self.state != CLOSED

    def send_application_data(self, data):
        if not self.established or self.state == CLOSED:
            raise ValueError("no established TLS session to send on")
        self._write_record(APPLICATION_DATA, data)

    def abort(self, alert, reason):
        # End the connection with a fatal alert of the caller's choosing (an application
        # that refuses what it was asked); a ConnectionClosed event follows.
        self._run(self._raise, TLSError(alert, reason))
        return self.next_events()

    def close(self):
        # Send close_notify and stop; the caller then closes the transport.
        if self.state != CLOSED:
            self._flush_handshake()
            self._write_record(ALERT, bytes([WARNING, CLOSE_NOTIFY]))
            self._close()

    def key_operation_result(self, op_id, result):
        # Resume after a KeyOperationRequest with the key's answer.
        if self.pending_op is None or self.pending_op.op_id != op_id:
            return self.next_events()
        op = self.pending_op
        self.pending_op = None
        self._trace("key_op_done", op.kind, op)
        after = self._after_op
        self._after_op = None
        self._run(lambda: after(op, result))
        self._run(self._process)
        return self.next_events()

    def key_operation_failed(self, op_id, reason):
        # The key could not do the operation (token gone, device error, ...).
        if self.pending_op is not None and self.pending_op.op_id == op_id:
            self.pending_op = None
            self._run(self._raise, TLSError(INTERNAL_ERROR, "private key operation failed: %s" % reason))
        return self.next_events()

    def cancel_key_operation(self):
        if self.pending_op is not None:
            self.pending_op = None
            self._fail(TLSError(INTERNAL_ERROR, "private key operation cancelled"))
        return self.next_events()

    # --- engine core ----------------------------------------------------------------

    def _raise(self, err):
        raise err

    def _run(self, fn, *args):
        if self.state == CLOSED:
            return
        try:
            fn(*args)
        except TLSError as e:
            self._fail(e)
        except MemoryError:
            self._fail(TLSError(INTERNAL_ERROR, "out of memory"))
        except Exception as e:  # a bug must not become a traceback in the caller's loop
            self._fail(TLSError(INTERNAL_ERROR, "internal error: %s: %s" % (type(e).__name__, e)))

    def _fail(self, err):
        if self.state == CLOSED:
            return
        self._hs_out = bytearray()
        self._trace("alert_sent", err.alert, err.reason)
        try:
            self._write_record(ALERT, bytes([FATAL, err.alert]))
        except Exception:
            pass
        self._close()
        self.pending_op = None
        self.events.append(ConnectionClosed(False, err.alert, err.reason, True))

    def _process(self):
        try:
            self._read_records()
        finally:
            # a view of the record buffer must not outlive the next feed()
            if type(self._hs_in) is memoryview:
                self._hs_in = bytes(self._hs_in)

    def _read_records(self):
        while self.state != CLOSED and self.pending_op is None:
            if self._next_handshake_message():
                continue
            rec = self.records.next_record()
            if rec is None:
                return
            content_type, data = rec
            if content_type == HANDSHAKE:
                hs = self._hs_in
                if not hs:
                    hs = data  # messages are read where the record lies
                elif type(hs) is bytearray:
                    # ours, and no view of it is out (a dispatch leaves a view of the
                    # rest in its place): the message grows in place, however many
                    # records it comes in
                    hs += data
                else:  # the rest of a message that began in an earlier record
                    hs = bytearray(hs)
                    hs += data
                self._hs_in = hs
                if len(hs) >= 4:
                    n = (hs[1] << 16) | (hs[2] << 8) | hs[3]
                    if n > self.config.max_handshake_message and not (
                        hs[0] == CLIENT_HELLO and n <= self.max_client_hello
                    ):
                        raise TLSError(ILLEGAL_PARAMETER, "handshake message of %d bytes is too large" % n)
            elif content_type == CHANGE_CIPHER_SPEC:
                if len(data) != 1 or data[0] != 1:  # the only ChangeCipherSpec there is
                    raise TLSError(UNEXPECTED_MESSAGE, "ChangeCipherSpec body is not the byte 1")
                if self._hs_in:
                    raise TLSError(UNEXPECTED_MESSAGE, "ChangeCipherSpec inside a handshake message")
                self._dispatch(CCS, None)
            elif content_type == ALERT:
                self._on_alert(data)
            else:
                self._on_application_data(data)

    def _next_handshake_message(self):
        buf = self._hs_in
        if len(buf) < 4:
            return False
        n = (buf[1] << 16) | (buf[2] << 8) | buf[3]
        if len(buf) < 4 + n:
            return False
        msg_type = buf[0]
        mv = memoryview(buf)  # the message is parsed and hashed in place, not copied
        self._hs_in = mv[4 + n :] if len(buf) > 4 + n else b""
        self._dispatch(msg_type, mv[: 4 + n])
        return True

    def _dispatch(self, event, raw=None):
        # The one place an event meets the table: a handshake message (raw: its bytes,
        # header included), CCS, or a local event.
        table = self.TRANSITIONS.get(self.state, {})
        entry = table.get(event)
        if entry is None:
            raise TLSError(UNEXPECTED_MESSAGE, "%s not expected in state %s" % (_event_name(event), self.state))
        handler, next_states = entry
        self.before_dispatch(event)
        try:
            msg = None
            if type(event) is int:
                cls = MESSAGE_CLASSES[event]
                msg = cls.parse(memoryview(raw)[4:])
                if event != 0:  # HelloRequest is not part of the transcript
                    # the peer's Finished is checked against the messages before it
                    self.transcript.add(raw, event == FINISHED)
            if self.config.trace is not None and (msg is not None or event == CCS):
                self._trace("recv", event, msg, 1 if raw is None else len(raw))
            pick = getattr(self, handler)(msg)
            if self.state != CLOSED:
                self._enter(next_states[0] if pick is None else pick, next_states, event)
        finally:
            self.after_dispatch(event)

    def _enter(self, state, allowed, event):
        if state not in allowed:  # a handler's bug, caught before it takes effect
            raise TLSError(
                INTERNAL_ERROR, "%s in state %s picked %s, not in the table" % (_event_name(event), self.state, state)
            )
        self.state = state

    def _close(self):
        self.state = CLOSED

    # Public hooks around each dispatched event (the board times its steps with them):
    # called with the event before its message is parsed, and after its handler ran
    # and the state moved (or the handler failed: the connection is then closing).
    def before_dispatch(self, event):
        pass

    def after_dispatch(self, event):
        pass

    def _on_alert(self, data):
        if len(data) != 2:
            raise TLSError(DECODE_ERROR, "malformed alert")
        level, desc = data[0], data[1]
        self._trace("alert_recv", desc, level)
        self.events.append(AlertReceived(level, desc, alert_name(desc)))
        if desc == CLOSE_NOTIFY:
            self._flush_handshake()
            self._write_record(ALERT, bytes([WARNING, CLOSE_NOTIFY]))
            self._close()
            self.events.append(ConnectionClosed(True, CLOSE_NOTIFY, "peer closed the connection"))
        elif level == FATAL or desc not in ALERT_NAMES:
            self._close()
            self.events.append(
                ConnectionClosed(False, desc, "peer sent alert %s" % alert_name(desc), False)
            )
        elif desc == NO_RENEGOTIATION:
            # a warning: the peer refuses a renegotiation; only the table knows where
            self._dispatch(RENEGOTIATION_REFUSED)

    def _on_application_data(self, data):
        if not self.established:
            raise TLSError(UNEXPECTED_MESSAGE, "application data before the handshake")
        if not len(data):
            return  # RFC 5246 §6.2.1: valid (traffic analysis padding), and nothing to deliver
        # RFC 5246 §6.2.1: records of different content types may interleave, so data
        # may come between a renegotiation's messages, or inside one split over records
        self.events.append(ApplicationData(bytes(data)))

    # --- output -----------------------------------------------------------------------

    def _trace(self, event, what, msg=None, size=0):
        # Observation hook for traces and diagrams (config.trace): called as
        # trace(connection, event, what, message, size) where event is "recv", "send",
        # "alert_sent", "alert_recv", "key_op", "key_op_done" or "milestone".
        fn = self.config.trace
        if fn is not None:
            fn(self, event, what, msg, size)

    def _send_handshake(self, msg):
        raw = frame(msg.msg_type, msg.write())
        if self.config.trace is not None:
            self._trace("send", msg.msg_type, msg, len(raw))
        if msg.msg_type != 0:
            self.transcript.add(raw)
        self._hs_out += raw

    def _flush_handshake(self):
        # the pending messages go out as records, written straight into self.out (a
        # flight with a client certificate is over 1 KB: no copies of it on the board)
        data = self._hs_out
        if data:
            self._hs_out = bytearray()
            self.records.write(HANDSHAKE, data, self.out)

    def _write_record(self, content_type, data):
        self._flush_handshake()
        self.records.write(content_type, data, self.out)

    def _send_alert(self, level, desc):
        self._write_record(ALERT, bytes([level, desc]))

    # --- key schedule steps shared by both roles -------------------------------------

    def _new_transcript(self):
        # the bytes are kept where a CertificateVerify is signed or checked: by a
        # server, and by a client that has a certificate to send and signs messages
        cfg = self.config
        return Transcript(self.backend, not self.is_client or bool(cfg.certificate_chain and not cfg.sign_digest))

    def _session_hash(self):
        # RFC 7627 session_hash: the transcript through ClientKeyExchange (EMS only)
        return self.transcript.digest() if self.use_ems else None

    def _derive_master_secret(self, pre_master_secret, session_hash):
        # Step 6/7: master secret (RFC 7627 when negotiated) and the session keys.
        b = self.backend
        h = self.suite.prf_hash
        if self.use_ems:
            self.master_secret = keyschedule.extended_master_secret(b, h, pre_master_secret, session_hash)
        else:
            self.master_secret = keyschedule.master_secret(
                b, h, pre_master_secret, self.client_random, self.server_random
            )
        self._derive_keys()

    def _derive_keys(self):
        # the session keys from the master secret (a resumed one too) and this
        # handshake's randoms
        b = self.backend
        h = self.suite.prf_hash
        block = keyschedule.key_block(
            b, h, self.master_secret, self.server_random, self.client_random,
            keyschedule.key_block_length(self.suite),
        )
        self.pending_protections = make_protections(b, self.suite, block, self.use_etm)
        self._trace("milestone", "keys")

    def _send_change_cipher_spec(self):
        self._trace("send", CCS, None, 1)
        self._write_record(CHANGE_CIPHER_SPEC, b"\x01")
        client_write, server_write = self.pending_protections
        self.records.set_write_protection(client_write if self.is_client else server_write)

    def _on_change_cipher_spec(self, msg):
        if self.pending_protections is None:
            raise TLSError(UNEXPECTED_MESSAGE, "ChangeCipherSpec before the key exchange")
        client_write, server_write = self.pending_protections
        self.records.set_read_protection(server_write if self.is_client else client_write)

    def _verify_data(self, from_client, transcript_hash):
        return keyschedule.verify_data(
            self.backend, self.suite.prf_hash, self.master_secret, from_client, transcript_hash
        )

    def _send_finished(self):
        vd = self._verify_data(self.is_client, self.transcript.digest())
        if self.is_client:
            self.client_verify_data = vd
        else:
            self.server_verify_data = vd
        self._send_handshake(Finished(vd))
        self._flush_handshake()

    def _check_peer_finished(self, msg):
        # Steps 8/9: the peer's Finished, compared in constant time.
        expected = self._verify_data(not self.is_client, self.transcript.digest_before_last())
        if not ct_equal(expected, msg.verify_data):
            raise TLSError(DECRYPT_ERROR, "Finished verify_data does not match: handshake was tampered with or keys differ")
        if self.is_client:
            self.server_verify_data = expected
        else:
            self.client_verify_data = expected

    def _handshake_complete(self):
        renegotiation = self.established
        if renegotiation:
            self.renegotiation_count += 1
        self.established = True
        self.session_used_ems = self.use_ems
        self.renegotiating = False
        self.transcript = self._new_transcript()
        if self.session is None:
            self.session = self._new_session()
        self._trace("milestone", "complete")
        self.events.append(
            HandshakeComplete(
                "TLS 1.2",
                self.suite.name,
                self.use_ems,
                self.secure_renegotiation,
                self.use_etm,
                self.peer_certificate,
                self.server_name,
                renegotiation,
                self.client_cert_requested,
                self.resumed,
                self.session,
            )
        )

    def _new_session(self):
        # the Session this full handshake made: a server keeps the client's certificate
        # as DER (to seal it), a client the server's as parsed
        peer = self.peer_certificate
        if peer is not None and not self.is_client:
            peer = bytes(peer.der)
        from .session import Session  # (here: the board loads it once it has a session to keep)

        # a client's session is for the name it asked for, a server's for the one it got
        name = self.config.server_name if self.is_client else self.server_name
        return Session(self.session_id, self.suite.code, self.master_secret, self.use_ems, name, peer, self._now())

    def _may_renegotiate(self):
        # RFC 5746 secure renegotiation only, when the configuration allows it, up to its limit
        return (
            self.secure_renegotiation
            and self.config.allow_renegotiation
            and self.renegotiation_count < self.config.max_renegotiations
        )

    def _check_ems_kept(self):
        # A renegotiation may not drop extended master secret once a session used it
        # (RFC 7627 §5.3 asks this of resumption; the same downgrade applies here).
        if self.established and self.session_used_ems and not self.use_ems:
            raise TLSError(HANDSHAKE_FAILURE, "renegotiation without extended_master_secret after a session with it")

    def _now(self):
        f = self.config.now
        if f is None:
            import time

            return int(time.time())
        return int(f())

    def _verify_chain(self, chain, purpose, hostname, key_exchange="RSA"):
        leaf = pathvalidation.verify_chain(
            self.backend, chain, self.config.trust_anchors, self._now(), hostname, purpose,
            self.config.signature_cache, key_exchange, self.config.allow_cn,
        )
        revoked = self.config.revoked
        if revoked and (bytes(leaf.issuer), leaf.serial) in revoked:
            raise TLSError(
                CERTIFICATE_REVOKED,
                "certificate %s (serial %x) is revoked by its CA" % (leaf.subject_str(), leaf.serial),
            )
        self._trace("milestone", purpose + "_authenticated", leaf)
        return leaf

    def _request_key_operation(self, kind, data, after, scheme=None, hash_name=None):
        op = KeyOperationRequest(self._next_op_id, kind, data, scheme, hash_name, self._key_index)
        self._next_op_id += 1
        self.pending_op = op
        self._after_op = after
        self._trace("key_op", kind, op)
        self.events.append(op)
