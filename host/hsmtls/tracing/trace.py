"""The handshake as a structured transcript, from the engine's observation hook.

`Trace` is the collector: put `trace.hook` in `TLSConfig.trace` (of a client, a server,
or both in one process) and each call becomes an entry: a handshake message with its
direction and decoded fields (versions, randoms, suites and extensions by name,
certificate subjects, signature algorithms), its size and time; a private-key operation
and who performed it (token, host file key, board); a milestone (keys derived, peer
authenticated, handshake complete); an alert. Every entry carries the numbered step of
the classic SSL handshake description (steps.py: 1 ClientHello … 10 session
begins, 11 renegotiation) and its round (1 = first handshake, 2… = renegotiations). Steps the
collecting side cannot see (the peer's certificate check, say) are added as inferred
entries, so a diagram always tells the whole story and says what was not observed.

The transcript is plain data (`to_dict()` / `to_json()`, `Trace.from_json()`); the
terminal, SVG and HTML renderings live in render.py and work from that data.
Nothing secret goes into a trace: no master secret, no premaster (keylog.py writes
the key log, on purpose and only when asked).
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from hsmtls.tracing.steps import (
    CCS,
    CLIENT_MESSAGE_STEPS,
    SERVER_MESSAGE_STEPS,
    STEPS,
    message_name,
)
from tlscore import constants as C
from tlscore import suites, x509
from tlscore.events import DECRYPT

TraceHook = Callable[[Any, str, Any, Any, int], None]

FORMAT = "hsmtls-trace"
FORMAT_VERSION = 1

_SIGNATURE_OIDS = {
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
    "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
    "1.2.840.113549.1.1.10": "rsassa-pss",
    "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
    "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
    "1.3.101.112": "ed25519",
}

PERFORMER_LABELS = {"token": "token (PKCS#11)", "host": "host file key", "board": "board"}


def suite_name(code: int) -> str:
    if code == C.TLS_EMPTY_RENEGOTIATION_INFO_SCSV:
        return "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"
    s = suites.by_code(code)
    return s.name if s is not None else "0x%04X" % code


def extension_name(code: int) -> str:
    return C.EXTENSION_NAMES.get(code, "extension(%d)" % code)


def scheme_name(code: int) -> str:
    s = C.SIGNATURE_SCHEMES.get(code)
    return s[0] if s is not None else "0x%04X" % code


def version_name(v: int) -> str:
    names = {C.TLS1_2: "TLS 1.2", C.TLS1_1: "TLS 1.1", C.TLS1_0: "TLS 1.0", C.SSL3_0: "SSL 3.0"}
    return "%s (0x%04x)" % (names.get(v, "unknown"), v)


def _utc(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d")


def describe_certificate(cert: Any) -> dict[str, Any]:
    """Subject, issuer, validity, key and signature of an x509.Certificate."""
    pk = cert.public_key
    return {
        "subject": cert.subject_str(),
        "issuer": cert.issuer_str(),
        "not_after": _utc(cert.not_after),
        "key": "RSA-%d" % pk.bits if isinstance(pk, x509.RSAPublicKey)
        else "ECDSA %s" % pk.curve if pk is not None else (cert.key_type or "?"),
        "signature_algorithm": _SIGNATURE_OIDS.get(cert.signature_algorithm_oid,
                                                   cert.signature_algorithm_oid),
    }


def _extension_details(ext_type: int, data: bytes) -> Any:
    from tlscore import messages as M

    try:
        if ext_type == C.EXT_SERVER_NAME:
            from tlscore.server import parse_server_name

            return parse_server_name(data) if data else ""
        if ext_type == C.EXT_SIGNATURE_ALGORITHMS:
            return [scheme_name(s) for s in M.parse_signature_algorithms(data)]
        if ext_type == C.EXT_SUPPORTED_GROUPS:
            return [C.GROUP_NAMES.get(g, str(g)) for g in M.parse_supported_groups(data)]
        if ext_type == C.EXT_MAX_FRAGMENT_LENGTH:
            return M.parse_max_fragment_length(data)
        if ext_type == C.EXT_RENEGOTIATION_INFO:
            v = M.parse_renegotiation_info(data)
            return v.hex() if v else "(empty: initial handshake)"
        if ext_type == C.EXT_EC_POINT_FORMATS:
            return ["uncompressed" if f == 0 else str(f) for f in M.parse_ec_point_formats(data)]
    except Exception:
        return "(malformed)"
    return None


def _extensions(exts: list) -> tuple[list[str], dict[str, Any]]:
    names = []
    details: dict[str, Any] = {}
    for t, data in exts:
        n = extension_name(t)
        names.append(n)
        d = _extension_details(t, bytes(data))
        if d is not None:
            details[n] = d
    return names, details


def decode_message(what: Any, msg: Any, conn: Any = None) -> tuple[dict[str, Any], str]:
    """(decoded fields, one-line summary) of a handshake message object."""
    f: dict[str, Any] = {}
    if msg is None or what == CCS:
        return f, "switch to the new keys" if what == CCS else ""
    if what == C.CLIENT_HELLO:
        f["client_version"] = version_name(msg.client_version)
        f["random"] = bytes(msg.random).hex()
        f["session_id"] = bytes(msg.session_id).hex()
        f["cipher_suites"] = [suite_name(s) for s in msg.cipher_suites]
        f["compression_methods"] = list(msg.compression_methods)
        f["extensions"], f["extension_details"] = _extensions(msg.extensions)
        return f, "%s, %d suites, %d extensions" % (
            version_name(msg.client_version).split(" (")[0], len(msg.cipher_suites),
            len(msg.extensions))
    if what == C.SERVER_HELLO:
        f["server_version"] = version_name(msg.server_version)
        f["random"] = bytes(msg.random).hex()
        f["session_id"] = bytes(msg.session_id).hex()
        f["cipher_suite"] = suite_name(msg.cipher_suite)
        f["compression_method"] = msg.compression_method
        f["extensions"], f["extension_details"] = _extensions(msg.extensions)
        return f, f["cipher_suite"]
    if what == C.CERTIFICATE:
        chain = []
        for der in msg.certificate_list:
            try:
                chain.append(describe_certificate(x509.parse_certificate(der)))
            except Exception as e:
                chain.append({"subject": "(unparsable: %s)" % e})
            chain[-1]["size"] = len(der)
        f["certificate_list"] = chain
        if not chain:
            return f, "empty (no certificate)"
        return f, chain[0]["subject"] + ("" if len(chain) == 1 else " (+%d)" % (len(chain) - 1))
    if what == C.SERVER_KEY_EXCHANGE:
        f["named_curve"] = C.GROUP_NAMES.get(msg.named_curve, str(msg.named_curve))
        f["public_key_size"] = len(msg.public)
        f["signature_algorithm"] = scheme_name(msg.algorithm)
        f["signature_size"] = len(msg.signature)
        return f, "%s key, signed %s" % (f["named_curve"], f["signature_algorithm"])
    if what == C.CERTIFICATE_REQUEST:
        types = {C.RSA_SIGN: "rsa_sign", C.ECDSA_SIGN: "ecdsa_sign"}
        f["certificate_types"] = [types.get(t, str(t)) for t in msg.certificate_types]
        f["signature_algorithms"] = [scheme_name(s) for s in msg.supported_signature_algorithms]
        cas = []
        for n in msg.certificate_authorities:
            try:
                cas.append(x509.name_str(bytes(n)))
            except Exception:
                cas.append("(unparsable name)")
        f["certificate_authorities"] = cas
        return f, "CAs: " + ("; ".join(cas) if cas else "any")
    if what == C.CLIENT_KEY_EXCHANGE:
        kx = conn.suite.key_exchange if conn is not None and conn.suite is not None else None
        f["key_exchange"] = kx
        f["body_size"] = len(msg.body)
        if kx == "ECDHE_RSA":
            return f, "client ECDH public key (%d bytes)" % (len(msg.body) - 1)
        if kx == "RSA":
            return f, "premaster RSA-encrypted to the server key (%d bytes)" % (len(msg.body) - 2)
        return f, "%d bytes" % len(msg.body)
    if what == C.CERTIFICATE_VERIFY:
        f["signature_algorithm"] = scheme_name(msg.algorithm)
        f["signature_size"] = len(msg.signature)
        return f, "signed %s" % f["signature_algorithm"]
    if what == C.FINISHED:
        f["verify_data"] = bytes(msg.verify_data).hex()
        return f, "verify_data " + f["verify_data"]
    return f, ""


def _round(conn: Any, event: str, what: Any, current: int) -> int:
    # 1 for the first handshake, 2.. for renegotiations: a HelloRequest or a ClientHello
    # on an established connection opens the next round; everything else stays in the
    # round its side is in (the handler of a ClientHello runs in state CONNECTED).
    if event in ("send", "recv") and what in (C.CLIENT_HELLO, C.HELLO_REQUEST):
        return conn.renegotiation_count + 2 if conn.established else 1
    return current


class Trace:
    """Collects one connection's handshake (one side, or both sides in one process).

    Use `hook` as TLSConfig.trace; `performer(name, role)` says who runs the private-key
    operations of that side ("token", "host", "board"). Read `entries`, or render:
    `render_terminal(console)`, `to_json()`, `to_svg()`, `to_html()`, `write(path)`.
    """

    def __init__(self, title: str = "") -> None:
        self.title = title
        self.entries: list[dict[str, Any]] = []
        self.roles: list[str] = []
        self.performers: dict[str, str] = {}
        self.summary: dict[str, dict[str, Any]] = {}
        self._t0: float | None = None
        self._op_start: dict[tuple[str, int], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._conns: dict[str, int] = {}
        self._rounds: dict[str, int] = {}

    # -- collecting ----------------------------------------------------------------

    def performer(self, name: str, role: str | None = None) -> Trace:
        """Who performs this side's private-key operations; role None: both sides."""
        for r in (role,) if role else ("client", "server"):
            self.performers[r] = name
        return self

    def hook(self, conn: Any, event: str, what: Any, msg: Any = None, size: int = 0) -> None:
        now = time.perf_counter()
        with self._lock:
            if self._t0 is None:
                self._t0 = now
            role = "client" if conn.is_client else "server"
            if self._conns.setdefault(role, id(conn)) != id(conn):
                return  # one connection per role: a server's others go to their own Trace
            if role not in self.roles:
                self.roles.append(role)
            try:
                self._record(conn, role, event, what, msg, size, now - self._t0)
            except Exception as e:  # an observer must never break the handshake
                self._add(role, now - self._t0, 1, 0, "note", role, role, "trace error",
                          summary="%s: %s" % (type(e).__name__, e))

    def _add(self, side: str, t: float, rnd: int, step: int, kind: str, src: str, dst: str,
             name: str, size: int = 0, fields: dict | None = None, summary: str = "",
             observed: bool = True) -> dict[str, Any]:
        e = {
            "seq": len(self.entries), "t": round(t, 6), "round": rnd, "step": step,
            "kind": kind, "side": side, "from": src, "to": dst, "name": name,
            "size": size, "summary": summary, "fields": fields or {}, "observed": observed,
        }
        self.entries.append(e)
        return e

    def _record(self, conn: Any, role: str, event: str, what: Any, msg: Any, size: int,
                t: float) -> None:
        peer = "server" if role == "client" else "client"
        rnd = _round(conn, event, what, self._rounds.get(role, 1))
        self._rounds[role] = rnd
        if event in ("send", "recv"):
            sender = role if event == "send" else peer
            steps = CLIENT_MESSAGE_STEPS if sender == "client" else SERVER_MESSAGE_STEPS
            step = steps.get(what, 0)
            if rnd > 1 and what in (C.CLIENT_HELLO, C.HELLO_REQUEST):
                self._round_start(role, t, rnd)
            fields, summary = decode_message(what, msg, conn)
            if what == C.HELLO_REQUEST:
                summary = "the server asks for a new handshake"
            self._add(role, t, rnd, step, "message", sender, peer if sender == role else role,
                      message_name(what), size, fields, summary)
        elif event in ("key_op", "key_op_done"):
            performer = self.performers.get(role, "host")
            lane = role + "_key"
            if what == DECRYPT:
                step, label = 6, "decrypt premaster"
            elif role == "client":
                step, label = 5, "sign CertificateVerify"
            else:
                step, label = 2, "sign ServerKeyExchange"
            fields = {"operation": what, "performer": performer, "op_id": msg.op_id,
                      "scheme": msg.scheme, "hash": msg.hash_name, "input_size": len(msg.data)}
            if event == "key_op":
                e = self._add(role, t, rnd, step, "key_op", role, lane, label, len(msg.data),
                              fields, "by the " + PERFORMER_LABELS.get(performer, performer))
                self._op_start[(role, msg.op_id)] = e
            else:
                start = self._op_start.pop((role, msg.op_id), None)
                dur = t - start["t"] if start is not None else 0.0
                if start is not None:
                    start["fields"]["duration_ms"] = round(dur * 1000, 3)
                fields["duration_ms"] = round(dur * 1000, 3)
                result = "premaster" if what == DECRYPT else "signature"
                self._add(role, t, rnd, step, "key_result", lane, role, result, 0, fields,
                          "%.1f ms (%s)" % (dur * 1000, PERFORMER_LABELS.get(performer, performer)))
        elif event == "milestone":
            if what == "keys":
                fields = {"suite": conn.suite.name if conn.suite else None,
                          "extended_master_secret": bool(conn.use_ems),
                          "client_random": bytes(conn.client_random or b"").hex(),
                          "server_random": bytes(conn.server_random or b"").hex()}
                ems = "extended master secret (RFC 7627)" if conn.use_ems else "master secret"
                self._add(role, t, rnd, 7, "milestone", role, role, "session keys", 0, fields,
                          "%s and key block derived" % ems)
            elif what in ("server_authenticated", "client_authenticated"):
                who = what.split("_")[0]
                fields = describe_certificate(msg) if msg is not None else {}
                step = 3 if who == "server" else 6
                self._add(role, t, rnd, step, "milestone", role, role, who + " authenticated", 0,
                          fields, "chain, dates, %susage verified: %s" % (
                              "name, " if who == "server" else "", fields.get("subject", "?")))
            elif what == "complete":
                self.summary[role] = {
                    "version": "TLS 1.2", "suite": conn.suite.name if conn.suite else None,
                    "extended_master_secret": bool(conn.use_ems),
                    "encrypt_then_mac": bool(getattr(conn, "use_etm", False)),
                    "secure_renegotiation": bool(conn.secure_renegotiation),
                    "renegotiations": conn.renegotiation_count,
                    "peer": conn.peer_certificate.subject_str() if conn.peer_certificate else None,
                }
                self._add(role, t, rnd, 10, "milestone", role, role, "handshake complete", 0,
                          dict(self.summary[role]), "application data may flow")
            else:
                self._add(role, t, rnd, 0, "milestone", role, role, str(what))
        elif event == "alert_sent":
            name = C.alert_name(what)
            self._add(role, t, rnd, 0, "alert", role, peer, "alert " + name, 2,
                      {"level": "warning" if what in (C.CLOSE_NOTIFY, C.NO_RENEGOTIATION) else "fatal",
                       "description": name, "reason": msg}, str(msg or ""))
        elif event == "alert_recv":
            name = C.alert_name(what)
            self._add(role, t, rnd, 0, "alert", peer, role, "alert " + name, 2,
                      {"level": "fatal" if msg == C.FATAL else "warning", "description": name}, "")

    def _round_start(self, role: str, t: float, rnd: int) -> None:
        if any(e["kind"] == "round" and e["round"] == rnd for e in self.entries):
            return
        self._add(role, t, rnd, 11, "round", role, role, "renegotiation",
                  summary="the handshake again, under the current keys")

    def note(self, side: str, name: str, summary: str = "", size: int = 0) -> None:
        """Host-side events (e.g. application data) in the timeline, step 10."""
        now = time.perf_counter()
        with self._lock:
            if self._t0 is None:
                self._t0 = now
            last = self.entries[-1]["round"] if self.entries else 1
            self._add(side, now - self._t0, last, 10, "note", side, side, name, size, summary=summary)

    # -- reading -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "format": FORMAT, "version": FORMAT_VERSION, "title": self.title,
                "roles": list(self.roles), "performers": dict(self.performers),
                "summary": dict(self.summary), "steps": {str(k): v for k, v in STEPS.items()},
                "entries": complete_entries(self.entries, self.roles),
            }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @staticmethod
    def from_json(text: str) -> dict[str, Any]:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError("not an hsmtls trace (format %r)" % data.get("format"))
        return data

    def render_terminal(self, console: Any = None) -> None:
        from hsmtls.tracing.render import render_terminal

        render_terminal(self.to_dict(), console)

    def to_svg(self) -> str:
        from hsmtls.tracing.render import to_svg

        return to_svg(self.to_dict())

    def to_html(self) -> str:
        from hsmtls.tracing.render import to_html

        return to_html(self.to_dict())

    def write(self, path: str) -> None:
        """Write as .json, .svg or .html, by the file's extension."""
        write_trace(self.to_dict(), path)


