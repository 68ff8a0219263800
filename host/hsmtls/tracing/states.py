"""State diagrams of the engine's handshakes, drawn from its transition tables alone.

`tlscore.client.TRANSITIONS` and `tlscore.server.TRANSITIONS` are the whole state
machine: per state, each event that may come (a handshake message, ChangeCipherSpec,
or a local event such as initiate()), the handler that runs and every state it may lead
to; the engine checks each move against them (Connection._dispatch). Each edge is
labelled with the event and its classic step. Not drawn: the exit every state has to
CLOSED (a fatal alert either way, close_notify, close()).

    python -m hsmtls.tracing.states client   # Mermaid stateDiagram-v2, for docs/architecture.md

`mermaid(role)` gives the text; `edges(role)` the (state, label, next state) list.
Paste it into docs/architecture.md between `<!-- states:client -->` and `<!-- /states:client -->`
(and the same for server): tests/unit/test_trace_states.py then keeps it in step.
"""

from __future__ import annotations

import sys

from hsmtls.tracing.steps import CLIENT_MESSAGE_STEPS, SERVER_MESSAGE_STEPS, message_name
from tlscore import client, server
from tlscore.connection import INITIATE, RENEGOTIATE, RENEGOTIATION_REFUSED, SESSION_ANSWERED

ROLES = {"client": client.ClientConnection, "server": server.ServerConnection}

# the classic steps of the local events: the first ClientHello, the session an
# offered resumption names (the server's answer to step 1), a renegotiation
_LOCAL_STEPS = {INITIATE: 1, SESSION_ANSWERED: 2, RENEGOTIATE: 11, RENEGOTIATION_REFUSED: 11}


def _label(role: str, event) -> str:
    if event in _LOCAL_STEPS:
        return "%s [%d]" % (event, _LOCAL_STEPS[event])
    # the sender of a message the `role` side receives is the other side
    steps = SERVER_MESSAGE_STEPS if role == "client" else CLIENT_MESSAGE_STEPS
    name = message_name(event)
    step = steps.get(event)
    return "%s [%s]" % (name, step) if step else name


def edges(role: str) -> list[tuple[str, str, str]]:
    """(state, label, next state) for every move the table allows."""
    cls = ROLES[role]
    return [
        (state, _label(role, event), nxt)
        for state, table in cls.TRANSITIONS.items()
        for event, (_handler, next_states) in table.items()
        for nxt in next_states
    ]


def mermaid(role: str) -> str:
    cls = ROLES[role]
    lines = ["stateDiagram-v2", "    [*] --> %s" % cls.INITIAL_STATE]
    for a, label, b in edges(role):
        lines.append("    %s --> %s : %s" % (a, b, label))
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    roles = argv or ["client", "server"]
    for role in roles:
        if role not in ROLES:
            print("usage: python -m hsmtls.tracing.states [client|server]", file=sys.stderr)
            return 2
        print("```mermaid\n%s```" % mermaid(role))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
