"""The classic description of an SSL handshake in numbered steps (Microsoft KB Q257591),
and which step each handshake message belongs to: the table the trace (trace.py), its
renderings (render.py), the state diagrams (states.py) and the board's link
sniffer tag every entry with. Labels are short, for a diagram's legend."""

from __future__ import annotations

from typing import Any

from tlscore import constants as C
from tlscore.connection import CCS

STEPS: dict[int, str] = {
    1: "ClientHello: version, suites, random",
    2: "ServerHello, certificate, [certificate request]",
    3: "client authenticates the server",
    4: "ClientKeyExchange: the premaster",
    5: "client certificate and signature",
    6: "server authenticates the client, recovers the premaster",
    7: "master secret and session keys",
    8: "client ChangeCipherSpec + Finished",
    9: "server ChangeCipherSpec + Finished",
    10: "handshake complete: the session begins",
    11: "renegotiation: the steps again",
}

# Which step a handshake message (or ChangeCipherSpec) belongs to, by sender.
CLIENT_MESSAGE_STEPS = {C.CLIENT_HELLO: 1, C.CLIENT_KEY_EXCHANGE: 4, C.CERTIFICATE: 5,
                        C.CERTIFICATE_VERIFY: 5, CCS: 8, C.FINISHED: 8}
SERVER_MESSAGE_STEPS = {C.HELLO_REQUEST: 11, C.SERVER_HELLO: 2, C.CERTIFICATE: 2,
                        C.SERVER_KEY_EXCHANGE: 2, C.CERTIFICATE_REQUEST: 2,
                        C.SERVER_HELLO_DONE: 2, C.NEW_SESSION_TICKET: 9, CCS: 9, C.FINISHED: 9}


def message_name(what: Any) -> str:
    """A handshake message type (or CCS) by its RFC name."""
    if what == CCS:
        return CCS
    return C.HANDSHAKE_NAMES.get(what, "handshake(%s)" % what)