# -- inferred steps ------------------------------------------------------------------


def _inferred(step: int, roles: list[str], rnd_entries: list[dict[str, Any]]) -> tuple[str, str, str] | None:
    # (lane, name, summary) for a step that did not show up in the round, or None
    names = {e["name"] for e in rnd_entries}
    suite = next((e["fields"].get("cipher_suite") for e in rnd_entries if e["name"] == "ServerHello"), "")
    ecdhe = "ECDHE" in (suite or "")
    sees_client = "client" in roles
    sees_server = "server" in roles
    if step == 3:
        if sees_client:
            return "client", "server not authenticated", "certificate verification was off (--insecure)"
        return "client", "client authenticates the server", "on the client: not observed here"
    if step == 5:
        if "CertificateRequest" not in names:
            return "client", "no client certificate", "the server did not ask for one (optional step)"
        return "client", "no client certificate", "asked for, but the client sent none"
    if step == 6:
        if not sees_server:
            how = "computes it from ECDHE" if ecdhe else "decrypts it with its private key"
            return "server", "server recovers the premaster", how + " (on the server: not observed here)"
        if ecdhe:
            return "server", "premaster from ECDHE", "no private-key operation: the key signed in step 2"
        return "server", "premaster", "recovered without a recorded key operation"
    if step == 4 and not sees_client:
        return "client", "client makes the premaster", "on the client: not observed here"
    labels = {1: "ClientHello", 2: "server hello", 7: "session keys", 8: "client Finished",
              9: "server Finished", 10: "handshake complete"}
    if step in labels:
        return ("client" if step in (1, 8) else "server"), labels[step], "not observed"
    return None


