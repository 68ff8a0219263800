"""Reaching a PKCS#11 token: the module, the token, the PIN, and a pool of sessions.

python-pkcs11 initialises the module with C_Initialize(NULL), which tells the module
the application will not call it from several threads at once (PKCS#11 §5.4: no
locking). So every call into a module is serialised by one lock per module in this
process; handshakes scale with `hsmtls serve --workers N` processes, each with its own
module instance and sessions, and the event loop never waits on the lock (token calls
run in worker threads).

Login state in PKCS#11 belongs to the application, not to a session: one session logs
in and all of them are logged in, and C_Logout on any logs all of them out. So the
pool keeps one *login session* open for its lifetime and hands out separate worker
sessions (one per concurrent operation; python-pkcs11 sessions must not be used from
two threads at once). A worker whose call fails with a session/device error is thrown
away and reopened on next use; a lost login is redone (`logins` counts them). Each
failure fails one operation, never the pool; other errors fail the operation and
leave the session and the login alone.
"""

from __future__ import annotations

import getpass
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import TokenFlag
from pkcs11 import exceptions as p11e

from .uri import PKCS11URI

log = logging.getLogger("hsmtls.hsm")

SOFTHSM_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)

# Errors that mean the session or the login is gone, whatever was asked of it: the
# session is thrown away and the login redone. A lost login also shows as a stale
# object or key handle (private objects vanish on C_Logout). Errors an input can cause
# (CKR_GENERAL_ERROR, CKR_FUNCTION_FAILED, CKR_DATA_*: SoftHSM2 answers a ciphertext of
# the wrong length or >= n with CKR_GENERAL_ERROR) are not among them: a peer's bytes
# must never make the server log in again.
SESSION_ERRORS = (
    p11e.SessionHandleInvalid,
    p11e.SessionClosed,
    p11e.DeviceRemoved,
    p11e.DeviceError,
    p11e.TokenNotPresent,
    p11e.UserNotLoggedIn,
    p11e.KeyHandleInvalid,
    p11e.ObjectHandleInvalid,
)


class TokenError(Exception):
    """A token problem, as one line that says what to do."""


def find_module(explicit: str | None = None) -> str:
    path = explicit or os.environ.get("HSMTLS_PKCS11_MODULE")
    if path:
        if not Path(path).exists():
            raise TokenError(f"PKCS#11 module {path} does not exist: check --module / HSMTLS_PKCS11_MODULE")
        return path
    for candidate in SOFTHSM_MODULES:
        if Path(candidate).exists():
            return candidate
    raise TokenError(
        "no PKCS#11 module found: install SoftHSM2 (apt install softhsm2) or point "
        "--module / HSMTLS_PKCS11_MODULE at your token's library (e.g. opensc-pkcs11.so)"
    )


_LIBS: dict[str, Any] = {}
_LIBS_LOCK = threading.Lock()
_MODULE_LOCKS: dict[str, threading.RLock] = {}


def module_lock(path: str) -> threading.RLock:
    with _LIBS_LOCK:
        return _MODULE_LOCKS.setdefault(path, threading.RLock())


def load_module(path: str) -> Any:
    with _LIBS_LOCK:
        if path not in _LIBS:
            try:
                _LIBS[path] = pkcs11.lib(path)
            except (OSError, RuntimeError, p11e.PKCS11Error) as e:
                raise TokenError(f"cannot load PKCS#11 module {path}: {e or type(e).__name__}") from None
        return _LIBS[path]


def read_pin(pin_file: str | None = None, uri: PKCS11URI | None = None, prompt: bool = True) -> str:
    """The user PIN from HSMTLS_PIN, --pin-file, the URI's pin-source, or a prompt."""
    pin = os.environ.get("HSMTLS_PIN")
    if pin:
        return pin
    source = pin_file
    if source is None and uri is not None and "pin-source" in uri.query:
        source = uri.query["pin-source"]
        if source.startswith("file:"):
            source = source[len("file:"):]
    if source:
        try:
            return Path(source).read_text().strip("\r\n")
        except OSError as e:
            raise TokenError(f"cannot read PIN file {source}: {e.strerror}") from None
    if prompt and sys.stdin.isatty():
        return getpass.getpass("Token user PIN: ")
    raise TokenError("no token PIN: set HSMTLS_PIN, pass --pin-file FILE, or run interactively")


def describe_error(e: BaseException) -> str:
    name = type(e).__name__
    text = str(e)
    return f"{name}: {text}" if text and text != name else name


def _transient_retries(budget: float = 5.0) -> Iterator[bool]:
    """Yields False before each try but the last, True before the last; sleeps between
    tries (50 ms, growing to 500 ms) for about `budget` seconds in all: for SoftHSM2's
    transient failures while another process rewrites the token's files."""
    spent, delay = 0.0, 0.05
    while spent + delay <= budget:
        yield False
        time.sleep(delay)
        spent += delay
        delay = min(delay * 1.5, 0.5)
    yield True


