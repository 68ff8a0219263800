# The board's application (firmware/main.py starts it: boardapp.board.Board): link
# mode over the serial port, and the TLS client run on the host's command. The host
# sends RUN; the board asks the host to OPEN a TCP connection, drives tlscore's
# ClientConnection (the host only carries TLS records between the link and TCP),
# answers the engine's "sign" requests with its own key, and reports a RESULT with the
# negotiated parameters, compute time per handshake step and the live heap at each
# step. Trust anchor, certificate and key are files on the board's flash (ca.pem,
# client.pem, client.key): the host is exactly what the board must not have to trust,
# so it never supplies a trust anchor or sees the key. What the host may still ask is
# held to docs/board-security.md: a new key, certificate or anchor only on a request
# signed by the anchor's CA (trust.py, loaded only then), the REPL only in development
# mode, a TIME never before the latest one the board accepted.
#
# Loaded at boot: board (Board: the link, frames, flash files, the clock) and session
# (Session: one RUN's TLS client). Loaded only when needed, each by a function-level
# import, so that a board's heap holds only the code it runs: autorun (autorun.json),
# status (STATS with identity), key and key_ec (the board's own key, read at its first
# use), keygen and derwriter (KEYGEN: a new key and its CSR), trust (signed requests),
# mbedtls (RUN with engine mbedtls: the benchmark's yardstick). This file imports
# nothing: importing any of them loads it first.

# No TIME before this is taken: the firmware's build time (a constant here; `hsmtls
# board deploy` writes the build's own, tools.build), and the latest time the board has
# accepted, kept in TIME_FLOOR on its flash. That file is rewritten only when the time
# has moved on by more than TIME_FLOOR_STEP, to spare the flash: after a reset the
# clock may go back by at most that much. (Here, for board and trust alike.)
BUILD_TIME = 1796083200  # 2026-12-01
TIME_FLOOR = "timefloor"
TIME_FLOOR_STEP = 86400
