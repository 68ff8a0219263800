# Which host requests the board acts on (docs/board-security.md). A new key (KEYGEN),
# certificate or trust anchor (INSTALL) and the board's own settings (ADMIN: development
# mode, the clock's lower bound, a factory reset) are taken only on a request signed by
# the CA of the trust anchor already on the board's flash: the token's CA signs them
# (`hsmtls board provision`, `hsmtls board mode`), and the board checks the signature
# with the RSA verification it uses for certificates. Against replay, each signed
# request names the challenge the board gave last (CHALLENGE), a fresh random value
# used once: an old request, or one made for another board, names another.
# A board with no ca.pem (new, or after a factory reset) is in its first-provisioning
# window: it has nothing to check with, so it takes its first identity from whichever
# host provisions it (docs: do that where the host is yours).
# Loaded only for these frames: a board that is never provisioned over the link pays
# no heap for it.

import binascii
import gc
import hashlib
import json
import os

from boardapp import BUILD_TIME, TIME_FLOOR
from hsmlink import protocol as P
from tlscore import pkcs1, x509
from tlscore.backend_micropython import BACKEND

# What a factory reset erases: the identity, the settings and what was made for them
# (the nonce counter stays: a key the same board makes later must not reuse its counts,
# and the time's lower bound stays: it is no secret, only a floor)
IDENTITY = ("ca.pem", "client.pem", "client.key", "client.key.new", "dev", "autorun.json")


def on_frame(board, ftype, payload):
    # KEYGEN, INSTALL, ADMIN or CHALLENGE from the host; a refusal is an ERROR saying why
    where = P.NAMES[ftype].lower()
    try:
        if ftype == P.CHALLENGE:
            challenge(board)
        elif ftype == P.ADMIN:
            admin(board, authorize(board, where, payload))
        elif ftype == P.KEYGEN:
            opts = authorize(board, where, payload)
            if opts.get("type", "rsa") == "ec":
                # compile the curve code first, while the heap has the most room for it
                gc.collect()
                from tlscore import p256  # noqa: F401
            from boardapp import keygen

            keygen.start(board, opts)
        else:
            install(board, authorize(board, where, payload))
    except Exception as e:
        board.error(where, "%s: %s" % (type(e).__name__, e))


def challenge(board):
    # a new challenge (the last one is forgotten), and what the host needs to sign for
    # this board: which anchors it has
    board.challenge = binascii.hexlify(os.urandom(16)).decode()
    try:
        anchors = board.anchor_fingerprints() if board._exists("ca.pem") else []
    except Exception:
        anchors = ["unreadable"]
    board.link.send(P.CHALLENGE, P.pack({"c": board.challenge, "anchors": anchors, "dev": board.dev}))


def authorize(board, op, payload):
    # -> the request's fields if the board may act on it; ValueError saying why not.
    # The challenge is used up by any request, accepted or not.
    want = board.challenge
    board.challenge = None
    msg = P.unpack(payload)
    req = msg.get("req")
    if not board._exists("ca.pem"):
        # the first-provisioning window: signed or not, nothing to check it with
        return _fields(req, op) if isinstance(req, str) else msg
    if not isinstance(req, str) or not isinstance(msg.get("sig"), str):
        raise ValueError("this board has a trust anchor: %s must be signed by its CA (hsmtls board provision "
                         "--ca-key; docs/board-security.md)" % op.upper())
    fields = _fields(req, op)
    if want is None or fields.get("challenge") != want:
        raise ValueError("the request does not name this board's current challenge (replayed, or made for "
                         "another board or an earlier CHALLENGE)")
    try:
        anchors = board.anchors()
    except Exception as e:
        raise ValueError("ca.pem is unreadable (%s): only a factory reset (erasing the flash) opens the board "
                         "again" % e) from None
    sig = binascii.a2b_base64(msg["sig"])
    message = P.REQUEST_CONTEXT + req.encode()
    for a in anchors:
        k = a.public_key
        if isinstance(k, x509.RSAPublicKey) and pkcs1.verify(BACKEND, k.n, k.e, "sha256", message, sig):
            return fields
    if not any(isinstance(a.public_key, x509.RSAPublicKey) for a in anchors):
        raise ValueError("the board's trust anchor has no RSA key: it checks signed requests with RSA only")
    raise ValueError("%s is not signed by the board's trust anchor (%s)" % (op.upper(), anchors[0].subject_str()))


def _fields(req, op):
    fields = json.loads(req)
    if not isinstance(fields, dict) or fields.get("op") != op:
        raise ValueError("the signed request is not a %s" % op.upper())
    return fields


def admin(board, fields):
    what = fields.get("set")
    if what == "dev":
        # development mode from the next frame on (and kept across resets)
        on = bool(fields.get("on"))
        if on:
            board._write("dev", b"1")
        else:
            _remove(board, "dev")
        board.dev = on
    elif what == "time":
        # the clock and its lower bound where the CA says: undoes a TIME from the
        # future that a hostile host gave (which would otherwise refuse every true one)
        t = fields.get("t")
        if not isinstance(t, int) or t < 0:
            raise ValueError("time needs t, unix seconds")
        t = max(t, BUILD_TIME)
        board._write(TIME_FLOOR, b"%d" % t)
        board.time_kept = board.time_latest = t
        board.time = (t, board.port.ticks_ms())
    elif what == "factory_reset":
        board.abort_session("factory reset")
        board.keygen = None
        for name in IDENTITY:
            _remove(board, name)
        board._anchors = board._chain = board._key = None
        board._key_checked = False
        board.dev = False
        board.autorun = None
    else:
        raise ValueError("no such setting: %s" % what)
    floor = max(board.time_latest, board.time_kept or 0, BUILD_TIME)
    board.link.send(P.ADMIN, P.pack({"dev": board.dev, "time_floor": floor, "anchor": board._exists("ca.pem")}))


def _remove(board, name):
    try:
        os.remove(board.port.flash_path(name))
    except OSError:
        if board._exists(name):
            raise  # still there: whatever it was meant to end goes on


def install(board, opts):
    # INSTALL: the certificate for the key keygen.py made, and the anchors
    from boardapp import key as boardkey

    new_key = boardkey.load(board.port.flash_path("client.key.new"))
    ders = x509.pem_to_der_list(opts.get("cert", "").encode())
    if not ders:
        raise ValueError("no certificate in INSTALL")
    pk = x509.parse_certificate(ders[0]).public_key
    if pk is None or not new_key.matches(pk):
        raise ValueError("the certificate is not for the key this board generated")
    ca = opts.get("ca", "").encode()
    if not x509.load_anchors(ca):
        raise ValueError("no trust anchor in INSTALL")
    board._write("ca.pem", ca)
    board._write("client.pem", opts["cert"].encode())
    key_path = board.port.flash_path("client.key")
    try:
        os.remove(key_path)
    except OSError:
        pass
    os.rename(board.port.flash_path("client.key.new"), key_path)
    board._anchors = board._chain = board._key = None
    board._key_checked = False
    files = {}
    for name in ("ca.pem", "client.pem"):
        files[name] = binascii.hexlify(hashlib.sha256(board._read(name)).digest()).decode()
    board.link.send(P.INSTALLED, P.pack({"files": files}))