def complete_entries(entries: list[dict[str, Any]], roles: list[str]) -> list[dict[str, Any]]:
    """The entries plus inferred ones for steps 1..10 missing in a completed round."""
    out = [dict(e) for e in entries]
    rounds = sorted({e["round"] for e in out})
    for rnd in rounds:
        in_round = [e for e in out if e["round"] == rnd]
        if not any(e["step"] == 10 for e in in_round):
            continue  # an unfinished or failed round: no guessing
        present = {e["step"] for e in in_round}
        for step in range(1, 11):
            if step in present:
                continue
            inf = _inferred(step, roles, in_round)
            if inf is None:
                continue
            lane, name, summary = inf
            # after the last entry of this round with a smaller step
            idx = 0
            for i, e in enumerate(out):
                if e["round"] == rnd and e["step"] and e["step"] < step and e["kind"] != "round":
                    idx = i + 1
            ref = out[idx - 1] if idx else in_round[0]
            e = {"seq": -1, "t": ref["t"], "round": rnd, "step": step, "kind": "inferred",
                 "side": lane, "from": lane, "to": lane, "name": name, "size": 0,
                 "summary": summary, "fields": {}, "observed": False}
            out.insert(idx, e)
            present.add(step)
            in_round = [x for x in out if x["round"] == rnd]
    return out


