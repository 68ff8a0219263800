# ruff: noqa: F821  (run after engine_loopback.py's set-up, which defines the names)
# Mutation fuzzing of live handshakes under MicroPython, after engine_loopback.py's
# set-up (the test prepends it): one flight of a client/server handshake (a board
# suite, with or without client authentication, sometimes a renegotiation) gets bit
# flips, a truncation, an insertion, a duplicated run or a byte set to a record-ish
# value. Whatever happens, neither engine may raise: a failure is one fatal alert and a
# closed connection on the side that noticed, and a closed engine ignores what comes.
# argv-free: FIRST and COUNT are prepended too. Prints "fail <seed> <what>" lines, then
# "done <seeds that passed> <seeds where the damage closed a connection>".
import random

from tlscore.events import ConnectionClosed

BOARD_SUITES = suites.supported_by(BACKEND)
_answer_exactly = answer


def answer(k, req):  # (pump() calls this one)
    # a damaged ClientKeyExchange decrypts to no PKCS#1 block: answer as the host's
    # implicit rejection does, with a premaster that then fails at Finished
    try:
        return _answer_exactly(k, req)
    except ValueError:
        return bytes(48)


def mutate(data):
    # (MicroPython's bytearray has no item deletion or resizing slice assignment)
    op = random.randrange(5)
    if op == 0 or len(data) < 2:
        b = bytearray(data)
        for _ in range(random.randint(1, 3)):
            i = random.randrange(len(b))
            b[i] ^= 1 << random.randrange(8)
        return bytes(b)
    if op == 1:
        return data[:random.randrange(1, len(data))]
    if op == 2:
        i = random.randrange(len(data))
        return data[:i] + bytes(random.getrandbits(8) for _ in range(random.randint(1, 8))) + data[i:]
    if op == 3:
        i, j = random.randrange(len(data)), random.randrange(len(data))
        if i > j:
            i, j = j, i
        return data[:j] + data[i:j + 1] + data[j:]
    i = random.randrange(len(data))
    return data[:i] + bytes((random.choice((0x00, 0xFF, 0x7F, 0x80, 0x16, 0x14, 0x15, 0x17)),)) + data[i + 1:]


def closed_sanely(events):
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    if len(closed) > 1:
        return "closed %d times" % len(closed)
    if closed and not closed[0].clean and (closed[0].alert is None or not closed[0].reason):
        return "closed without an alert or a reason"
    return None


def fuzz_one(seed):
    random.seed(seed)
    suite = random.choice(BOARD_SUITES)
    auth = random.getrandbits(1)
    now = lambda: NOW  # noqa: E731
    cc = TLSConfig(cipher_suites=[suite], trust_anchors=anchors, server_name="localhost",
                   certificate_chain=client_chain if auth else [], now=now)
    sc = TLSConfig(cipher_suites=[suite], trust_anchors=anchors, certificate_chain=server_chain,
                   client_auth="require" if auth else "none", now=now)
    c, s = ClientConnection(cc, BACKEND), ServerConnection(sc, BACKEND)
    cev, sev = [], []
    c.initiate()
    pump(c, CLIENT, c.next_events(), cev)
    reneg = random.getrandbits(2) == 0
    target = random.randrange(1, 8)  # which flight to damage
    flight = 0
    for _ in range(16):
        for src, dst, key, sink in ((c, s, SERVER, sev), (s, c, CLIENT, cev)):
            flight += 1
            data = src.data_to_send()
            if data and flight == target:
                data = mutate(data)
            if data:
                pump(dst, key, dst.receive_data(data), sink)
        if reneg and c.established and not c.handshaking and not c.closed and c.renegotiation_count == 0:
            reneg = False
            target = flight + random.randrange(1, 6)
            c.renegotiate()
    why = closed_sanely(cev) or closed_sanely(sev)
    if why:
        return why
    if c.closed or s.closed:
        CLOSED.append(seed)
    for conn in (c, s):
        if conn.closed and conn.receive_data(bytes(random.getrandbits(8) for _ in range(40))):
            return "a closed engine answered"
    return None


CLOSED = []
fails = 0
for seed in range(FIRST, FIRST + COUNT):
    try:
        why = fuzz_one(seed)
    except Exception as e:  # what the engines must never do
        why = "raised %s: %s" % (type(e).__name__, e)
    if why:
        fails += 1
        print("fail", seed, why)
print("done", COUNT - fails, len(CLOSED))
