"""The bridge: the board's TLS records to a TCP server and back.

The board runs the TLS client; the host only moves bytes. When the board asks to OPEN
a session the bridge connects to its target (TCP_NODELAY: each handshake flight is a
few small writes, and Nagle plus delayed ACK would add ~40 ms), answers OPENED, and
then copies TLS frames to the socket and socket bytes to TLS frames, until either side
closes. Application data crosses the link as APP frames, a slice at a time, so that
the board never holds it whole: RUN's "send" (beyond a few bytes) goes as the board
asks for it (WANT), and what the board receives is joined into the RESULT's
"received" (the board sends only the count).
``run_handshake`` additionally tells the board what to do (RUN) and returns
the board's RESULT; ``serve`` just carries whatever sessions the board opens.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

from hsmlink import protocol as P

from .hostlink import HostLink, LinkError

INLINE_SEND = 128  # a "send" up to this long rides in RUN itself
TIME_EVERY_S = 3600.0  # serve(): the board's clock from the host again


class BoardFailure(Exception):
    pass


class Bridge:
    def __init__(self, link: HostLink, target: tuple[str, int], log: Callable[[str], None] | None = None,
                 taps: list | None = None) -> None:
        self.link = link
        self.target = target
        self.log = log or (lambda s: None)
        # observers of the TLS bytes crossing the bridge, each with .feed(direction, data):
        # a pcapng writer (`bridge --pcap`), a record sniffer (`board handshake --trace`)
        self.taps = list(taps or [])
        self.sock: socket.socket | None = None
        self.errors: list[dict] = []
        self.logs: list[str] = []
        self.tcp_bytes = [0, 0]  # to server, from server
        self.app = bytearray()  # the session's application data, from the board's APP frames
        self.outgoing = b""  # RUN's "send", for the board's WANTs

    # --- TCP side -----------------------------------------------------------------------

    def _open(self) -> None:
        self._close_tcp()
        try:
            s = socket.create_connection(self.target, timeout=5)
        except OSError as e:
            where = f"{self.target[0]}:{self.target[1]}"
            self.log(f"tcp: cannot connect to {where}: {e}")
            self.link.send(P.ERROR, {"where": "tcp", "reason": f"cannot connect to {where}: {e}"})
            # (the board's RESULT carries this as its reason)
            self.link.send(P.CLOSE, {"why": f"{where}: {e.strerror or e}"})
            return
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        self.sock = s
        self.link.send(P.OPENED, {})

    def _close_tcp(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def _from_tcp(self) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            data = b""
            self.log(f"tcp: {e}")
        if data:
            self.tcp_bytes[1] += len(data)
            for tap in self.taps:
                tap.feed("s2c", data)
            self.link.send(P.TLS, data)
        else:
            self._close_tcp()
            self.link.send(P.CLOSE, {"why": "eof"})

    def _to_tcp(self, data: bytes) -> None:
        if self.sock is None:
            return
        try:
            self.sock.setblocking(True)
            self.sock.sendall(data)
            self.sock.setblocking(False)
            self.tcp_bytes[0] += len(data)
            for tap in self.taps:
                tap.feed("c2s", data)
        except OSError as e:
            self.log(f"tcp: {e}")
            self._drain_tcp()
            self._close_tcp()
            self.link.send(P.CLOSE, {"why": str(e)})

    def _drain_tcp(self) -> None:
        # The server closed while the board was still sending (it refused a client
        # certificate while the board signed): what it sent first, usually the alert
        # saying why, still goes to the board, ahead of the CLOSE.
        assert self.sock is not None
        self.sock.setblocking(False)
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.tcp_bytes[1] += len(data)
            for tap in self.taps:
                tap.feed("s2c", data)
            self.link.send(P.TLS, data)

    # --- frames from the board ----------------------------------------------------------

    def _on_frame(self, ftype: int, payload: bytes) -> dict | None:
        if ftype == P.OPEN:
            self.app = bytearray()
            self._open()
        elif ftype == P.TLS:
            self._to_tcp(payload)
        elif ftype == P.CLOSE:
            self._close_tcp()
        elif ftype == P.LOG:
            text = payload.decode("utf-8", "replace")
            self.logs.append(text)
            self.log(f"board: {text}")
        elif ftype == P.ERROR:
            err = P.unpack(payload)
            self.errors.append(err)
            self.log(f"board error: {err.get('where')}: {err.get('reason')}")
        elif ftype == P.APP:
            self.app += payload
        elif ftype == P.WANT:
            n = P.unpack(payload).get("n", 0)
            chunk, self.outgoing = self.outgoing[:n], self.outgoing[n:]
            if chunk:
                self.link.send(P.APP, chunk)
        elif ftype == P.RESULT:
            r = P.unpack(payload)
            if "received" not in r:  # hsmlink v3: the board says only how much
                r["received"] = _text(self.app)
            self.app = bytearray()
            return r
        elif ftype == P.HELLO:
            self._close_tcp()
            raise BoardFailure("the board restarted (reset) during the session")
        return None

    def step(self, timeout: float = 0.01) -> list[dict]:
        extra = [self.sock] if self.sock is not None else []
        frames, ready = self.link.poll(timeout, extra)
        results = []
        for ftype, payload in frames:
            r = self._on_frame(ftype, payload)
            if r is not None:
                results.append(r)
        if self.sock is not None and self.sock in ready:
            self._from_tcp()
        return results

    # --- what the commands do -----------------------------------------------------------

    def send_time(self) -> None:
        self.link.send(P.TIME, {"t": int(time.time())})

    def run_handshake(self, opts: dict, timeout: float = 60.0) -> dict:
        """Tell the board to run one TLS session; return its RESULT."""
        # a connection still open (the board's autorun session this RUN ends) is not this
        # session's: the server's answers on it must not reach the new one
        self._close_tcp()
        self.errors = []
        self.outgoing = b""
        send = opts.get("send")
        if send and len(send) > INLINE_SEND and self.link.hello.get("v", 0) >= 3:
            self.outgoing = send.encode()
            opts = {k: v for k, v in opts.items() if k != "send"}
            opts["send_bytes"] = len(self.outgoing)
        self.send_time()
        self.link.send(P.RUN, opts)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                # (a session the board started on its own, which this RUN ended, is not
                # this RUN's result)
                results = [r for r in self.step(0.01) if not r.get("autorun")]
                refused = [e for e in self.errors if e.get("where") == "run"]
                if refused:
                    self.link.drain(0.5)
                    return {"ok": False, "reason": f"board refused the run: {refused[0].get('reason')}"}
                if results:
                    self.link.drain(0.5)
                    return results[0]
        finally:
            self._close_tcp()
        raise BoardFailure(f"no result from the board within {timeout:.0f} s")

    def stats(self, timeout: float = 3.0, identity: bool = False) -> dict:
        """The board's counters; with identity, also its trust anchors, its certificate
        and its autorun (`hsmtls board status`)."""
        return P.unpack(self._ask(P.STATS, {"identity": True} if identity else {}, timeout))

    def _ask(self, ftype: int, payload: dict, timeout: float) -> bytes:
        """Send a control frame and return the payload of the board's frame of the same
        type; whatever else arrives meanwhile is handled as usual."""
        self.link.send(ftype, payload)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frames, _ = self.link.poll(0.01)
            for t, answer in frames:
                if t == ftype:
                    return answer
                self._on_frame(t, answer)
        raise BoardFailure(f"no {P.NAMES[ftype]} answer from the board")

    def set_autorun(self, opts: dict | None, timeout: float = 5.0) -> dict | None:
        """Have the board keep `opts` (RUN's options and "every_s": seconds between
        sessions, 0 for one a boot) as the session it starts on its own whenever a host
        bridges it (None: none). Returns what the board now keeps."""
        if "autorun" not in (self.link.hello or {}).get("features", []):
            raise BoardFailure("the board's firmware has no autorun: deploy this version (hsmtls board deploy)")
        self.errors = []
        answer = self._ask(P.AUTORUN, {"opts": opts}, timeout)
        refused = [e for e in self.errors if e.get("where") == "autorun"]
        if refused:
            raise BoardFailure(f"the board refused the autorun: {refused[0].get('reason')}")
        return P.unpack(answer).get("opts")

    def serve(self, until: Callable[[], bool] | None = None, on_result: Callable[[dict], None] | None = None,
              time_every: float = TIME_EVERY_S) -> None:
        """Carry the sessions the board opens (its autorun) until `until()`; the time
        again every `time_every` seconds: the board's clock is the host's last TIME plus
        its ms ticks, whose differences wrap after 2^29 ms (6.2 days) on an ESP32."""
        self.send_time()
        sent = time.monotonic()
        while until is None or not until():
            try:
                for r in self.step(0.05):
                    if on_result:
                        on_result(r)
                if time.monotonic() - sent >= time_every:
                    self.send_time()
                    sent = time.monotonic()
            except BoardFailure as e:
                self.log(str(e))
                self.link.connect()
                self.send_time()
                sent = time.monotonic()


def _text(b: bytes | bytearray) -> str:
    try:
        return bytes(b).decode()
    except UnicodeDecodeError:
        return repr(bytes(b))


def format_status(hello: dict, stats: dict, now: float | None = None) -> list[str]:
    """`hsmtls board status`: what the board runs and holds, from HELLO and STATS."""
    import datetime

    now = time.time() if now is None else now

    def until(t: int) -> str:
        day = datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d")
        days = int((t - now) // 86400)
        return f"valid until {day} ({'EXPIRED' if t < now else f'{days} days left'})"

    lines = [f"board: {hello.get('board', '?')}, {hello.get('impl', '?')}, link v{hello.get('v', '?')}, "
             f"features: {', '.join(hello.get('features') or []) or '-'}"]
    lines.append(f"heap: {stats.get('heap_alloc', '?')} bytes used, {stats.get('heap_free', '?')} free; "
                 f"sessions {stats.get('sessions', 0)} (aborted {stats.get('aborted', 0)}), errors {stats.get('errors', 0)}")
    for a in stats.get("anchors") or []:
        lines.append(f"trust anchor: {a.get('subject')}, sha256 {a.get('sha256')}, {until(a.get('not_after', 0))}")
    if stats.get("anchors_error"):
        lines.append(f"trust anchor: none ({stats['anchors_error']})")
    cert = stats.get("cert")
    if cert:
        key = {"ec": "ECDSA P-256", "rsa": "RSA"}.get(cert.get("key"), cert.get("key"))
        lines.append(f"certificate: {cert.get('subject')} ({key} key, on the board), issued by {cert.get('issuer')}, "
                     f"serial {cert.get('serial')}, {until(cert.get('not_after', 0))}")
    if stats.get("cert_error"):
        lines.append(f"certificate: none ({stats['cert_error']})")
    opts = stats.get("autorun")
    if opts:
        when = f"every {opts['every_s']} s" if opts.get("every_s") else "once a boot"
        lines.append(f"autorun: a session to {opts.get('server_name')} {when}")
    elif "autorun" in stats:
        lines.append("autorun: off")
    return lines


def format_result(r: dict) -> list[str]:
    yn = {True: "yes", False: "no", None: "-"}
    lines = [f"result: {'ok' if r.get('ok') else 'FAILED'}"]
    if r.get("autorun"):
        lines.append(f"autorun: session #{r['autorun']} the board started on its own")
    if r.get("reason"):
        lines.append(f"reason: {r['reason']}")
    if r.get("engine"):
        lines.append(f"engine: {r['engine']}")
        if r.get("handshake_us") is not None:
            lines.append(f"client_hello_to_finished_ms: {r['handshake_us'] / 1000:.2f}")
        if r.get("client_cert_loaded"):
            lines.append("client_certificate: loaded (sent if the server asked)")
    if r.get("suite"):
        lines += [
            f"cipher: {r['suite']}",
            f"extended_master_secret: {yn.get(r.get('ems'), '-')}",
            f"secure_renegotiation: {yn.get(r.get('secure_renegotiation'), '-')}",
            f"client_certificate: {yn.get(r.get('client_cert'), '-')}",
            f"resumed: {yn.get(r.get('resumed'), '-')}",
            f"server: {r.get('server_subject') or '-'}",
            f"renegotiations: {r.get('renegotiations', 0)}",
            f"handshake_ms: {r.get('handshake_ms')}",
        ]
        if r.get("handshake_us") is not None:
            lines.append(f"client_hello_to_finished_ms: {r['handshake_us'] / 1000:.2f}")
        if r.get("cached_signatures") or r.get("prepared_premaster"):
            lines.append(f"remembered: {r.get('cached_signatures') or 0} certificate signature(s), "
                         f"premaster {'prepared' if r.get('prepared_premaster') else 'not prepared'}")
        mfl = r.get("handshakes", [{}])[0].get("mfl")
        if mfl:
            lines.append(f"max_fragment_length: {mfl}")
    steps = r.get("steps") or []
    if steps:
        lines.append("steps_ms: " + ", ".join(f"{n}={ms}" for n, ms in steps))
    if r.get("heap_peak") is not None:
        lines.append(
            f"heap_peak: {r.get('heap_peak')} bytes live of {r.get('heap_total')}"
            f" (before the session: {r.get('heap_base')})"
        )
    if r.get("received"):
        lines.append(f"received: {r['received']}")
    return lines


def handshake_once(
    port: str,
    target: tuple[str, int],
    opts: dict,
    log: Callable[[str], None] | None = None,
    timeout: float = 60.0,
    taps: list | None = None,
) -> dict:
    with HostLink(port) as link:
        link.connect()
        return Bridge(link, target, log, taps).run_handshake(opts, timeout)


__all__ = ["Bridge", "BoardFailure", "LinkError", "format_result", "handshake_once", "json"]
