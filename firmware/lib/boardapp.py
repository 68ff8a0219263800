# The board's application: link mode over the serial port, and the TLS client run on
# the host's command. The host sends RUN; the board asks the host to OPEN a TCP
# connection, drives tlscore's ClientConnection (the host only carries TLS records
# between the link and TCP), answers the engine's "sign" requests with its own key,
# and reports a RESULT with the negotiated parameters, compute time per handshake
# step and the live heap at each step. Trust anchor, certificate and key are files on
# the board's flash (ca.pem, client.pem, client.key): the host is exactly what the
# board must not have to trust, so it never supplies a trust anchor or sees the key.
# What the host may still ask is held to docs/board-security.md: a new key,
# certificate or anchor only on a request signed by the anchor's CA (boardtrust.py,
# loaded only then), the REPL only in development mode, a TIME never before the latest
# one the board accepted.
#
# Loop order matters on a classic ESP32: read everything waiting, acknowledge it at
# once, and only then run the engine, so the host's next ~200 bytes can land in the
# 260-byte UART ring while we compute.

import gc

from hsmlink import VERSION
from hsmlink import protocol as P
from hsmlink.framing import MAX_PAYLOAD
from hsmlink.link import Link
from tlscore import suites, x509
from tlscore.backend_micropython import BACKEND
from tlscore.client import WAIT_SERVER_HELLO, ClientConnection, PreparedPremaster
from tlscore.config import TLSConfig
from tlscore.connection import CCS
from tlscore.constants import HANDSHAKE_NAMES, alert_name
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
SESSION_TIMEOUT_MS = 20000
DEFAULT_MFL = 2048
# Application data to send comes from the host a slice at a time, as the board asks
# for it (WANT), and goes into records and onto the link before the next: neither it
# nor what comes back (straight on to the host as APP) is ever whole in the heap,
# whose free space is in pieces (a 4 KB block can be missing with 80 KB free).
SEND_SLICE = 2048
# No TIME before this is taken: the firmware's build time (a constant here; `hsmtls
# board deploy` writes the build's own, tools.build), and the latest time the board has
# accepted, kept in TIME_FLOOR on its flash. That file is rewritten only when the time
# has moved on by more than TIME_FLOOR_STEP, to spare the flash: after a reset the
# clock may go back by at most that much.
BUILD_TIME = 1796083200  # 2026-12-01
TIME_FLOOR = "timefloor"
TIME_FLOOR_STEP = 86400


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
        self.timeout = opts.get("timeout_ms", SESSION_TIMEOUT_MS)
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
            self.asked = min(self.to_ask, SEND_SLICE)
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
            self.board.link.send(P.RESULT, _RESULT_OUT_OF_MEMORY)

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


# RESULT when the board had no memory left to say more (a constant: it needs no heap)
_RESULT_OUT_OF_MEMORY = b'{"ok":false,"reason":"out of memory (the board could not report more)"}'


def _port_call(port, name):
    # what a board port may not have (one written before it was asked for): False, the
    # safe answer for both (production mode, an RNG not known to be seeded)
    fn = getattr(port, name, None)
    return bool(fn()) if fn is not None else False


def _missing(name):
    return ValueError("%s is missing on the board's flash (hsmtls board provision; an emulated board: "
                      "hsmtls board emulate --ca/--cert/--key)" % name)


