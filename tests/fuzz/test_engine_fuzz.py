"""Mutation fuzzing of live handshakes: a random flight of a real client/server
handshake (any suite, with or without client auth, initial or renegotiation) gets
random bit flips, truncations, duplications or insertions. Whatever happens, neither
engine may raise; a failure is a fatal alert and a closed connection on the side that
noticed, and a closed engine ignores further input."""

from __future__ import annotations

import random

import pytest

from tlscore import suites
from tlscore.events import ConnectionClosed

from support.engine_pair import Pair  # tests/unit, put on the path by conftest.py

SUITES = [s.name for s in suites.ALL]


def mutate(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    b = bytearray(data)
    op = rng.randrange(5)
    if op == 0 or len(b) < 2:
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif op == 1:
        del b[rng.randrange(1, len(b)):]
    elif op == 2:
        i = rng.randrange(len(b))
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    elif op == 3:
        i, j = sorted(rng.randrange(len(b)) for _ in range(2))
        b[j:j] = b[i:j + 1]
    else:
        i = rng.randrange(len(b))
        b[i] = rng.choice([0x00, 0xFF, 0x7F, 0x80, 0x16, 0x14, 0x15, 0x17])
    return bytes(b)


def _closed_cleanly_or_failed(events: list) -> None:
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    assert len(closed) <= 1
    if closed and not closed[0].clean:
        assert closed[0].alert is not None and closed[0].reason


def run_one(seed: int, make_configs, client_key, server_key, epki) -> None:
    rng = random.Random(seed)
    suite = rng.choice(SUITES)
    auth = rng.choice(["none", "require"])
    cc, sc = make_configs(suite, auth, epki.client_cert if auth != "none" else None)
    p = Pair(cc, sc, client_key, server_key)
    p.start()
    reneg = rng.random() < 0.3
    target = rng.randrange(1, 8)  # which flight to damage
    flight = 0
    for _ in range(16):
        for direction in ("c2s", "s2c"):
            flight += 1
            transform = (lambda d: mutate(rng, d)) if flight == target else None
            getattr(p, direction)(transform)
        if reneg and p.c.established and not p.c.handshaking and not p.c.closed and p.c.renegotiation_count == 0:
            reneg = False
            target = flight + rng.randrange(1, 6)
            p.c.renegotiate()
    _closed_cleanly_or_failed(p.cev)
    _closed_cleanly_or_failed(p.sev)
    # a closed engine stays quiet whatever arrives
    for conn in (p.c, p.s):
        if conn.closed:
            assert conn.receive_data(bytes(rng.randrange(256) for _ in range(40))) == []


@pytest.mark.parametrize("block", range(2))
def test_fuzz_live_handshakes(block, make_configs, client_key, server_key, epki):
    for seed in range(block * 40, block * 40 + 40):
        run_one(seed, make_configs, client_key, server_key, epki)


@pytest.mark.slow
def test_fuzz_live_handshakes_long(make_configs, client_key, server_key, epki):
    for seed in range(1000, 2500):
        run_one(seed, make_configs, client_key, server_key, epki)