class Token:
    """One token, found by the URI's token label (or the only initialised token)."""

    def __init__(self, uri: PKCS11URI, module: str | None = None) -> None:
        self.uri = uri
        self.module_path = find_module(module or uri.query.get("module-path"))
        self.lib = load_module(self.module_path)
        self.lock = module_lock(self.module_path)
        label = uri.token
        # SoftHSM2 rewrites a token's files when another process logs in, opens sessions or
        # adds an object; a listing made at that moment can fail or miss the token. Such a
        # miss is transient: look again for up to about 5 s (a loaded machine was seen to
        # miss it for longer than 1.4 s, a server worker then failing to start) before
        # saying it is not there.
        tokens = []
        for last in _transient_retries():
            try:
                tokens = [
                    t for t in self.lib.get_tokens()
                    if (t.flags & TokenFlag.TOKEN_INITIALIZED) and (label is None or t.label == label)
                ]
            except p11e.PKCS11Error as e:
                if last:
                    raise TokenError(f"cannot list tokens of {self.module_path}: {describe_error(e)}") from None
            if tokens:
                break
        if not tokens:
            where = f"labelled {label!r}" if label else "initialised"
            raise TokenError(
                f"no token {where} in {self.module_path}: create one with "
                "`hsmtls token init --label ...` or check the URI's token= attribute"
            )
        if len(tokens) > 1:
            raise TokenError("several tokens match: name one with token=LABEL in the URI")
        self.token = tokens[0]
        self.label = self.token.label

    def open(self, pin: str | None = None, rw: bool = False) -> Any:
        """A session; logs in when pin is given (a failed login closes nothing we keep)."""
        with self.lock:
            return self._open(pin, rw)

    def _open(self, pin: str | None, rw: bool) -> Any:
        # The same SoftHSM2 rewrite as in the lookup above can make C_OpenSession or
        # C_Login fail for a moment (GeneralError, UserPinNotInitialized while the
        # token's file is half written): look again, as the lookup does, before saying so.
        for last in _transient_retries():
            try:
                return self._open_once(pin, rw)
            except (p11e.GeneralError, p11e.UserPinNotInitialized) as e:
                if last:
                    raise TokenError(f"cannot open a session on token {self.label!r}: {describe_error(e)}") from None
                self._look_again()
        raise AssertionError("unreachable")  # the last try returns or raises

    def _look_again(self) -> None:
        # a new listing makes SoftHSM2 read the token's files again, where the token
        # object in hand may keep what it read while they were half written
        try:
            found = [t for t in self.lib.get_tokens() if t.label == self.label]
        except p11e.PKCS11Error:
            return
        if len(found) == 1:
            self.token = found[0]

    def _open_once(self, pin: str | None, rw: bool) -> Any:
        try:
            return self.token.open(rw=rw, user_pin=pin)
        except p11e.UserAlreadyLoggedIn:
            return self.token.open(rw=rw)
        except p11e.PinIncorrect:
            raise TokenError(f"wrong PIN for token {self.label!r} (check HSMTLS_PIN / --pin-file)") from None
        except p11e.PinLocked:
            raise TokenError(f"the user PIN of token {self.label!r} is locked: unlock it with the SO PIN") from None
        except (p11e.GeneralError, p11e.UserPinNotInitialized):
            raise  # perhaps transient: _open looks again
        except p11e.PKCS11Error as e:
            raise TokenError(f"cannot open a session on token {self.label!r}: {describe_error(e)}") from None


class _Worker:
    def __init__(self, session: Any) -> None:
        self.session = session
        self.objects: dict[tuple, Any] = {}


class SessionPool:
    """Sessions for concurrent operations on one token, logged in once."""

    def __init__(self, token: Token, pin: str, size: int = 4, rw: bool = False) -> None:
        self.token = token
        self._pin = pin
        self.size = max(1, size)
        self.rw = rw
        self._lock = threading.Lock()
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._created = 0
        self.reopened = 0
        self._login = token.open(pin, rw=rw)  # raises TokenError on a wrong PIN
        self.logins = 1  # C_Login calls made by this pool (1 + the relogins)

    def _relogin(self) -> None:
        with self._lock, self.token.lock:
            try:
                self._login.close()
            except p11e.PKCS11Error:
                pass
            self._login = self.token.open(self._pin, rw=self.rw)
            self.logins += 1

    def _new_worker(self) -> _Worker:
        try:
            with self.token.lock:
                return _Worker(self.token.token.open(rw=self.rw))
        except p11e.PKCS11Error as e:
            raise TokenError(f"cannot open a session on token {self.token.label!r}: {describe_error(e)}") from None

    @contextmanager
    def session(self) -> Iterator[_Worker]:
        worker = None
        try:
            worker = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                grow = self._created < self.size
                if grow:
                    self._created += 1
            if grow:
                try:
                    worker = self._new_worker()
                except Exception:
                    with self._lock:
                        self._created -= 1
                    raise
            else:
                worker = self._idle.get()
        broken = False
        self.token.lock.acquire()
        try:
            yield worker
        except SESSION_ERRORS as e:
            broken = True
            log.warning("token %r: %s; reopening the session and logging in again", self.token.label, describe_error(e))
            # a lost login shows as several errors (UserNotLoggedIn, ObjectHandleInvalid
            # when private objects vanish), so log in again after any of them
            try:
                self._relogin()
            except TokenError as le:
                log.error("token %r: login again failed: %s", self.token.label, le)
            raise
        finally:
            self.token.lock.release()
            if broken:
                try:
                    with self.token.lock:
                        worker.session.close()
                except Exception:
                    pass
                with self._lock:
                    self._created -= 1
                    self.reopened += 1
            else:
                self._idle.put(worker)

    def close(self) -> None:
        with self.token.lock:
            self._close()

    def _close(self) -> None:
        while True:
            try:
                w = self._idle.get_nowait()
            except queue.Empty:
                break
            try:
                w.session.close()
            except p11e.PKCS11Error:
                pass
        try:
            self._login.close()
        except p11e.PKCS11Error:
            pass
