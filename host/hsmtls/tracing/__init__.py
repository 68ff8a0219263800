"""The handshake made visible: trace.py collects a structured transcript from the
engine's observation hook, render.py draws it (terminal, SVG, HTML), steps.py numbers
the classic handshake steps both use, states.py draws the engine's transition tables as
state diagrams (`python -m hsmtls.tracing.states client|server`), keylog.py writes
NSS key log lines and pcap.py pcapng captures for Wireshark."""