def write_trace(data: dict[str, Any], path: str) -> None:
    from hsmtls.tracing.render import to_html, to_svg

    lower = path.lower()
    if lower.endswith(".json"):
        text = json.dumps(data, indent=2)
    elif lower.endswith(".svg"):
        text = to_svg(data)
    elif lower.endswith(".html") or lower.endswith(".htm"):
        text = to_html(data)
    else:
        raise ValueError("--trace-out %s: use a name ending in .json, .svg or .html" % path)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def check_trace_out(path: str) -> str | None:
    """None if `path` can be written as a trace, else a one-line error with the fix."""
    import os

    if not path.lower().endswith((".json", ".svg", ".html", ".htm")):
        return f"--trace-out {path}: use a name ending in .json, .svg or .html"
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        return f"--trace-out {path}: directory {d} does not exist; create it or pick another path"
    if not os.access(d, os.W_OK):
        return f"--trace-out {path}: directory {d} is not writable; pick another path"
    return None


def chain_hooks(*hooks: TraceHook | None) -> TraceHook | None:
    """One TLSConfig.trace function calling each given hook (None ones skipped)."""
    fns = [h for h in hooks if h is not None]
    if not fns:
        return None
    if len(fns) == 1:
        return fns[0]

    def hook(conn: Any, event: str, what: Any, msg: Any = None, size: int = 0) -> None:
        for fn in fns:
            fn(conn, event, what, msg, size)

    return hook


class TraceHub:
    """A Trace per connection, for a server: `hook` goes in TLSConfig.trace, and
    `finish(conn)` (called when a connection ends) hands its Trace to `on_trace`."""

    def __init__(self, on_trace: Callable[[Trace], None], performer: str = "host",
                 title: str = "") -> None:
        self.on_trace = on_trace
        self.performer_name = performer
        self.title = title
        self._traces: dict[int, Trace] = {}
        self._lock = threading.Lock()

    def hook(self, conn: Any, event: str, what: Any, msg: Any = None, size: int = 0) -> None:
        with self._lock:
            tr = self._traces.get(id(conn))
            if tr is None:
                tr = Trace(self.title).performer(self.performer_name)
                self._traces[id(conn)] = tr
        tr.hook(conn, event, what, msg, size)

    def finish(self, conn: Any) -> None:
        with self._lock:
            tr = self._traces.pop(id(conn), None)
        if tr is not None and tr.entries:
            self.on_trace(tr)
