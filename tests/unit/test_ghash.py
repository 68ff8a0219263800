"""tlscore.ghash on CPython (the portable kernel) against published GHASH values and
against `cryptography`'s AES-GCM. The viper kernel is checked against this one under
MicroPython in tests/firmware/test_backend_micropython.py."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tlscore import ghash

ROOT = Path(__file__).resolve().parents[2]

H = bytes.fromhex

# McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", revised spec (2005),
# Appendix B, test cases 2, 3, 4 (AES-128) and 14, 15, 16 (AES-256): the listed
# H = E(K, 0^128) and GHASH(H, A, C). https://csrc.nist.rip/groups/ST/toolkit/BCM/
# documents/proposedmodes/gcm/gcm-revised-spec.pdf
_C3 = (
    "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
    "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985"
)
_C15 = (
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
)
_A = "feedfacedeadbeeffeedfacedeadbeefabaddad2"
SPEC_GHASH = [
    # (test case, H, A, C, GHASH(H, A, C))
    ("2", "66e94bd4ef8a2c3b884cfa59ca342b2e", "", "0388dace60b6a392f328c2b971b2fe78",
     "f38cbb1ad69223dcc3457ae5b6b0f885"),
    ("3", "b83b533708bf535d0aa6e52980d53b78", "", _C3, "7f1b32b81b820d02614f8895ac1d4eac"),
    ("4", "b83b533708bf535d0aa6e52980d53b78", _A, _C3[:120], "698e57f70e6ecc7fd9463b7260a9ae5f"),
    ("14", "dc95c078a2408989ad48a21492842087", "", "cea7403d4d606b6e074ec5d3baf39d18",
     "83de425c5edc5d498f382c441041ca92"),
    ("15", "acbef20579b4b8ebce889bac8732dad7", "", _C15, "4db870d37cb75fcb46097c36230d1612"),
    ("16", "acbef20579b4b8ebce889bac8732dad7", _A, _C15[:120], "8bd0c4d8aacd391e67cca447e8c38f65"),
]  # fmt: skip


def test_imports_on_cpython_without_viper():
    assert ghash.HAVE_VIPER is False


@pytest.mark.parametrize("case,h,a,c,want", SPEC_GHASH, ids=[c[0] for c in SPEC_GHASH])
def test_spec_ghash_values(case, h, a, c, want):
    assert ghash.GHash(H(h)).digest(H(a), H(c)) == H(want)


def test_table_holds_h_at_nibble_8():
    h = H("b83b533708bf535d0aa6e52980d53b78")
    m = ghash._table(h)
    assert m[0] == 0 and m[8] == int.from_bytes(h, "big")
    for i in range(16):
        for j in range(16):
            assert m[i ^ j] == m[i] ^ m[j]  # linear in the nibble


def test_digest_resets_state_between_calls():
    g = ghash.GHash(os.urandom(16))
    a, c = os.urandom(13), os.urandom(40)
    assert g.digest(a, c) == g.digest(a, c)


def _ecb(key, data):
    e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return e.update(data) + e.finalize()


def _reference_seal(key, nonce, plaintext, aad):
    # GCM from GHash + cryptography's AES block, the way backend_micropython does it
    blocks = (len(plaintext) + 15) // 16 + 1
    ctrs = bytearray(16 * blocks)
    ghash.fill_counters(ctrs, nonce, 1, blocks)
    ks = _ecb(key, bytes(ctrs))
    ct = bytearray(plaintext)
    ghash.xor_into(ct, ks[16:], len(ct))
    tag = bytearray(ghash.GHash(_ecb(key, bytes(16))).digest(aad, ct))
    ghash.xor_into(tag, ks, 16)
    return bytes(ct) + bytes(tag)


@pytest.mark.parametrize("key_len", [16, 32])
def test_gcm_built_on_ghash_matches_cryptography(key_len):
    rng = random.Random(0x6C3A + key_len)
    lengths = list(range(0, 50)) + [63, 64, 65, 255, 256, 257, 1024, 1500, 4097]
    for n in lengths:
        key = rng.randbytes(key_len)
        nonce = rng.randbytes(12)
        pt = rng.randbytes(n)
        aad = rng.randbytes(rng.choice([0, 1, 13, 16, 17, 40]))
        assert _reference_seal(key, nonce, pt, aad) == AESGCM(key).encrypt(nonce, pt, aad), n


def test_xor_into_portable():
    dst = bytearray(b"\x00\xff\x0f\xf0\xaa")
    ghash.xor_into(dst, b"\xff\xff\xff\xff\xff\x99", 4)
    assert dst == bytearray(b"\xff\x00\xf0\x0f\xaa")


def test_fill_counters_portable():
    buf = bytearray(48)
    nonce = bytes(range(12))
    ghash.fill_counters(buf, nonce, 0x00FFFFFF, 3)
    assert bytes(buf) == b"".join(
        nonce + c.to_bytes(4, "big") for c in (0x00FFFFFF, 0x01000000, 0x01000001)
    )
