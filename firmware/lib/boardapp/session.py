# One RUN of the board's TLS client (boardapp/__init__.py says what the app does):
# tlscore's ClientConnection over the link, the board's key answering its "sign"
# requests, and the RESULT with the negotiated parameters, compute time per handshake
# step and the live heap at each step. Board (board.py) makes one per RUN; mbedtls.py
# subclasses it for MicroPython's own tls module.

import gc

from micropython import const

from hsmlink import protocol as P
from tlscore import suites
from tlscore.backend_micropython import BACKEND
from tlscore.client import WAIT_SERVER_HELLO, ClientConnection
from tlscore.config import TLSConfig
from tlscore.connection import CCS
from tlscore.constants import HANDSHAKE_NAMES
from tlscore.events import (
    SIGN,
    SIGN_DIGEST,
    ApplicationData,
    ConnectionClosed,
    HandshakeComplete,
    KeyOperationRequest,
)

BOARD_SUITES = (
    suites.TLS_RSA_WITH_AES_128_GCM_SHA256,
    suites.TLS_RSA_WITH_AES_128_CBC_SHA256,
    suites.TLS_RSA_WITH_AES_128_CBC_SHA,
)
_SESSION_TIMEOUT_MS = const(20000)
DEFAULT_MFL = 2048
# Application data to send comes from the host a slice at a time, as the board asks
# for it (WANT), and goes into records and onto the link before the next: neither it
# nor what comes back (straight on to the host as APP) is ever whole in the heap,
# whose free space is in pieces (a 4 KB block can be missing with 80 KB free).
_SEND_SLICE = const(2048)


class TimedClient(ClientConnection):
    # The engine, timed per message received (ticks = (ticks_us, ticks_diff)): what the board computes at each step
    # (Certificate: the chain check; ServerHelloDone: premaster encryption and keys).
    # The API's own events (initiate(), ...) are timed by the Session that calls them.
    steps = None
    ticks = None
    _t0 = 0

    def before_dispatch(self, event):
        self._t0 = self.ticks[0]()

    def after_dispatch(self, event):
        if type(event) is int:
            self.steps(HANDSHAKE_NAMES.get(event, str(event)), self.ticks[1](self.ticks[0](), self._t0))
        elif event == CCS:
            self.steps(event, self.ticks[1](self.ticks[0](), self._t0))


