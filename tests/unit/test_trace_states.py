"""State diagrams generated from the engine's transition tables (hsmtls.tracing.states)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hsmtls.tracing.states import ROLES, edges, main, mermaid
from tlscore import client, server

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


@pytest.mark.parametrize("role", ["client", "server"])
def test_every_table_entry_is_an_edge(role):
    cls = ROLES[role]
    got = {(a, b) for a, _, b in edges(role)}
    for state, table in cls.TRANSITIONS.items():
        for _event, (handler, next_states) in table.items():
            assert callable(getattr(cls, handler)), handler
            assert next_states and all((state, nxt) in got for nxt in next_states)
            # every next state is a state of the table (or CONNECTED's exit, CLOSED)
            assert all(nxt in cls.TRANSITIONS for nxt in next_states), (state, next_states)


def test_the_alternatives_are_the_tables():
    client_edges = {(a, label.split(" [")[0], b) for a, label, b in edges("client")}
    assert ("WAIT_SERVER_CERTIFICATE", "Certificate", "WAIT_SERVER_KEY_EXCHANGE") in client_edges
    assert ("START", "initiate()", "WAIT_SERVER_HELLO") in client_edges
    assert ("WAIT_SERVER_HELLO", "no_renegotiation alert", "CONNECTED") in client_edges
    server_edges = {(a, b) for a, _, b in edges("server")}
    assert ("WAIT_CLIENT_HELLO", "WAIT_CLIENT_CERTIFICATE") in server_edges
    assert ("WAIT_CLIENT_KEY_EXCHANGE", "WAIT_CERTIFICATE_VERIFY") in server_edges
    assert ("WAIT_CLIENT_HELLO", "CONNECTED") not in server_edges  # refusal: renegotiation only
    assert ("CONNECTED", "CONNECTED") in server_edges


def test_no_state_is_assigned_outside_the_engine_core():
    # the table is the whole machine: only Connection._enter (a table move, checked)
    # and Connection._close (the exit to CLOSED) assign a state, and __init__ the first
    import inspect
    import re

    from tlscore import connection

    for module in (client, server, connection):
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            assert "self.state =" not in inspect.getsource(fn), name
        for _, cls in inspect.getmembers(module, inspect.isclass):
            for name, fn in vars(cls).items():
                if callable(fn) and name not in ("_enter", "_close", "__init__"):
                    src = inspect.getsource(fn)
                    assert not re.search(r"self\.state\s*=[^=]", src), "%s.%s assigns the state" % (cls.__name__, name)


def test_mermaid_text(capsys):
    text = mermaid("server")
    assert text.startswith("stateDiagram-v2\n    [*] --> WAIT_CLIENT_HELLO\n")
    assert "    WAIT_FINISHED --> CONNECTED : Finished [8]\n" in text
    assert main(["client"]) == 0
    assert capsys.readouterr().out.startswith("```mermaid\nstateDiagram-v2")
    assert main(["board"]) == 2


@pytest.mark.parametrize("role", ["client", "server"])
def test_documented_state_diagram_matches_the_tables(role):
    text = ARCHITECTURE.read_text()
    m = re.search(r"<!-- states:%s -->\s*```mermaid\n(.*?)```\s*<!-- /states:%s -->" % (role, role),
                  text, re.S)
    assert m is not None, "docs/architecture.md lost its generated %s state diagram" % role
    assert m.group(1) == mermaid(role), "regenerate: python -m hsmtls.tracing.states %s" % role
