# The frame types of the board link and their payloads. Control payloads are small
# JSON objects (the board has `json` in C); TLS records and application data travel as
# raw bytes, cut into MAX_PAYLOAD pieces by the sender and joined again by the reader,
# since both are byte streams.
#
#   host -> board                         board -> host
#   SYNC     {"v"}     (unsequenced)      HELLO    {"v", "board", "impl", "heap", ...}
#   PING     nonce     (unsequenced)      PONG     nonce (unsequenced)
#   ACK      -         (unsequenced)      ACK      -
#   TIME     {"t"} unix seconds           OPEN     {"target", "server_name"}: connect TCP
#   RUN      {"server_name", "client_auth", "renegotiate", "suites", "mfl", "send"}
#   OPENED   {} the TCP connection is up  (or ERROR {"where": "tcp", ...})
#   TLS      record bytes                 TLS      record bytes
#   CLOSE    {"why"} the TCP peer closed  CLOSE    {"why"} close the TCP connection
#   APP      bytes to send in TLS         APP      bytes received in TLS
#   STATS    {} ask for counters          STATS    {link counters, heap}
#            {"identity": true}: and what  STATS    {..., "anchors": [{sha256, subject,
#            the board holds (board status)           not_after}], "cert": {subject, issuer,
#                                                     serial, not_after, key}, "autorun"}
#   REPL     {} leave link mode           LOG      text
#                                         RESULT   {suite, ems, ..., steps, heap}
#                                         ERROR    {"where", "reason"}
#   since version 2 (provisioning; HELLO then carries "features": ["provision"]):
#   KEYGEN   {"bits", "subject": [[k, v]]} CSR      PKCS#10 DER (after LOG progress)
#   INSTALL  {"ca", "cert"} PEM text       INSTALLED {"files": {name: sha256 hex}}
#   since version 3 (application data a slice at a time; the board never holds it whole):
#   RUN      {..., "send_bytes": n}        WANT     {"n"} send the next n of them as APP
#                                         RESULT   {..., "received_bytes"}: the text
#                                                  itself came as APP; the host joins it
#   HELLO "features" has "autorun" (a session the board starts on its own, through
#   whatever host bridges its OPEN; kept in autorun.json on its flash):
#   AUTORUN  {"opts": RUN's opts + "every_s" AUTORUN  {"opts": what the board now keeps}
#            (0: once a boot), or null: off}  RESULT   {..., "autorun": n} for such a session
#   HELLO "features" has "trust" (the board does not trust its host, docs/board-security.md;
#   HELLO also says "rng": os.urandom truly random, and "dev": true in development mode):
#   CHALLENGE {}                          CHALLENGE {"c": nonce for one request, "anchors":
#                                                   [sha256 hex of each anchor], "dev"}
#   KEYGEN, INSTALL, ADMIN {"req": JSON text of the request's fields with "op" (the frame
#            type in lower case) and "challenge" (the board's last c), "sig": base64
#            RSASSA-PKCS1-v1_5 SHA-256 by the anchor's CA key over REQUEST_CONTEXT + req}
#            A board without an anchor (first provisioning) also takes them unsigned,
#            as the plain fields of version 2.
#   ADMIN    {"op": "admin", "set": "dev",   ADMIN    {"dev", "time_floor", "anchor"}: what it has
#            "on": bool} | {"set": "time", "t"}: the clock and its lower bound
#            | {"set": "factory_reset"}: anchor, certificate, key and settings erased
#   TIME     a "t" before the board's lower bound: ERROR {"where": "time"}, clock unchanged
#   REPL     on a production board: ERROR {"where": "repl"}, link mode goes on

import json

SYNC = 0x01
HELLO = 0x02
ACK = 0x03
PING = 0x04
PONG = 0x05

TIME = 0x10
RUN = 0x11
OPEN = 0x12
OPENED = 0x13
TLS = 0x14
APP = 0x15
CLOSE = 0x16
STATS = 0x17
REPL = 0x18

LOG = 0x20
RESULT = 0x21
ERROR = 0x22
WANT = 0x23

KEYGEN = 0x30
CSR = 0x31
INSTALL = 0x32
INSTALLED = 0x33
AUTORUN = 0x34
CHALLENGE = 0x35
ADMIN = 0x36

# what a signed request's signature covers before its text: nothing else the CA key
# signs (certificates, CRLs: DER, which starts with 0x30) can be taken for a request
REQUEST_CONTEXT = b"hsmtls board request 1\n"

UNSEQUENCED = (SYNC, HELLO, ACK, PING, PONG)

NAMES = {
    SYNC: "SYNC", HELLO: "HELLO", ACK: "ACK", PING: "PING", PONG: "PONG", TIME: "TIME",
    RUN: "RUN", OPEN: "OPEN", OPENED: "OPENED", TLS: "TLS", APP: "APP", CLOSE: "CLOSE",
    STATS: "STATS", REPL: "REPL", LOG: "LOG", RESULT: "RESULT", ERROR: "ERROR", WANT: "WANT",
    KEYGEN: "KEYGEN", CSR: "CSR", INSTALL: "INSTALL", INSTALLED: "INSTALLED", AUTORUN: "AUTORUN",
    CHALLENGE: "CHALLENGE", ADMIN: "ADMIN",
}


def pack(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def unpack(payload):
    # -> dict; a malformed control payload becomes {} rather than an exception
    try:
        obj = json.loads(bytes(payload).decode())
    except Exception:
        return {}
    return obj if isinstance(obj, dict) else {}