class Board:
    def __init__(self, port):
        self.port = port
        self.serial = port.Serial()
        # board -> host: the host reads promptly and has memory, so a wider window
        self.link = Link(window=1024, rto=150, ticks_diff=port.ticks_diff)
        self.rx = bytearray(getattr(port, "RX_CHUNK", 256))
        # every session's TLS record buffer (the "allocated once and reused"):
        # one record of max_fragment_length plaintext with the largest CBC overhead (IV,
        # MAC, 256 bytes of padding) and one link frame besides (more grows the
        # engine's own copy, rarely). Made first, at boot, while the heap is in one
        # piece: later its 2.5 KB may find no free block that large.
        self.record_buffer = bytearray(5 + DEFAULT_MFL + 320 + MAX_PAYLOAD)
        self.session = None
        # the last TLS session (RAM only: ID or ticket, master secret), offered to the
        # next server of that name: a resumed handshake needs no RSA operation and no
        # certificate at all
        self.tls_session = None
        self.time = None  # (unix seconds, ticks_ms when received)
        self._anchors = None
        self._chain = None
        self._key = None
        self._key_checked = False
        # the server's certificate signatures this board has verified (RSA is its
        # slowest step); the rest of the chain check runs every time
        self.signature_cache = x509.SignatureCache()
        self.premaster = PreparedPremaster()
        self.server_keys = {}  # server_name -> (n, e) of its certificate, last seen
        self.last_key = None
        self.sessions = 0
        self.aborted = 0
        self.errors = 0
        self.running = True
        self.keygen = None  # (generator, subject, tests done) while making a key
        self.idle_pending = False  # idle_work() has more to do
        # a session the board starts on its own (autorun.json: RUN's opts + "every_s"),
        # once the host has given the time; every_s 0: once a boot
        self.autorun = None  # its opts (boardautorun keeps the rest)
        self.autorun_error = None  # why autorun.json was ignored at boot: told to each host
        # development mode: the REPL is reachable from the link (a `dev` file on the
        # flash, or the port's button held at boot); a production board refuses it
        self.dev = self._exists("dev") or _port_call(port, "dev_button")
        self.challenge = None  # for the next signed request (boardtrust.challenge)
        self.time_kept = None  # the time kept in TIME_FLOOR, read when a TIME comes
        self.time_latest = 0  # the latest TIME accepted since the board started
        self.key_error = None  # why the key could not prepare a nonce (told once)

    # --- things on the board's flash ---------------------------------------------------

    def _read(self, name):
        try:
            with open(self.port.flash_path(name), "rb") as f:
                return f.read()
        except OSError:
            raise _missing(name) from None

    def _write(self, name, data):
        import os

        path = self.port.flash_path(name)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        try:
            os.remove(path)
        except OSError:
            pass
        os.rename(path + ".tmp", path)

    def _exists(self, name):
        import os

        try:
            os.stat(self.port.flash_path(name))
            return True
        except OSError:
            return False

    def _digest(self, name):
        import binascii
        import hashlib

        return binascii.hexlify(hashlib.sha256(self._read(name)).digest()).decode()

    # --- provisioning -----------------------------------------------------------------

    def start_keygen(self, opts):
        kind = opts.get("type", "rsa")
        if kind == "ec":
            # compile the curve code first, while the heap has the most room for it
            gc.collect()
            from tlscore import p256  # noqa: F401
        import boardgen

        if self.session is not None or self.keygen is not None:
            raise ValueError("busy")
        bits = opts.get("bits", 2048)
        # the new key's randomness and its CSR's nonce go through the counter too
        counter = self.port.flash_path("client.key.boots")
        if kind == "ec":
            job = boardgen.keygen_ec(counter)
        elif kind != "rsa":
            raise ValueError("type must be rsa or ec")
        elif bits not in (1024, 2048, 3072):
            raise ValueError("bits must be 1024, 2048 or 3072")
        else:
            job = boardgen.keygen(bits, counter=counter)
        subject = [tuple(x) for x in opts.get("subject") or [["CN", "hsmtls board"]]]
        self.keygen = [job, subject, 0]

    def keygen_step(self):
        job = self.keygen
        key = next(job[0])
        if key is None:
            job[2] += 1
            if job[2] % 25 == 0:
                self.log("keygen: %d prime candidates tested" % job[2])
            return
        import boardgen

        self.keygen = None
        # the new key waits beside the old one until a certificate for it arrives
        self._write("client.key.new", boardgen.key_text(key).encode())
        self.link.send(P.CSR, boardgen.csr(key, BACKEND, job[1]))

    def install(self, opts):
        import boardkey

        new_key = boardkey.load(self.port.flash_path("client.key.new"))
        ders = x509.pem_to_der_list(opts.get("cert", "").encode())
        if not ders:
            raise ValueError("no certificate in INSTALL")
        pk = x509.parse_certificate(ders[0]).public_key
        if pk is None or not new_key.matches(pk):
            raise ValueError("the certificate is not for the key this board generated")
        ca = opts.get("ca", "").encode()
        if not x509.load_anchors(ca):
            raise ValueError("no trust anchor in INSTALL")
        self._write("ca.pem", ca)
        self._write("client.pem", opts["cert"].encode())
        import os

        key_path = self.port.flash_path("client.key")
        try:
            os.remove(key_path)
        except OSError:
            pass
        os.rename(self.port.flash_path("client.key.new"), key_path)
        self._anchors = self._chain = self._key = None
        self._key_checked = False
        files = {}
        for name in ("ca.pem", "client.pem"):
            files[name] = self._digest(name)
        self.link.send(P.INSTALLED, P.pack({"files": files}))

    def _pem(self, name):
        # the certificates in a PEM file, read a line at a time (no copy of the text)
        try:
            f = open(self.port.flash_path(name), "rb")
        except OSError:
            raise _missing(name) from None
        with f:
            return x509.pem_to_der_list(f)

    def anchors(self):
        if self._anchors is None:
            self._anchors = [x509.parse_certificate(der) for der in self._pem("ca.pem")]
        return self._anchors

    def anchor_fingerprints(self):
        import binascii
        import hashlib

        return [binascii.hexlify(hashlib.sha256(a.der).digest()).decode() for a in self.anchors()]

    def client_chain(self):
        if self._chain is None:
            self._chain = self._pem("client.pem")
        return self._chain

    def key(self):
        if self._key is None:
            # the key and its code (compiled, on a board that runs sources) stay for
            # good: collect first, so they land in low holes, not amid garbage where
            # they split the free heap (seen as out-of-memory in later handshakes)
            gc.collect()
            import boardkey

            self._key = boardkey.load(self.port.flash_path("client.key"))
        return self._key

    def remember_server(self, name, n, e):
        if name not in self.server_keys and len(self.server_keys) >= 4:
            self.server_keys.pop(next(iter(self.server_keys)))
        self.server_keys[name] = (n, e)
        self.last_key = (n, e)

    def idle_work(self):
        # Between connections: step 4's RSA operation for the server we talked to
        # last, so that the next handshake with it does not wait for it. (On an
        # ESP32 this blocks the loop ~100 ms; the host's window keeps what it sends
        # meanwhile within the UART ring.) -> True while there is more to do: the
        # loop then only glances at the port before the next piece.
        k = self.last_key
        if k is not None and not (self.premaster.ready and self.premaster.key == k):
            self.premaster.prepare(BACKEND, k[0], k[1])
            return True
        # With an ECDSA key: the next CertificateVerify's nonce, R and k^-1, a slice
        # per loop (about 1 ms here, a quarter of the whole). The file's first line
        # says which key it is: an RSA key is not loaded before it has to sign.
        if self._key is None and not self._key_checked:
            self._key_checked = True  # once; install() clears it
            try:
                with open(self.port.flash_path("client.key")) as f:
                    ec = f.readline().strip() == "type=ec"
                if ec:
                    self.key()
            except Exception:
                pass  # no key yet, or a bad one: signing will say so
        key = self._key
        if key is not None and key.kind == "ec" and not key.ready and self.key_error is None:
            try:
                key.prepare_step(BACKEND)
            except Exception as e:
                # (a nonce counter the flash will not take): said once; a signature
                # tries again, and refuses while it fails
                self.key_error = str(e)
                self.error("nonce", self.key_error)
                return False
            return not key.ready
        return False

    def set_time(self, t):
        # the host's TIME, unless it is earlier than what the board has already seen:
        # the latest TIME it accepted (from any host since it started), the one kept on
        # its flash, or its firmware's build
        if self.time_kept is None:
            try:
                self.time_kept = int(self._read(TIME_FLOOR))
            except Exception:
                self.time_kept = 0  # none yet (or unreadable: the build time holds)
        floor = max(self.time_latest, self.time_kept, BUILD_TIME)
        if t < floor:
            self.error("time", "TIME %s is before %s, the latest time this board has accepted: its clock never "
                       "goes back (docs/board-security.md)" % (x509.format_time(t), x509.format_time(floor)))
            return
        self.time = (t, self.port.ticks_ms())
        self.time_latest = t
        if t > self.time_kept + TIME_FLOOR_STEP:
            try:
                self._write(TIME_FLOOR, b"%d" % t)
                self.time_kept = t
            except OSError as e:
                self.error("time", "flash: cannot keep the time's lower bound (%s)" % e)

    def now(self):
        if self.time is None:
            raise ValueError("no time from the host yet")
        t, ticks = self.time
        return t + self.port.ticks_diff(self.port.ticks_ms(), ticks) // 1000

    # --- the link ---------------------------------------------------------------------

    def hello(self, sync=None):
        info = self.port.info()
        if sync is not None:
            info["sync"] = sync
        info["v"] = VERSION
        info["features"] = ["provision", "ecdsa", "autorun", "trust"]
        info["rng"] = _port_call(self.port, "rng_seeded")  # os.urandom truly random
        if self.dev:
            info["dev"] = True
        info["sessions"] = self.sessions
        info["aborted"] = self.aborted
        payload = P.pack(info)
        # HELLO is one unsequenced frame: what the host only prints goes first, the
        # features it decides by (provision, ecdsa, autorun, trust) last
        for k in ("platform", "heap", "freq", "rng", "features"):
            if len(payload) <= MAX_PAYLOAD:
                break
            info.pop(k, None)
            payload = P.pack(info)
        return payload

    def log(self, text):
        self.link.send(P.LOG, text.encode())

    def error(self, where, reason):
        self.errors += 1
        self.link.send(P.ERROR, P.pack({"where": where, "reason": reason}))

    def flush(self):
        out = self.link.output(self.port.ticks_ms())
        if out:
            self.serial.write(out)

    def abort_session(self, why):
        s = self.session
        if s is not None and not s.done:
            self.aborted += 1
            s.finish(False, why)
        self.session = None

    def on_frame(self, ftype, payload):
        link = self.link
        if ftype == P.SYNC:
            # a (new) host: whatever was in progress belongs to the old one, and autorun
            # waits for this one's TIME (a host that only configures the board, such as
            # `hsmtls board autorun`, sends none and so starts nothing)
            self.abort_session("host reconnected")
            self.time = None
            link.reset()
            link.send_unsequenced(P.HELLO, self.hello(P.unpack(payload).get("sync")))
            if self.autorun_error is not None:
                self.error("autorun.json", self.autorun_error)
        elif ftype == P.TIME:
            t = P.unpack(payload).get("t")
            if isinstance(t, int):
                self.set_time(t)
        elif ftype == P.RUN:  # the host's, or autorun's (boardautorun.step)
            self.abort_session("a new RUN arrived")
            self.sessions += 1
            try:
                opts = P.unpack(payload)
                engine = opts.get("engine", "hsmtls")
                if engine == "mbedtls":
                    # MicroPython's own tls module over this link: the yardstick
                    import boardmbedtls

                    s = boardmbedtls.MbedtlsSession(self, opts)
                elif engine == "hsmtls":
                    s = Session(self, opts)
                else:
                    raise ValueError("no such engine: %s" % engine)
                self.session = s
                s.start()
            except Exception as e:
                # refused at once, with why: out of memory too (a heap too small or in
                # pieces), which the host would otherwise wait out as a missing RESULT
                self.session = None
                gc.collect()
                self.error("run", "out of memory" if isinstance(e, MemoryError) else "%s: %s" % (type(e).__name__, e))
        elif ftype == P.OPENED:
            if self.session is not None:
                self.session.on_opened()
        elif ftype == P.TLS:
            if self.session is not None:
                self.session.on_tls(payload)
        elif ftype == P.APP:
            if self.session is not None:
                self.session.on_app(payload)
        elif ftype == P.CLOSE:
            if self.session is not None:
                self.session.on_close(P.unpack(payload).get("why", "-"))
        elif ftype == P.STATS:
            c = link.counters()
            gc.collect()
            c["heap_free"] = gc.mem_free()
            c["heap_alloc"] = gc.mem_alloc()
            c["sessions"] = self.sessions
            c["aborted"] = self.aborted
            c["errors"] = self.errors
            if P.unpack(payload).get("identity"):
                import boardstatus  # (loaded only when asked)

                boardstatus.identity(self, c)
            link.send(P.STATS, P.pack(c))
        elif ftype in (P.KEYGEN, P.INSTALL, P.ADMIN, P.CHALLENGE):
            # a new key, certificate or anchor, and the board's settings: only on a
            # request signed by its anchor's CA, or while it has none
            import boardtrust

            boardtrust.on_frame(self, ftype, payload)
        elif ftype == P.AUTORUN:
            try:
                import boardautorun

                boardautorun.configure(self, P.unpack(payload).get("opts"))
            except Exception as e:
                self.error("autorun", "%s: %s" % (type(e).__name__, e))
            link.send(P.AUTORUN, P.pack({"opts": self.autorun}))
        elif ftype == P.REPL:
            if not self.dev:
                self.error("repl", "this board is in production mode: its REPL is not reachable from the link "
                           "(development mode: its BOOT button held as it starts, or `hsmtls board mode dev`)")
                return
            self.log("leaving link mode")
            self.running = False

    def out_of_memory(self, where):
        # drop the session's buffers, then end it as any other: the host gets ERROR,
        # CLOSE and a RESULT instead of waiting out its timeout
        s = self.session
        self.session = None
        if s is not None:
            s.unread = 0
            s.outbox = []
            s.to_ask = s.asked = 0
            s.conn = None
        gc.collect()
        if s is not None:
            self.error(where, "out of memory")
            s.finish(False, "out of memory")

    def take_frames(self, timeout):
        # Wait up to timeout ms for the port, hand every frame that arrived to
        # on_frame(), then acknowledge at once (before any computing). Also what a
        # session that blocks (boardmbedtls) runs while it waits.
        if self.serial.wait(timeout):
            n = self.serial.read_into(self.rx)
            if n:
                oom = self.link.rx_out_of_memory
                for ftype, payload in self.link.receive(self.rx, self.port.ticks_ms(), n):
                    try:
                        self.on_frame(ftype, payload)
                    except Exception as e:
                        self.error("frame %s" % P.NAMES.get(ftype, ftype), "%s: %s" % (type(e).__name__, e))
                        self.abort_session("error")
                if self.link.rx_out_of_memory != oom:
                    # a frame found no room even after a collection (the link takes it
                    # again when the host resends it): the session's memory goes
                    self.out_of_memory("link")
        self.flush()

    def step(self):
        port = self.port
        s = self.session
        # work waiting: only look at the port; frames in flight: wake often enough for
        # the link's timers (a PING after `rto` ms) but do not spin on them
        if (s is not None and (s.unread or s.waiting_work())) or self.keygen is not None \
                or self.idle_pending:
            timeout = 0
        else:
            timeout = 50 if self.link.idle else 10
        self.take_frames(timeout)
        if self.keygen is not None:
            try:
                self.keygen_step()
            except Exception as e:
                self.keygen = None
                self.error("keygen", "%s: %s" % (type(e).__name__, e))
            self.flush()
        s = self.session
        if s is not None:
            try:
                s.poll(port.ticks_ms())
            except MemoryError:
                self.out_of_memory("session")
            except Exception as e:
                self.error("session", "%s: %s" % (type(e).__name__, e))
                s.finish(False, "internal error")
            if s.done and self.session is s:  # (a RUN taken meanwhile made a new one)
                self.session = None
            self.flush()
        elif self.keygen is None and self.link.idle:
            if self.autorun is not None and self.time is not None:
                import boardautorun

                if boardautorun.step(self):
                    self.flush()
                    return
            self.idle_pending = self.idle_work()
            return
        self.idle_pending = False

    def run(self):
        # The trust anchors are read now, while the heap is in one piece: the PEM text
        # and its decoding are the largest passing blocks a session would need. A file
        # missing or bad is reported when a session needs it.
        try:
            self.anchors()
        except Exception:
            pass
        gc.collect()
        # announce ourselves: after a reset the host learns that the link restarted
        self.link.send_unsequenced(P.HELLO, self.hello())
        try:
            import os

            os.stat(self.port.flash_path("autorun.json"))
        except OSError:
            pass  # none (its code is loaded only for a board that has one)
        else:
            import boardautorun

            boardautorun.load(self)
        self.flush()
        while self.running:
            try:
                self.step()
            except MemoryError:
                try:
                    self.out_of_memory("loop")
                except MemoryError:
                    pass
            except Exception as e:  # never leave link mode by accident
                try:
                    self.error("loop", "%s: %s" % (type(e).__name__, e))
                except Exception:
                    pass
        # drain the last frames (the LOG saying goodbye) before leaving
        t = self.port.ticks_ms()
        while not self.link.idle and self.port.ticks_diff(self.port.ticks_ms(), t) < 1000:
            self.step()
