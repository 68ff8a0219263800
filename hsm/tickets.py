"""Ticket keys in the token: the AES-256 keys that seal a server's sessions (tickets and
its session cache, hsmtls.sessions) by C_Encrypt/C_Decrypt with CKM_AES_GCM. Made in
the token, sensitive and never extractable: no RAM copy of the key that opens every
session exists anywhere.

Each server key has its own: label `<server key object>-ticket`, CKA_ID the key's name
in the tickets it seals (8 bytes: creation time in seconds, big-endian, then 4 random),
so the newest seals and every one present opens. `hsmtls token keygen --object NAME
--ticket-key` makes a new one and keeps the newest previous one only: a ticket sealed
with it still opens until the session in it expires (the session's own age is checked
against the lifetime), and one sealed with an older key is a full handshake.
"""

from __future__ import annotations

import os
import struct
import time
from typing import Any

from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e
from pkcs11.mechanisms import GCMParams

from .keyops import TokenKey
from .token import SESSION_ERRORS, Token, TokenError, describe_error
from .uri import PKCS11URI

TICKET_SUFFIX = "-ticket"
NAME_LEN = 8
NONCE_LEN = 12
KEEP = 2  # the newest key and the one before it


def ticket_label(server_key_object: str) -> str:
    return server_key_object + TICKET_SUFFIX


def make_ticket_key(token: Token, pin: str, name: str) -> PKCS11URI:
    """A new ticket key for server key `name`; all but the newest previous one go."""
    label = ticket_label(name)
    session = token.open(pin, rw=True)
    try:
        key_id = struct.pack(">I", int(time.time()) & 0xFFFFFFFF) + os.urandom(4)
        session.generate_key(
            KeyType.AES, 256, id=key_id, label=label, store=True,
            template={
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True,
                Attribute.WRAP: False,
                Attribute.UNWRAP: False,
                Attribute.DERIVE: False,
                Attribute.SIGN: False,
                Attribute.VERIFY: False,
            },
        )
        found = sorted(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}),
                       key=lambda o: bytes(o[Attribute.ID] or b""))
        for old in found[:-KEEP]:
            old.destroy()
    except p11e.PKCS11Error as e:
        raise TokenError(f"cannot make ticket key {label!r} on {token.label!r}: {describe_error(e)}") from None
    finally:
        session.close()
    return PKCS11URI({"token": token.label, "object": label, "type": "secret-key"})


class TokenSealer:
    """Seals and opens sessions with the server key's ticket keys, through its pool."""

    relist = 60.0  # seconds: a running server seals with a rotated key this soon

    def __init__(self, key: TokenKey) -> None:
        self.key = key
        self.label = ticket_label(key.uri.object or "key")
        self.description = f"ticket key {self.label!r} in token {key.token.label!r}"
        with key.pool.session() as w:
            if not self._keys(w, fresh=True):
                raise TokenError(
                    f"token {key.token.label!r} has no ticket key for {key.uri.object or 'the key'!r}: make one with "
                    f"`hsmtls token keygen --object {key.uri.object or 'NAME'} --ticket-key`"
                )

    def _keys(self, w: Any, fresh: bool = False) -> list[tuple[bytes, Any]]:
        # [(name, key object)] oldest first, listed again once a minute per session
        listed = w.objects.get(("tickets",))
        if fresh or listed is None or time.monotonic() - listed[0] > self.relist:
            found = w.session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: self.label})
            keys = sorted(((bytes(o[Attribute.ID] or b""), o) for o in found), key=lambda t: t[0])
            keys = [(n, o) for n, o in keys if len(n) == NAME_LEN]
            listed = (time.monotonic(), keys)
            w.objects[("tickets",)] = listed
        return listed[1]

    def seal(self, plaintext: bytes) -> bytes:
        with self.key.pool.session() as w:
            keys = self._keys(w)
            if not keys:
                raise TokenError(f"{self.description}: gone from the token")
            name, obj = keys[-1]
            nonce = os.urandom(NONCE_LEN)
            try:
                sealed = obj.encrypt(plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, name, 128))
            except (p11e.KeyHandleInvalid, p11e.ObjectHandleInvalid):
                keys = self._keys(w, fresh=True)  # rotated away since we listed it
                if not keys or keys[-1][0] == name:
                    raise
                name, obj = keys[-1]
                sealed = obj.encrypt(plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, name, 128))
            return name + nonce + bytes(sealed)

    def open(self, blob: bytes) -> bytes | None:
        if len(blob) < NAME_LEN + NONCE_LEN + 16:
            return None
        name, nonce, body = blob[:NAME_LEN], blob[NAME_LEN : NAME_LEN + NONCE_LEN], blob[NAME_LEN + NONCE_LEN :]
        with self.key.pool.session() as w:
            found = dict(self._keys(w)).get(name)
            if found is None:
                found = dict(self._keys(w, fresh=True)).get(name)  # rotated since the last listing?
            if found is None:
                return None
            try:
                return bytes(found.decrypt(body, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, name, 128)))
            except (p11e.KeyHandleInvalid, p11e.ObjectHandleInvalid):
                # destroyed by a rotation since we listed it: a full handshake; if it is
                # still there, the session lost its login, which the pool handles
                if name in dict(self._keys(w, fresh=True)):
                    raise
                return None
            except SESSION_ERRORS:
                raise
            except p11e.PKCS11Error:
                return None  # the tag does not verify: not ours, or altered
