"""The engine's memory paths: the record layer's one receive buffer (lent by the board,
compacted, grown only for a longer record) and the transcript kept as running hashes
(no copy of the handshake messages), including MicroPython's hashes, which cannot copy
their state."""

from __future__ import annotations

import hashlib
import random

import pytest

from hsmtls.backend import CPythonBackend
from tlscore import record
from tlscore.client import ClientConnection
from tlscore.connection import Transcript
from tlscore.constants import APPLICATION_DATA, HANDSHAKE
from tlscore.errors import TLSError
from tlscore.events import ApplicationData, HandshakeComplete

from support.engine_pair import Pair


class _NoCopyHash:
    """A hashlib object without copy(), like MicroPython's: final after digest()."""

    def __init__(self, name: str) -> None:
        self._h = hashlib.new(name)
        self._done = False

    def update(self, data) -> None:
        assert not self._done, "update after digest"
        self._h.update(data)

    def digest(self) -> bytes:
        assert not self._done, "digest twice"
        self._done = True
        return self._h.digest()


class NoCopyBackend(CPythonBackend):
    def new_hash(self, name: str) -> _NoCopyHash:
        return _NoCopyHash(name)


def _wire(n: int, seed: int) -> tuple[bytes, list[tuple[int, bytes]]]:
    rng = random.Random(seed)
    writer = record.RecordLayer()
    sent, wire = [], bytearray()
    for i in range(n):
        ct = HANDSHAKE if i % 3 else APPLICATION_DATA
        data = bytes(rng.randrange(256) for _ in range(rng.choice((1, 17, 300, 2048, 5000))))
        sent.append((ct, data))
        wire += writer.write(ct, data)
    return bytes(wire), sent


@pytest.mark.parametrize("lent", [None, 8, 64, 2600])
def test_records_come_out_whole_from_a_reused_buffer(lent):
    wire, sent = _wire(30, seed=lent or 1)
    buf = bytearray(lent) if lent else None
    rl = record.RecordLayer(buf)
    rng = random.Random(7)
    got, pos = [], 0
    while pos < len(wire):
        n = rng.choice((1, 5, 200, 1024))
        rl.feed(wire[pos : pos + n])
        pos += n
        while (rec := rl.next_record()) is not None:
            got.append((rec[0], bytes(rec[1])))  # a view: taken before the next feed
    assert got == [(ct, d) for ct, d in sent]
    assert rl.start == rl.fill == 0  # all read: the next bytes go to the front
    if lent == 2600:
        assert rl.buf is not buf  # a 5000-byte record grew the engine's own copy
        assert len(buf) == 2600  # and left the lent one as it was


def test_a_lent_buffer_big_enough_is_used_in_place():
    buf = bytearray(2600)
    rl = record.RecordLayer(buf)
    wire = bytes(record.RecordLayer().write(HANDSHAKE, b"x" * 2048))
    for i in range(0, len(wire), 200):
        rl.feed(wire[i : i + 200])
    ct, data = rl.next_record()
    assert rl.buf is buf and bytes(data) == b"x" * 2048


@pytest.mark.parametrize("backend", [CPythonBackend(), NoCopyBackend()], ids=["copy", "no-copy"])
def test_transcript_hashes_match_the_messages(backend):
    msgs = [bytes([i]) * (10 + 100 * i) for i in range(6)]
    t = Transcript(backend, keep=False)
    t.add(msgs[0])
    t.add(msgs[1])
    t.start("sha256")  # the suite is known after ServerHello
    assert t.data is None  # no bytes kept from here on
    for m in msgs[2:4]:
        t.add(m)
    session_hash = t.digest()
    t.add(msgs[4])
    ours = t.digest()
    t.add(msgs[5], snapshot=True)
    peers = t.digest_before_last()
    h = lambda parts: hashlib.sha256(b"".join(parts)).digest()  # noqa: E731
    assert session_hash == h(msgs[:4])
    assert ours == h(msgs[:5])
    assert peers == h(msgs[:5])
    if isinstance(backend, NoCopyBackend):  # three running hashes, each digest ends one
        with pytest.raises(TLSError):
            t.digest()


@pytest.mark.parametrize("backend", [CPythonBackend(), NoCopyBackend()], ids=["copy", "no-copy"])
def test_transcript_keeps_bytes_for_certificate_verify(backend):
    t = Transcript(backend, keep=True)
    t.add(b"a" * 5)
    t.start("sha384")
    t.add(b"b" * 7)
    t.add(b"c" * 3)
    everything = b"a" * 5 + b"b" * 7 + b"c" * 3
    assert t.messages_before_last() == b"a" * 5 + b"b" * 7  # a server's check
    assert t.digest() == hashlib.sha384(everything).digest()
    signed = t.messages()  # a client's signature: handed over, not copied
    assert signed == everything and t.data is None
    t.add(b"d" * 4)  # CertificateVerify, Finished: hashed only
    assert signed == everything
    assert t.digest() == hashlib.sha384(everything + b"d" * 4).digest()


class NoCopyClient(ClientConnection):
    def __init__(self, config, backend):
        super().__init__(config, NoCopyBackend())


@pytest.mark.parametrize("suite", ["TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA"])
def test_board_like_client_handshakes_renegotiates_and_echoes(make_configs, server_key, suite):
    # the board's ways at once: a small lent record buffer, records arriving in
    # pieces, hashes that cannot copy; a full handshake, then a renegotiation
    cc, sc = make_configs(suite)
    cc.record_buffer = bytearray(300)
    cc.max_fragment_length = 512
    p = Pair(cc, sc, server_key=server_key, client_cls=NoCopyClient)
    p.start()
    for _ in range(12):
        if p.c2s() is None:
            break
        data = p.s.data_to_send()
        for i in range(0, len(data), 37):
            p.c.buffer_data(data[i : i + 37])
        p._answer(p.c, None, p.c.receive_data(), p.cev)
    assert len(p.completed("c")) == 1 and len(p.completed("s")) == 1
    p.c.renegotiate()
    p.run()
    assert len(p.completed("c")) == 2, p.cev
    p.s.send_application_data(b"y" * 3000)
    p.s2c()
    assert b"".join(e.data for e in p.of(ApplicationData, "c")) == b"y" * 3000
    assert isinstance(p.completed("c")[-1], HandshakeComplete)
