# MicroPython's own TLS client (its `tls` module: mbedTLS, in C) run on the board over
# the same serial link and host bridge as ours: RUN {"engine": "mbedtls"}. It is the
# yardstick that pays the link as ours does (`hsmtls bench board`), so that the ratio
# measures the TLS client alone; and it shows a port's `tls` working through the bridge.
# Imported only for such a run: it costs a board that never runs one nothing.
#
# mbedTLS wants a blocking stream, so this session's poll() runs the whole handshake in
# one call. While mbedTLS waits for the server, LinkStream.readinto() runs the link
# itself: read the port, hand frames to the board (TLS comes back here), acknowledge,
# send what is queued. With client_auth it presents the board's certificate and signs
# with the board's key, handed to mbedTLS as DER (RFC 8017 RSAPrivateKey, RFC 5915
# ECPrivateKey) built here from the key file: the key still never leaves the board.

import gc
import io

import tls

from boardapp.session import Session
from hsmlink import protocol as P


def private_key_der(key):
    from boardapp import derwriter as D

    if key.kind == "ec":
        point = b"\x04" + key.x.to_bytes(32, "big") + key.y.to_bytes(32, "big")
        return D.seq(D.integer(1), D.tlv(0x04, key.d.to_bytes(32, "big")),
                     D.context(0, D.oid("1.2.840.10045.3.1.7")), D.context(1, D.bit_string(point)))
    return D.seq(D.integer(0), *[D.integer(getattr(key, f)) for f in ("n", "e", "d", "p", "q", "dp", "dq", "qinv")])


class LinkStream(io.IOBase):
    def __init__(self, session):
        self.session = session
        self.flights = []  # ticks_us at each write: where mbedTLS's steps end (RESULT's steps)

    def readinto(self, buf):
        s = self.session
        while not s.incoming:
            if s.done:
                raise OSError(5)  # EIO: the session was ended under mbedTLS
            if s.eof:
                return 0
            s.pump()
        data = s.incoming[0]
        n = min(len(buf), len(data))
        buf[:n] = data[:n]
        if n == len(data):
            s.incoming.pop(0)
        else:
            s.incoming[0] = data[n:]
        return n

    def write(self, data):
        if self.session.done:
            raise OSError(5)
        self.flights.append(self.session.board.port.ticks_us())
        self.session.board.link.send(P.TLS, bytes(data))
        self.session.board.flush()
        return len(data)

    def ioctl(self, req, arg):
        return 0  # close, poll: the link stays; the session sends CLOSE


class MbedtlsSession(Session):
    def start(self):
        for k in ("suites", "renegotiate", "send", "send_bytes", "mfl"):
            if self.opts.get(k):
                raise ValueError("engine mbedtls runs the handshake alone: no %s" % k)
        want = self.opts.get("anchor_sha256")
        if want and want not in self.board.anchor_fingerprints():
            raise ValueError("the board's trust anchor is not the CA the host expects")
        self.incoming = []  # TLS bytes from the host, not yet read by mbedTLS
        self.eof = False
        self.opened = False
        self.running = False
        ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        for a in self.board.anchors():
            ctx.load_verify_locations(bytes(a.der))
        if self.opts.get("client_auth"):
            ctx.load_cert_chain(bytes(self.board.client_chain()[0]), private_key_der(self.board.key()))
        self.ctx = ctx
        self.board.link.send(P.OPEN, P.pack({"server_name": self.opts.get("server_name")}))

    def on_opened(self):
        self.opened = True

    def on_tls(self, data):
        if not self.done and self.opened:  # (before OPENED: the replaced connection's)
            self.incoming.append(bytes(data))
            self.last_activity = self.board.port.ticks_ms()

    def on_close(self, why):
        self.eof = True
        if not self.running:
            if not self.opened:  # the host could not reach the server
                self.finish(False, "no TCP connection to the server (%s)" % why)
            else:
                self.finish(False, "server closed the TCP connection (%s)" % why)

    def on_app(self, data):
        pass

    def pump(self):
        # one turn of the link while mbedTLS waits: the frames that arrived go to the
        # board, which hands TLS and CLOSE back to us (a RUN or SYNC ends this session)
        port = self.board.port
        if port.ticks_diff(port.ticks_ms(), self.last_activity) > self.timeout:
            self.finish(False, "timed out waiting for the server")
            return
        self.board.take_frames(10)

    def poll(self, now):
        if self.done or self.running:
            return
        if not self.opened:
            if self.board.port.ticks_diff(now, self.last_activity) > self.timeout:
                self.finish(False, "timed out waiting for OPENED")
            return
        self.running = True
        port = self.board.port
        # on a collected heap, as Session.start() leaves ours: a collection the last
        # session's garbage owes does not fall into this handshake's figures
        gc.collect()
        self.last_activity = port.ticks_ms()
        t = port.ticks_us()
        stream = LinkStream(self)
        try:
            ss = self.ctx.wrap_socket(stream, server_hostname=self.opts.get("server_name"))
        except Exception as e:  # OSError from the stream, ValueError from verification
            if not self.done:
                why = " ".join(str(e).split()) or type(e).__name__
                if self.eof and "CONN_EOF" in why:  # our stream's end, not mbedTLS's own finding
                    why = "the server closed the TCP connection (%s)" % why
                self.finish(False, "mbedtls: " + why)
            return
        end = port.ticks_us()
        us = port.ticks_diff(end, t)
        self.steps = self._flight_steps(t, stream.flights, end)
        # mbedTLS sends the certificate only when the server asks, and does not say
        # whether it did: what is known is that it had one
        self.handshakes.append({"us": us, "ms": us // 1000, "engine": "mbedtls",
                                "client_cert_loaded": bool(self.opts.get("client_auth"))})
        try:
            ss.close()  # close_notify
        except OSError:
            pass
        self.finish(True, None)

    def _flight_steps(self, t, flights, end):
        # mbedTLS says nothing between its messages, but each flight it writes marks the
        # end of a step: ClientHello; the server's flight up to our Finished; the
        # server's Finished checked. [name, ms] as ours (summed alike by the host)
        names = ("ClientHello", "server flight to our Finished", "server Finished")
        marks = [t] + ([flights[0], flights[-1]] if flights else []) + [end]
        if len(marks) != 4:
            return []
        diff = self.board.port.ticks_diff
        return [[n, round(diff(b, a) / 1000, 2)] for n, a, b in zip(names, marks, marks[1:])]

    def _finish(self, ok, reason):
        b = self.board
        b.link.send(P.CLOSE, P.pack({"why": reason or "done"}))
        r = {"ok": ok and bool(self.handshakes), "reason": reason, "engine": "mbedtls",
             "handshakes": self.handshakes, "steps": self.steps}
        if self.handshakes:
            r["handshake_us"] = self.handshakes[0]["us"]
            r["handshake_ms"] = self.handshakes[0]["ms"]
            r["server_subject"] = None
            r["client_cert_loaded"] = self.handshakes[0]["client_cert_loaded"]
        r["total_ms"] = b.port.ticks_diff(b.port.ticks_ms(), self.t0)
        self.result = r
        b.link.send(P.RESULT, P.pack(r))
        self.ctx = None
