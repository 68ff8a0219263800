"""CBC record protection: MAC-then-encrypt opens every padding length with both MACs
and refuses a bad MAC or bad padding with bad_record_mac; the constant-cost MAC
(_mac_const) is HMAC for every length it may be asked; encrypt-then-MAC still works.
The timing side (Lucky13) is tests/unit/test_lucky13_timing.py."""

from __future__ import annotations

import hmac
import os

import pytest

from hsmtls.backend import BACKEND
from tlscore.constants import APPLICATION_DATA, BAD_RECORD_MAC
from tlscore.errors import TLSError
from tlscore.record import CBCProtection, _header, _padding_bad

MACS = [("sha1", 20), ("sha256", 32)]


def _prot(mac: str, mac_len: int, etm: bool = False) -> CBCProtection:
    return CBCProtection(BACKEND, os.urandom(16), mac, os.urandom(mac_len), mac_len, etm)


def _mac(prot: CBCProtection, seq: int, data: bytes) -> bytes:
    msg = seq.to_bytes(8, "big") + _header(APPLICATION_DATA, len(data)) + data
    return hmac.new(prot.mac_key, msg, prot.mac_hash).digest()


def _record(prot: CBCProtection, seq: int, plaintext: bytes, pad: int, corrupt=None) -> bytes:
    # MAC-then-encrypt with padding of length pad + 1 (any valid one, not the shortest)
    body = bytearray(plaintext + _mac(prot, seq, plaintext) + bytes([pad]) * (pad + 1))
    assert len(body) % 16 == 0
    if corrupt is not None:
        body[corrupt] ^= 0x01
    iv = os.urandom(16)
    return iv + prot.cbc.encrypt(iv, bytes(body))


def _plaintexts(mac_len: int, pad: int) -> list[bytes]:
    # lengths that make whole blocks with this padding: short and about 2 KiB
    out = []
    for base in (0, 2000):
        n = base + (-(base + mac_len + pad + 1)) % 16
        out.append(os.urandom(n))
    return out


@pytest.mark.parametrize("mac,mac_len", MACS)
def test_every_padding_length_opens(mac, mac_len):
    prot = _prot(mac, mac_len)
    for pad in range(256):
        for pt in _plaintexts(mac_len, pad):
            assert bytes(prot.open(7, APPLICATION_DATA, _record(prot, 7, pt, pad))) == pt, (pad, len(pt))


@pytest.mark.parametrize("mac,mac_len", MACS)
def test_bad_mac_and_bad_padding_are_bad_record_mac(mac, mac_len):
    prot = _prot(mac, mac_len)
    for pad in (0, 1, 15, 16, 100, 255):
        for pt in _plaintexts(mac_len, pad):
            n = len(pt) + mac_len + pad + 1
            cases = {
                "mac": len(pt),  # first MAC byte
                "last mac": len(pt) + mac_len - 1,
                "pad length": n - 1,  # the padding length byte: now it disagrees with the rest
                "first pad": n - 1 - pad if pad else None,
                "data": 0 if pt else None,
            }
            for what, at in cases.items():
                if at is None:
                    continue
                with pytest.raises(TLSError) as e:
                    prot.open(7, APPLICATION_DATA, _record(prot, 7, pt, pad, corrupt=at))
                assert e.value.alert == BAD_RECORD_MAC, (what, pad)
            with pytest.raises(TLSError) as e:  # the right record, the wrong sequence number
                prot.open(8, APPLICATION_DATA, _record(prot, 7, pt, pad))
            assert e.value.alert == BAD_RECORD_MAC


@pytest.mark.parametrize("mac,mac_len", MACS)
def test_padding_longer_than_the_record_is_bad_record_mac(mac, mac_len):
    prot = _prot(mac, mac_len)
    iv = os.urandom(16)
    body = bytes([200]) * 64  # 64 bytes cannot hold a MAC and 201 bytes of padding
    with pytest.raises(TLSError) as e:
        prot.open(0, APPLICATION_DATA, iv + prot.cbc.encrypt(iv, body))
    assert e.value.alert == BAD_RECORD_MAC


@pytest.mark.parametrize("n", [256, 300, 2032])
def test_the_backends_padding_check_agrees_with_the_engines(n):
    # hsmtls.backend's integer-lane check against tlscore's byte loop: every padding
    # length, whole, with its first byte wrong, with the byte before it changed (outside
    # the padding: still good), and with one random byte of the last 258 changed
    rnd = os.urandom(256 * 4)
    for pad in range(256):
        for mac_len in (0, 20, 32):
            p = bytearray(os.urandom(n))
            k = min(pad + 1, n)
            p[n - k :] = bytes([pad]) * k
            cases = [bytes(p)]
            for i in (pad + 1, pad + 2, 1 + rnd[pad] % 258):
                if 1 < i <= n:  # p[n - 1] is pad itself
                    q = bytearray(p)
                    q[n - i] ^= 1 << (rnd[256 + pad] % 8)
                    cases.append(bytes(q))
            for q in cases:
                want = _padding_bad(q, pad, mac_len)
                assert BACKEND.cbc_padding_bad(q, pad, mac_len) == want, (n, pad, mac_len, q[-pad - 2 :])
    assert want in (0, 1)


@pytest.mark.parametrize("mac,mac_len", MACS)
def test_constant_cost_mac_is_hmac_for_every_length(mac, mac_len):
    prot = _prot(mac, mac_len)
    for n in (32, 300, 2032):
        p = os.urandom(n)
        longest = n - mac_len - 1
        shortest = max(longest - 255, 0)
        for length in range(shortest, longest + 1):
            got = prot._mac_const(5, APPLICATION_DATA, p, length, shortest, longest)
            assert got == _mac(prot, 5, p[:length]), (n, length)


@pytest.mark.parametrize("mac,mac_len", MACS)
@pytest.mark.parametrize("etm", [False, True])
def test_seal_open_round_trip(mac, mac_len, etm):
    b = CBCProtection(BACKEND, bytes(16), mac, bytes(mac_len), mac_len, etm)
    a = CBCProtection(BACKEND, bytes(16), mac, bytes(mac_len), mac_len, etm)
    for n in (0, 1, 15, 16, 17, 1000, 16384):
        pt = os.urandom(n)
        assert bytes(b.open(3, APPLICATION_DATA, a.seal(3, APPLICATION_DATA, pt))) == pt
