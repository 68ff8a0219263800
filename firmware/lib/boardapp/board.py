# The board's link mode (boardapp/__init__.py says what the app does): the serial port
# and its frames, the files on the board's flash, the clock, and a Session
# (session.py) per RUN; what only some boards or requests need is imported where it
# is used (see boardapp/__init__.py).
#
# Loop order matters on a classic ESP32: read everything waiting, acknowledge it at
# once, and only then run the engine, so the host's next ~200 bytes can land in the
# 260-byte UART ring while we compute.

import gc

from boardapp import session
from hsmlink import protocol as P
from hsmlink.framing import MAX_PAYLOAD
from hsmlink.link import Link
from tlscore import x509
from tlscore.backend_micropython import BACKEND


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
        # (imported here, the one place it is used, from a module session.py has loaded:
        # kept out of the module's globals, whose table would otherwise take the next
        # size up on the board's heap)
        from tlscore.client import PreparedPremaster

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
        self.record_buffer = bytearray(5 + session.DEFAULT_MFL + 320 + MAX_PAYLOAD)
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
        self.autorun = None  # its opts (autorun.py keeps the rest)
        self.autorun_error = None  # why autorun.json was ignored at boot: told to each host
        # development mode: the REPL is reachable from the link (a `dev` file on the
        # flash, or the port's button held at boot); a production board refuses it
        self.dev = self._exists("dev") or _port_call(port, "dev_button")
        self.challenge = None  # for the next signed request (trust.challenge)
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
            from boardapp import key as boardkey

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
        from boardapp import BUILD_TIME, TIME_FLOOR, TIME_FLOOR_STEP

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
        from hsmlink import VERSION  # (loaded already: P is its module)

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
        elif ftype == P.RUN:  # the host's, or autorun's (autorun.step)
            self.abort_session("a new RUN arrived")
            self.sessions += 1
            try:
                opts = P.unpack(payload)
                engine = opts.get("engine", "hsmtls")
                if engine == "mbedtls":
                    # MicroPython's own tls module over this link: the yardstick
                    from boardapp import mbedtls

                    s = mbedtls.MbedtlsSession(self, opts)
                elif engine == "hsmtls":
                    s = session.Session(self, opts)
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
                from boardapp import status  # (loaded only when asked)

                status.identity(self, c)
            link.send(P.STATS, P.pack(c))
        elif ftype in (P.KEYGEN, P.INSTALL, P.ADMIN, P.CHALLENGE):
            # a new key, certificate or anchor, and the board's settings: only on a
            # request signed by its anchor's CA, or while it has none
            from boardapp import trust

            trust.on_frame(self, ftype, payload)
        elif ftype == P.AUTORUN:
            try:
                from boardapp import autorun

                autorun.configure(self, P.unpack(payload).get("opts"))
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
        # session that blocks (mbedtls.py) runs while it waits.
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
                from boardapp import keygen

                keygen.step(self)
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
                from boardapp import autorun

                if autorun.step(self):
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
            from boardapp import autorun

            autorun.load(self)
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