class Session:
    # RESULT when the board had no memory left to say more (a constant: it needs no heap)
    RESULT_OUT_OF_MEMORY = b'{"ok":false,"reason":"out of memory (the board could not report more)"}'

    def __init__(self, board, opts):
        self.board = board
        self.opts = opts
        self.t0 = board.port.ticks_ms()
        self.last_activity = self.t0
        self.unread = 0  # TLS bytes buffered in the engine, not yet run through it
        self.conn = None
        self.done = False
        self.steps = []  # [name, ms] in order; repeated names are summed
        self.handshakes = []
        self.received = 0  # bytes of application data; each went to the host as APP
        self.outbox = []  # application data to send: APP pieces from the host
        self.to_ask = 0  # bytes of "send_bytes" not yet asked for
        self.asked = 0  # bytes asked for (WANT) that have not arrived yet
        self.send_len = 0  # bytes to send in all, and to wait for back
        self.sent_app = False
        self.renegotiated_by_us = False
        self.heap_peak = 0
        self.heap_base = 0
        self.t_hello = 0
        self.cache_hits = board.signature_cache.hits
        self.premaster_used = board.premaster.used
        self.presigned = None
        self.nonce_key = None  # an ECDSA key whose next nonce poll() makes while we wait
        # gc.collect() at every step makes the figure exact and costs a few ms each
        self.measure_heap = opts.get("measure_heap", True)
        self.timeout = opts.get("timeout_ms", _SESSION_TIMEOUT_MS)
        self.result = {}

    # --- set-up -------------------------------------------------------------------------

    def start(self):
        b = self.board
        opts = self.opts
        names = opts.get("suites") or [s.name for s in BOARD_SUITES]
        offer = []
        for n in names:
            s = suites.lookup(n)
            if s is None or s not in BOARD_SUITES:
                raise ValueError("suite not offered by the board: %s" % n)
            offer.append(s)
        n = opts.get("send_bytes", 0)
        if not isinstance(n, int) or n < 0:
            raise ValueError("send_bytes must be a byte count")
        want = opts.get("anchor_sha256")
        if want and want not in b.anchor_fingerprints():
            raise ValueError("the board's trust anchor is not the CA the host expects")
        chain = []
        if opts.get("client_auth"):
            chain = b.client_chain()
            self._make_nonce_meanwhile()
        cfg = TLSConfig(
            cipher_suites=offer,
            trust_anchors=b.anchors(),
            server_name=opts.get("server_name"),
            verify_peer=True,
            certificate_chain=chain,
            now=b.now,
            signature_cache=b.signature_cache if opts.get("signature_cache", True) else None,
            sign_digest=True,  # CertificateVerify from the running hash: no transcript copy
        )
        # resumption ("resume": false turns it off): ask for a ticket, offer the last session
        if opts.get("resume", True):
            cfg.session_tickets = True
            s = b.tls_session
            if s is not None and s.server_name == cfg.server_name:
                cfg.session = s
        # the server we expect, if we met it before: its key, for PreparedPremaster (not
        # while a resumption is offered: it needs no premaster)
        self.expect_key = None
        if opts.get("prepare_premaster", True):
            cfg.prepared_premaster = b.premaster
            known = b.server_keys.get(opts.get("server_name"))
            if cfg.session is None and known is not None and not (b.premaster.ready and b.premaster.key == known):
                self.expect_key = known
        # RFC 6066: records of at most 2 KiB by default, so what the board buffers per
        # record fits its heap; "mfl": 0 offers nothing (16 KiB records)
        mfl = opts.get("mfl", DEFAULT_MFL)
        if mfl:
            cfg.max_fragment_length = mfl
        if mfl and mfl <= DEFAULT_MFL:
            cfg.record_buffer = b.record_buffer
        self.conn = TimedClient(cfg, BACKEND)
        self.conn.steps = self._add_step
        self.conn.ticks = (b.port.ticks_us, b.port.ticks_diff)
        gc.collect()
        self.heap_base = gc.mem_alloc()
        self._heap()
        b.link.send(P.OPEN, P.pack({"server_name": opts.get("server_name")}))

    def on_opened(self):
        if self.conn is None or self.done:
            return
        self.t_hello = self.board.port.ticks_us()
        self._step("ClientHello", self.conn.initiate)
        self._handle(self.conn.next_events())
        self._push()

    # --- data from the host -----------------------------------------------------------

    def on_tls(self, data):
        # straight into the engine's record buffer; poll() runs the engine on it. Before
        # OPENED it is the end of the TCP connection a RUN replaced (its server's answer
        # to the old session's ClientHello, already on the link): not ours
        if self.conn is not None and not self.done and self.t_hello:
            self.conn.buffer_data(data)
            self.unread += len(data)

    def _run_engine(self):
        self.unread = 0
        self._handle(self._step(None, self.conn.receive_data))

    def on_close(self, why):
        # the server's last records (often the alert saying why) may still be waiting
        if not self.done and self.unread and self.conn is not None:
            self._run_engine()
        if not self.done:
            if not self.t_hello:  # never OPENED: the host could not reach the server
                self.finish(False, "no TCP connection to the server (%s)" % why)
            else:
                self.finish(False, "server closed the TCP connection (%s)" % why)

    def on_app(self, data):
        # bytes to send: the answer to a WANT, or the host's own; poll() sends them
        self.outbox.append(bytes(data))
        self.asked = max(0, self.asked - len(data))

    def poll(self, now):
        if self.done:
            return
        conn = self.conn
        if not self.unread and self.expect_key is not None and conn is not None and conn.state == WAIT_SERVER_HELLO:
            # our ClientHello is out; while the server answers, do step 4's RSA
            # operation for the key this server had last time
            n, e = self.expect_key
            self.expect_key = None
            self._step("prepare ClientKeyExchange", lambda: self.board.premaster.prepare(BACKEND, n, e))
            return
        if self.waiting_work():
            key = self.nonce_key
            try:
                if self._step("prepare CertificateVerify", lambda: key.prepare_step(BACKEND)):
                    self.nonce_key = None
            except MemoryError:
                raise
            except Exception:
                self.nonce_key = None  # (the nonce counter): the signature tries again, and says why
            return
        if self.unread and self.conn is not None:
            self.last_activity = now
            self._run_engine()
            self._push()
        elif (self.outbox or self.to_ask) and not self.board.link.queue and self._send_more():
            self.last_activity = now  # the link took the last slice: on to the next
        elif self.board.port.ticks_diff(now, self.last_activity) > self.timeout:
            self.finish(False, "timed out in state %s" % (self.conn.state if self.conn else "-"))

    def _make_nonce_meanwhile(self):
        # the next CertificateVerify's nonce, if idle time has not made it yet: a slice
        # at a time while the server's flight is on its way (an RSA key is not loaded
        # before it signs, and has nothing to make ahead)
        key = self.board._key
        if key is not None and key.kind == "ec" and not key.ready and self.board.key_error is None:
            self.nonce_key = key

    def waiting_work(self):
        # True while we wait for the server (its TCP connection, then its flight) with
        # nothing unread and the nonce for our signature still to make (Board.step then
        # does not sleep)
        return self.nonce_key is not None and not self.unread and self.conn is not None and not self.done

    # --- engine -----------------------------------------------------------------------

    def _step(self, state, fn):
        port = self.board.port
        t = port.ticks_us()
        r = fn()
        if state is not None:
            self._add_step(state, port.ticks_diff(port.ticks_us(), t))
        self._heap()
        return r

    def _add_step(self, name, us):
        # steps are reported in ms, to the 10 us
        ms = round(us / 1000, 2)
        if self.steps and self.steps[-1][0] == name:
            self.steps[-1][1] = round(self.steps[-1][1] + ms, 2)
        else:
            self.steps.append([name, ms])

    def _heap(self):
        if not self.measure_heap:
            return
        gc.collect()
        a = gc.mem_alloc()
        if a > self.heap_peak:
            self.heap_peak = a

    def _handle(self, events):
        for ev in events or ():
            self._on_event(ev)
            if self.done:
                return

    def _on_event(self, ev):
        conn = self.conn
        if isinstance(ev, KeyOperationRequest):
            # what the engine sent before asking (Certificate, ClientKeyExchange) goes
            # to the server first: it decrypts the premaster while we sign
            self._push()
            self.board.flush()
            self.nonce_key = None  # what is not made yet, sign makes now
            port = self.board.port
            t = port.ticks_us()
            try:
                key = self.board.key()
                if ev.kind not in (SIGN, SIGN_DIGEST) or not key.can_sign(ev.scheme):
                    raise ValueError("board cannot do %s %s" % (ev.kind, ev.scheme))
                self.presigned = getattr(key, "ready", None)  # an ECDSA nonce made ahead
                if ev.kind == SIGN:
                    sig = key.sign(BACKEND, ev.hash_name, ev.data)
                else:
                    sig = key.sign_digest(BACKEND, ev.hash_name, ev.data)
            except Exception as e:
                # (the host hears why: a nonce counter the flash will not take, say)
                self.board.error("sign", str(e))
                more = conn.key_operation_failed(ev.op_id, str(e))
            else:
                more = conn.key_operation_result(ev.op_id, sig)
            self._add_step("sign CertificateVerify", port.ticks_diff(port.ticks_us(), t))
            self._heap()
            self._handle(more)
        elif isinstance(ev, HandshakeComplete):
            self.nonce_key = None  # not asked for a certificate: idle time goes on with it
            hs = {
                "suite": ev.cipher_suite,
                "ems": ev.extended_master_secret,
                "etm": ev.encrypt_then_mac,
                "secure_renegotiation": ev.secure_renegotiation,
                "renegotiation": ev.renegotiation,
                "client_cert": bool(ev.client_certificate_requested and conn.config.certificate_chain),
                "resumed": ev.resumed,
                "ms": self.board.port.ticks_diff(self.board.port.ticks_ms(), self.t0),
            }
            if ev.resumed:  # the server knows the board as the session it resumed does
                hs["client_cert"] = getattr(ev.session, "client_cert", False)
            if self.opts.get("resume", True) and ev.session is not None:
                s = ev.session
                if not ev.resumed:  # keep the server's name, not its certificate
                    s.peer_certificate = _Peer(ev.peer_subject)
                    s.client_cert = hs["client_cert"]
                self.board.tls_session = s
            if conn.config.prepared_premaster is not None and conn.peer_certificate is not None \
                    and conn.peer_certificate.public_key is not None:
                k = conn.peer_certificate.public_key
                self.board.remember_server(self.opts.get("server_name"), k.n, k.e)
            hs["prepared_premaster"] = self.board.premaster.used > self.premaster_used
            if self.presigned is not None:
                hs["presigned"] = self.presigned
                self.presigned = None
            self.premaster_used = self.board.premaster.used
            cache = conn.config.signature_cache
            if cache is not None:
                hs["cached_signatures"] = cache.hits - self.cache_hits
                self.cache_hits = cache.hits
            if not self.handshakes:
                # from our ClientHello to the server's Finished checked: what a TLS
                # client's handshake() call takes once TCP is up
                hs["us"] = self.board.port.ticks_diff(self.board.port.ticks_us(), self.t_hello)
            mfl = getattr(conn, "max_fragment_length", None)
            if mfl:
                hs["mfl"] = mfl
            if not self.handshakes:
                hs["server_subject"] = ev.peer_subject
            self.handshakes.append(hs)
            self._next_action()
        elif isinstance(ev, ApplicationData):
            # straight on to the host, which keeps it (the RESULT says how much)
            self.received += len(ev.data)
            self.board.link.send(P.APP, ev.data)
            self._next_action()
        elif isinstance(ev, ConnectionClosed):
            from tlscore.constants import alert_name  # (an ending: not in the module's globals)

            if ev.clean:
                self.finish(bool(self.handshakes), "server closed the TLS connection")
            elif ev.local:
                self.finish(False, "board sent alert %s: %s" % (alert_name(ev.alert), ev.reason))
            else:
                self.finish(False, "server sent alert %s" % alert_name(ev.alert))

    def _next_action(self):
        conn = self.conn
        opts = self.opts
        if conn.handshaking or conn.closed:
            return
        if opts.get("renegotiate") and not self.renegotiated_by_us:
            self.renegotiated_by_us = True
            if opts.get("client_auth"):
                self._make_nonce_meanwhile()
            conn.renegotiate()
            return
        if not self.sent_app:
            self.sent_app = True
            send = opts.get("send")
            if send:  # in RUN itself: a few bytes
                send = send.encode()
                self.outbox.append(send)
                self.send_len = len(send)
            self.to_ask = opts.get("send_bytes", 0)  # asked for a slice at a time
            self.send_len += self.to_ask
            self._send_more()
        if self.outbox or self.to_ask or self.asked or self.received < self.send_len:
            return
        self.finish(True, None)

    def _send_more(self):
        # -> whether it did something: the slice that has arrived into records and
        # onto the link, or a WANT for the next one
        conn = self.conn
        if conn is None or conn.handshaking or conn.closed or self.asked:
            return False
        if self.outbox:
            data = self.outbox[0] if len(self.outbox) == 1 else b"".join(self.outbox)
            self.outbox = []
            conn.send_application_data(data)
            self._push()
            return True
        if self.to_ask:
            self.asked = min(self.to_ask, _SEND_SLICE)
            self.to_ask -= self.asked
            self.board.link.send(P.WANT, P.pack({"n": self.asked}))
            return True
        return False

    def _push(self):
        data = self.conn.data_to_send() if self.conn is not None else b""
        if data:
            self.board.link.send(P.TLS, data)

    # --- the end ------------------------------------------------------------------------

    def finish(self, ok, reason):
        if self.done:
            return
        self.done = True
        try:
            self._finish(ok, reason)
        except MemoryError:
            # not even room to report (a fragmented heap): drop the connection and send
            # the shortest RESULT there is, so the host does not wait out its timeout
            self.conn = None
            gc.collect()
            self.board.link.send(P.RESULT, self.RESULT_OUT_OF_MEMORY)

    def _finish(self, ok, reason):
        conn = self.conn
        if conn is not None and not conn.closed:
            conn.close()
        self._push()
        self.board.link.send(P.CLOSE, P.pack({"why": reason or "done"}))
        gc.collect()
        r = {
            "ok": ok and bool(self.handshakes),
            "reason": reason,
            "handshakes": self.handshakes,
            "steps": self.steps,
            "heap_peak": self.heap_peak,
            "heap_base": getattr(self, "heap_base", 0),
            "heap_total": gc.mem_free() + gc.mem_alloc(),
            "received_bytes": self.received,
        }
        if self.handshakes:
            first = self.handshakes[0]
            for k in ("suite", "ems", "secure_renegotiation", "server_subject", "client_cert", "cached_signatures",
                      "prepared_premaster", "resumed"):
                r[k] = first.get(k)
            r["handshake_ms"] = first["ms"]
            r["handshake_us"] = first.get("us")
            r["renegotiations"] = len(self.handshakes) - 1
        elif conn is not None and conn.config.session is not None:
            self.board.tls_session = None  # a resumption that failed is not offered again
        r["total_ms"] = self.board.port.ticks_diff(self.board.port.ticks_ms(), self.t0)
        if self.opts.get("autorun"):
            r["autorun"] = self.opts["autorun"]
        self.result = r
        self.board.link.send(P.RESULT, P.pack(r))
        self.conn = None


class _Peer:
    # what a kept session remembers of the server's certificate: its name for RESULT
    public_key = None

    def __init__(self, subject):
        self.subject = subject

    def subject_str(self):
        return self.subject
