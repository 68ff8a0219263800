"""NSS key log lines, so Wireshark (or tshark) can decrypt captures of our traffic.

One `CLIENT_RANDOM <client_random hex> <master_secret hex>` line per handshake, the
first one and every renegotiation, written by the client and the server alike when the
engine reports the "keys" milestone (master secret and key block derived). The format
is the NSS one Firefox, curl and OpenSSL write for `SSLKEYLOGFILE`:
https://firefox-source-docs.mozilla.org/security/nss/legacy/key_log_format/

The file is opened in append mode for each line, so several processes (`serve
--workers N`) and our client and server in one process can share it. A key log holds
session secrets: whoever reads it decrypts the traffic. It is created mode 0600.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from hsmtls.tlsconfig import ConfigError

ENV = "SSLKEYLOGFILE"


class KeyLogError(ConfigError):
    """The key log cannot be written; the message says what to do."""


def keylog_line(client_random: bytes, master_secret: bytes) -> str:
    return "CLIENT_RANDOM %s %s\n" % (bytes(client_random).hex(), bytes(master_secret).hex())


class KeyLog:
    """Appends key log lines to `path`; `hook` is a TLSConfig.trace function."""

    def __init__(self, path: str, option: str = "--keylog") -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.close(fd)
        except OSError as e:
            raise KeyLogError(
                f"cannot write key log {path} ({option}): {e.strerror}; "
                "give a writable file path"
            ) from None

    def write(self, client_random: bytes, master_secret: bytes) -> None:
        line = keylog_line(client_random, master_secret).encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)  # one write per line: appends from processes don't interleave
            finally:
                os.close(fd)

    def hook(self, conn: Any, event: str, what: Any, msg: Any = None, size: int = 0) -> None:
        if event == "milestone" and what == "keys" and conn.master_secret:
            try:
                self.write(conn.client_random, conn.master_secret)
            except OSError:
                pass  # the file went away mid-run: a debugging aid must not fail a handshake


def keylog_from(path: str | None) -> KeyLog | None:
    """A KeyLog for an explicit path, else for $SSLKEYLOGFILE, else None."""
    if path:
        return KeyLog(path)
    env = os.environ.get(ENV)
    if env:
        return KeyLog(env, option=ENV)
    return None
