"""State diagrams generated from the engine's transition tables (hsmtls.trace_states)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hsmtls.trace_states import ROLES, edges, main, mermaid

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


@pytest.mark.parametrize("role", ["client", "server"])
def test_every_table_entry_is_an_edge(role):
    _, cls = ROLES[role]
    got = {(a, b) for a, _, b in edges(role)}
    for state, table in cls.TRANSITIONS.items():
        for _msg, (_handler, nxt) in table.items():
            assert (state, nxt if nxt is not None else state) in got


def test_handler_alternatives_are_read_from_the_handlers():
    client_edges = {(a, label.split(" [")[0], b) for a, label, b in edges("client")}
    assert ("SERVER_HELLO_RECEIVED", "Certificate", "WAIT_SERVER_KEY_EXCHANGE") in client_edges
    assert ("START", "initiate() sends ClientHello", "CLIENT_HELLO_SENT") in client_edges
    server_edges = {(a, b) for a, _, b in edges("server")}
    assert ("WAIT_CLIENT_HELLO", "WAIT_CLIENT_CERTIFICATE") in server_edges
    assert ("WAIT_CLIENT_KEY_EXCHANGE", "WAIT_CERTIFICATE_VERIFY") in server_edges
    assert ("WAIT_CLIENT_HELLO", "CONNECTED") not in server_edges  # refusal: renegotiation only
    assert ("CONNECTED", "CONNECTED") in server_edges


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
    assert m.group(1) == mermaid(role), "regenerate: python -m hsmtls.trace_states %s" % role
