"""A server's resumable sessions (RFC 5246 §7.3 session IDs, RFC 5077 tickets).

The engine never sees the key that protects a session: it asks (KeyOperationRequest
FIND_SESSION, OPEN_TICKET, SEAL_TICKET) and a `SessionStore` answers. Every session is
sealed before it leaves the connection that made it: a ticket is the sealed session,
carried by the client; the session cache keeps sealed sessions by ID, so a cache shared
by worker processes (a manager process holds it) holds nothing that opens a session.

Sealed: name (8 bytes, which key) || nonce (12) || AES-256-GCM(session) with the name as
associated data. The key is a token's ticket key (hsm/tickets.py: made and kept in the
token, rotated by `hsmtls token keygen --ticket-key`) or, for a file key, one made in RAM
when `serve` starts and handed to its workers (`RamSealer`).

Whatever goes wrong opening a session (unknown name, a tag that fails, a session that no
longer parses) is a full handshake, never an error.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from multiprocessing.managers import BaseManager
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tlscore.events import FIND_SESSION, OPEN_TICKET, SEAL_TICKET, KeyOperationRequest
from tlscore.session import Session

log = logging.getLogger("hsmtls.sessions")

SESSION_KINDS = (FIND_SESSION, OPEN_TICKET, SEAL_TICKET)
NAME_LEN = 8
NONCE_LEN = 12
DEFAULT_CACHE = 20000  # sessions; each sealed one is about 110 bytes (more with a client certificate)
DEFAULT_LIFETIME = 7200  # seconds, RFC 5077's example hint and OpenSSL's default


class Sealer(Protocol):
    description: str

    def seal(self, plaintext: bytes) -> bytes: ...

    def open(self, blob: bytes) -> bytes | None: ...


class RamSealer:
    """AES-256-GCM under a key in this process's memory (a file key's server: its
    private key is in a file anyway); `key` hands the parent's key to a worker."""

    description = "a key in memory"
    inline = True  # fast enough to run on the server's event loop

    def __init__(self, key: bytes | None = None, name: bytes | None = None) -> None:
        self.key = key if key is not None else AESGCM.generate_key(bit_length=256)
        self.name = name if name is not None else os.urandom(NAME_LEN)
        self._aead = AESGCM(self.key)

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_LEN)
        return self.name + nonce + self._aead.encrypt(nonce, plaintext, self.name)

    def open(self, blob: bytes) -> bytes | None:
        if len(blob) < NAME_LEN + NONCE_LEN + 16 or blob[:NAME_LEN] != self.name:
            return None
        try:
            return self._aead.decrypt(blob[NAME_LEN : NAME_LEN + NONCE_LEN], blob[NAME_LEN + NONCE_LEN :], self.name)
        except InvalidTag:
            return None


class SessionTable:
    """Sealed sessions by ID, at most `capacity`; the oldest go first."""

    def __init__(self, capacity: int = DEFAULT_CACHE) -> None:
        self.capacity = capacity
        self._items: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: bytes) -> bytes | None:
        with self._lock:
            return self._items.get(bytes(session_id))

    def put(self, session_id: bytes, sealed: bytes) -> None:
        with self._lock:
            self._items[bytes(session_id)] = sealed
            self._items.move_to_end(bytes(session_id))
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def size(self) -> int:  # len() through a manager's proxy
        return len(self._items)


class _TableManager(BaseManager):
    pass


_TableManager.register("SessionTable", SessionTable)


def shared_table(capacity: int) -> tuple[Any, Any]:
    """(manager, table proxy): a SessionTable in a process of its own, for `serve
    --workers N`; the proxy pickles into each worker. Stop the manager at the end."""
    import multiprocessing as mp

    manager = _TableManager(ctx=mp.get_context("spawn"))
    manager.start()
    return manager, manager.SessionTable(capacity)  # type: ignore[attr-defined]


class SessionStore:
    """Answers a server engine's session requests; `keep` files a full handshake's
    session in the cache (None: no cache, tickets only)."""

    def __init__(self, sealer: Sealer, table: Any = None) -> None:
        self.sealer = sealer
        self.table = table
        # keep() fast enough for the event loop: sealed in memory, kept in this process
        self.inline = getattr(sealer, "inline", False) and (table is None or isinstance(table, SessionTable))

    def answer(self, req: KeyOperationRequest) -> bytes | None:
        try:
            if req.kind == SEAL_TICKET:
                return self.sealer.seal(bytes(req.data))
            if req.kind == OPEN_TICKET:
                return self.sealer.open(bytes(req.data))
            if req.kind == FIND_SESSION and self.table is not None:
                sealed = self.table.get(bytes(req.data))
                return self.sealer.open(sealed) if sealed else None
        except Exception as e:  # a token or manager failure: a full handshake, said once per call
            log.warning("session %s failed (%s: %s): a full handshake instead", req.kind, type(e).__name__, e)
        return None

    def keep(self, session: Session) -> None:
        if self.table is None or not session.session_id:
            return
        try:
            self.table.put(bytes(session.session_id), self.sealer.seal(session.to_bytes()))
        except Exception as e:
            log.warning("session cache: cannot keep a session (%s: %s)", type(e).__name__, e)
