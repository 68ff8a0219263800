"""State diagrams of the engine's handshakes, generated from its transition tables.

`tlscore.client.TRANSITIONS` and `tlscore.server.TRANSITIONS` say, per state, which
message is expected, which handler runs and the usual next state. A handler may return
another state (optional messages: ECDHE's ServerKeyExchange, a client certificate);
those alternatives are read from the handler's own `return STATE` statements, so the
picture follows the code. Each edge is labelled with the message and its classic step.

    python -m hsmtls.trace_states client   # Mermaid stateDiagram-v2, for docs/architecture.md

`mermaid(role)` gives the text; `edges(role)` the (state, label, next state) list.
Paste it into docs/architecture.md between `<!-- states:client -->` and `<!-- /states:client -->`
(and the same for server): tests/unit/test_trace_states.py then keeps it in step.
"""

from __future__ import annotations

import inspect
import re
import sys

from tlscore import client, server
from tlscore.connection import CCS

from .trace import _CLIENT_MESSAGE_STEPS, _SERVER_MESSAGE_STEPS, message_name

ROLES = {"client": (client, client.ClientConnection), "server": (server, server.ServerConnection)}

_RETURN_STATE = re.compile(r"^\s*return ([A-Z][A-Z0-9_]*)\s*$", re.M)
_SET_STATE = re.compile(r"self\.state = ([A-Z][A-Z0-9_]*)")


def _states(module) -> set[str]:
    return {v for k, v in vars(module).items() if k.isupper() and isinstance(v, str)}


def _label(role: str, msg) -> str:
    # the sender of a message the `role` side receives is the other side
    steps = _SERVER_MESSAGE_STEPS if role == "client" else _CLIENT_MESSAGE_STEPS
    name = CCS if msg == CCS else message_name(msg)
    step = steps.get(msg)
    return "%s [%s]" % (name, step) if step else name


def edges(role: str) -> list[tuple[str, str, str]]:
    """(state, label, next state) for every table entry and handler alternative."""
    module, cls = ROLES[role]
    states = _states(module) | {"CONNECTED", "CLOSED"}
    out: list[tuple[str, str, str]] = []
    for state, table in cls.TRANSITIONS.items():
        for msg, (handler, nxt) in table.items():
            label = _label(role, msg)
            targets = [nxt] if nxt is not None else [state]
            try:
                src = inspect.getsource(getattr(cls, handler))
            except (OSError, TypeError):
                src = ""
            for alt in _RETURN_STATE.findall(src):
                # returning to CONNECTED mid-handshake means "refused a renegotiation":
                # only possible on an established connection, i.e. from CONNECTED
                if alt == "CONNECTED" and state != "CONNECTED":
                    continue
                if alt in states and alt not in targets:
                    targets.append(alt)
            for t in targets:
                out.append((state, label, t))
    # the first ClientHello is sent by initiate(), outside the table
    if not cls.TRANSITIONS.get(cls.INITIAL_STATE):
        for name, fn in inspect.getmembers(cls, inspect.isfunction):
            if name.startswith("_send"):
                for t in _SET_STATE.findall(inspect.getsource(fn)):
                    out.append((cls.INITIAL_STATE, "initiate() sends ClientHello [1]", t))
    return out


def mermaid(role: str) -> str:
    _, cls = ROLES[role]
    lines = ["stateDiagram-v2", "    [*] --> %s" % cls.INITIAL_STATE]
    for a, label, b in edges(role):
        lines.append("    %s --> %s : %s" % (a, b, label))
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    roles = argv or ["client", "server"]
    for role in roles:
        if role not in ROLES:
            print("usage: python -m hsmtls.trace_states [client|server]", file=sys.stderr)
            return 2
        print("```mermaid\n%s```" % mermaid(role))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
