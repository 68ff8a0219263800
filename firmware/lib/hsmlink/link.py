# Reliable, in-order delivery of typed frames over a lossy byte stream, within a byte
# window. Go-back-N with one twist for the board: the sender never retransmits on a
# timer alone. A receiver busy in a 3-second RSA operation has simply not read its
# UART yet, and resending then would overflow the ESP32's 260-byte ring. So after
# `rto` ms without progress the sender sends a tiny PING; the PONG comes back only
# once the receiver has read everything before it, and its ack field then says exactly
# which frames were lost: those, and only those, are resent.
#
# Every frame carries `ack` = the next sequence number this side expects, so acks ride
# on data; a bare ACK frame goes out when there is nothing else to carry one.
# SYNC/HELLO/ACK/PING/PONG are unsequenced. A control payload longer than one frame
# is cut into pieces whose type has the MORE bit set, and joined on receipt; TLS and
# APP are byte streams and are delivered piece by piece.

from . import protocol as P
from .framing import MAX_PAYLOAD, Decoder, encode_frame, encode_frame_into, wire_length

MORE = 0x80
PING_WAIT_MAX = 32  # rto's: 4.8 s at the default 150 ms
STREAMS = (P.TLS, P.APP)


def _diff(a, b):
    return a - b


class Link:
    def __init__(self, window=224, rto=150, ticks_diff=None):
        self.window = window  # bytes of sequenced frames in flight toward the peer
        self.rto = rto  # ms without progress before we PING
        self.ticks_diff = ticks_diff or _diff
        self.decoder = Decoder()
        self.retransmits = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.pings = 0
        self.sent_frames = 0
        self.max_in_flight = 0
        self.rx_out_of_memory = 0  # frames left for the peer to resend: no heap to take them
        self.reset()

    def reset(self):
        # Forget every frame in either direction: after SYNC/HELLO, or a board reset.
        self.tx_seq = 0
        self.unacked = []  # [seq, type, payload, wire_len]
        self.queue = []  # (type, payload) waiting for the window
        self.in_flight = 0
        self.rx_expected = 0
        self.ack_due = False
        self.control = []  # unsequenced wire frames to send now
        self.partial = None  # (type, [pieces]) of a control payload being joined
        self.last_progress = None
        self.ping_nonce = 0
        self.ping_sent = None
        self.ping_wait = 2  # rto's before an unanswered PING is sent again
        self.decoder.reset()

    def counters(self):
        c = self.decoder.counters()
        c["retransmits"] = self.retransmits
        c["duplicates"] = self.duplicates
        c["out_of_order"] = self.out_of_order
        c["pings"] = self.pings
        c["sent_frames"] = self.sent_frames
        c["max_in_flight"] = self.max_in_flight
        c["rx_out_of_memory"] = self.rx_out_of_memory
        return c

    @property
    def idle(self):
        return not self.unacked and not self.queue and not self.control

    # --- sending ---------------------------------------------------------------------

    def send(self, ftype, payload=b""):
        n = len(payload)
        if n <= MAX_PAYLOAD:
            self.queue.append((ftype, payload))
            return
        mv = memoryview(payload)
        pos = 0
        while pos < n:
            end = pos + MAX_PAYLOAD
            if end > n:
                end = n
            t = ftype
            if end < n and ftype not in STREAMS:
                t = ftype | MORE
            self.queue.append((t, bytes(mv[pos:end])))
            pos = end

    def send_unsequenced(self, ftype, payload=b""):
        self.control.append(encode_frame(ftype, 0, self.rx_expected, payload))

    def output(self, now):
        # -> the bytes to write now (a bytearray: each frame is encoded straight into it)
        if not (self.control or self.queue or self.unacked or self.ack_due):
            return b""
        out = bytearray()
        for f in self.control:
            out += f
        self.control = []
        carried_ack = False
        if self.unacked:
            waited = self.ticks_diff(now, self.last_progress)
            if self.ping_sent is None and waited >= self.rto:
                self._ping(out, now)
            elif self.ping_sent is not None and self.ticks_diff(now, self.ping_sent) >= self.ping_wait * self.rto:
                # the PING or its PONG was lost, or the peer is still computing: ask again,
                # each time waiting twice as long, so that a peer busy for seconds (an RSA
                # key made on an emulated RV32) finds a few PINGs in its 260-byte ring,
                # not one every 2 rto on top of a full window
                if self.ping_wait < PING_WAIT_MAX:
                    self.ping_wait *= 2
                self._ping(out, now)
        while self.queue:
            ftype, payload = self.queue[0]
            wire = wire_length(len(payload))
            if self.unacked and self.in_flight + wire > self.window:
                break
            if self.ping_sent is not None:
                break  # wait for the PONG before adding to an unknown backlog
            self.queue.pop(0)
            if not self.unacked:
                self.last_progress = now
            self.unacked.append([self.tx_seq, ftype, payload, wire])
            self.in_flight += wire
            if self.in_flight > self.max_in_flight:
                self.max_in_flight = self.in_flight
            encode_frame_into(out, ftype, self.tx_seq, self.rx_expected, payload)
            self.tx_seq = (self.tx_seq + 1) & 255
            self.sent_frames += 1
            carried_ack = True
        if self.ack_due and not carried_ack:
            encode_frame_into(out, P.ACK, 0, self.rx_expected)
        self.ack_due = False
        return out

    def _ping(self, out, now):
        self.pings += 1
        self.ping_nonce = (self.ping_nonce + 1) & 255
        self.ping_sent = now
        encode_frame_into(out, P.PING, 0, self.rx_expected, bytes([self.ping_nonce]))

    def _on_ack(self, ack, now):
        if not self.unacked:
            return
        n = (ack - self.unacked[0][0]) & 255
        if n == 0 or n > len(self.unacked):
            return  # nothing new, or a stale ack from before a wrap
        for f in self.unacked[:n]:
            self.in_flight -= f[3]
        self.unacked = self.unacked[n:]
        self.last_progress = now
        self.ping_wait = 2
        if not self.unacked:
            # everything arrived: a PING still waiting for its PONG asks about
            # nothing, and must not hold back the queue if that PONG was lost
            self.ping_sent = None

    def _on_pong(self, nonce, now):
        if self.ping_sent is None or nonce != self.ping_nonce:
            return
        self.ping_sent = None
        self.ping_wait = 2
        self.last_progress = now
        # The peer has read everything sent before the PING: what is still unacked
        # was lost. Resend it, in order, ahead of new frames.
        if self.unacked:
            self.retransmits += len(self.unacked)
            again = [(f[1], f[2]) for f in self.unacked]
            self.tx_seq = self.unacked[0][0]
            self.unacked = []
            self.in_flight = 0
            self.queue = again + self.queue

    # --- receiving -------------------------------------------------------------------

    def receive(self, data, now=0, n=None):
        # data[:n] -> list of (type, payload) in order; SYNC/HELLO reach the caller, which
        # decides whether to reset(). Out of memory, nothing is lost: a frame counts as
        # received (and is acknowledged) only once it is taken, so what could not be
        # taken, and every frame after it, comes again after the peer's timeout; the
        # frames taken before are returned. rx_out_of_memory counts such stops.
        out = []
        try:
            frames = self.decoder.feed(data, n)
        except MemoryError:
            self.decoder.reset()
            self.rx_out_of_memory += 1
            return out
        for frame in frames:
            try:
                self._take(frame, now, out)
            except MemoryError:
                self.rx_out_of_memory += 1
                break
        return out

    def _take(self, frame, now, out):
        ftype, seq, ack, payload = frame
        if ftype == P.SYNC or ftype == P.HELLO:
            out.append((ftype, payload))
            return
        self._on_ack(ack, now)
        if ftype == P.ACK:
            return
        if ftype == P.PING:
            self.control.append(encode_frame(P.PONG, 0, self.rx_expected, payload))
            return
        if ftype == P.PONG:
            if payload:
                self._on_pong(payload[0], now)
            return
        if seq != self.rx_expected:
            if (self.rx_expected - seq) & 255 < 128:
                self.duplicates += 1
            else:
                self.out_of_order += 1
            self.ack_due = True
            return
        base = ftype & ~MORE
        if self.partial is not None and self.partial[0] != base:
            self.partial = None  # a piece went missing across a reset: drop it
        if ftype & MORE:
            if self.partial is None:
                self.partial = (base, [])
            self.partial[1].append(payload)  # a failed append leaves the list as it was
        else:
            pieces = self.partial[1] if self.partial is not None else None
            if pieces is not None:
                pieces.append(payload)
            try:
                out.append((base, b"".join(pieces) if pieces is not None else payload))
            except MemoryError:
                if pieces is not None:
                    pieces.pop()  # as before this frame, which comes again
                raise
            self.partial = None
        self.rx_expected = (self.rx_expected + 1) & 255
        self.ack_due = True
