"""tlscore.backend_micropython under the MicroPython unix port: the key-schedule KATs
(SHA-256 ones; the board has no SHA-384), HMAC and hashes against CPython, AES-GCM
against the GCM spec's test cases and against `cryptography` in both directions, the
viper GHASH against the portable one, and AES-CBC against SP 800-38A. One interpreter
per test: each script prints `name=hex` lines that the test compares."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import random

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from support.mp_run import REPO, requires_micropython, run_mp

pytestmark = [pytest.mark.micropython, requires_micropython]

H = bytes.fromhex
PRELUDE = "from tlscore.backend_micropython import BACKEND as B\nH = bytes.fromhex\n"


def _vectors():
    spec = importlib.util.spec_from_file_location(
        "vectors_keyschedule", REPO / "tests" / "vectors" / "keyschedule.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _parse(out):
    got = {}
    for line in out.splitlines():
        if "=" in line:
            k, _, v = line.partition("=")
            got[k] = v
    return got


# --- key schedule KATs (published vectors, tests/vectors/keyschedule.py) -------------


def test_keyschedule_kats_sha256():
    v = _vectors()
    sel = lambda vs: [x for x in vs if x["hash"] == "sha256"]  # noqa: E731
    prf, ms, ems, kb = (
        sel(v.PRF),
        sel(v.MASTER_SECRET),
        sel(v.EXTENDED_MASTER_SECRET),
        sel(v.KEY_BLOCK),
    )
    assert prf and ms and ems and kb
    script = PRELUDE + "from tlscore import keyschedule as K\n"
    script += "PRF = %r\nMS = %r\nEMS = %r\nKB = %r\n" % (prf, ms, ems, kb)
    script += """
for v in PRF:
    out = K.prf(B, "sha256", H(v["secret"]), v["label"].encode(), H(v["seed"]), len(H(v["output"])))
    print("prf:" + v["name"] + "=" + out.hex())
for v in MS:
    out = K.master_secret(B, "sha256", H(v["pre_master_secret"]), H(v["client_random"]), H(v["server_random"]))
    print("ms:" + v["name"] + "=" + out.hex())
for v in EMS:
    out = K.extended_master_secret(B, "sha256", H(v["pre_master_secret"]), H(v["session_hash"]))
    print("ems:" + v["name"] + "=" + out.hex())
for v in KB:
    out = K.key_block(B, "sha256", H(v["master_secret"]), H(v["server_random"]), H(v["client_random"]), len(H(v["key_block"])))
    print("kb:" + v["name"] + "=" + out.hex())
"""
    got = _parse(run_mp(script))
    want = {}
    for prefix, vs, field in (
        ("prf", prf, "output"),
        ("ms", ms, "master_secret"),
        ("ems", ems, "master_secret"),
        ("kb", kb, "key_block"),
    ):
        for x in vs:
            want[prefix + ":" + x["name"]] = x[field].lower()
    assert got == want


# --- hashes, HMAC, RNG, what the board does not offer ---------------------------------


def test_hash_hmac_and_random_match_cpython():
    rng = random.Random(7)
    cases = []
    for name in ("sha1", "sha256"):
        for klen in (0, 1, 20, 32, 48, 63, 64, 65, 100):
            for dlen in (0, 3, 64, 200):
                cases.append((name, rng.randbytes(klen).hex(), rng.randbytes(dlen).hex()))
    script = PRELUDE + "CASES = %r\n" % (cases,)
    script += """
for i, (name, k, d) in enumerate(CASES):
    print("hmac%d=%s" % (i, B.hmac(name, H(k), H(d)).hex()))
    print("hash%d=%s" % (i, B.hash(name, H(d)).hex()))
# the padded-key cache must follow a key change back and forth
a = B.hmac("sha256", b"k1", b"x"); b = B.hmac("sha256", b"k2", b"x"); c = B.hmac("sha256", b"k1", b"x")
print("cache=%s" % (a == c and a != b))
print("names=%s" % ",".join(B.hash_names))
try:
    B.hash("sha384", b"")
    print("sha384=available")
except ValueError:
    print("sha384=refused")
from tlscore import suites
print("suites=%s" % ",".join(s.name for s in suites.supported_by(B)))
r1 = B.random(32); r2 = B.random(32)
print("random=%d,%s" % (len(r1), r1 != r2))
"""
    got = _parse(run_mp(script))
    for i, (name, k, d) in enumerate(cases):
        assert got["hmac%d" % i] == hmac.new(H(k), H(d), name).hexdigest(), cases[i]
        assert got["hash%d" % i] == hashlib.new(name, H(d)).hexdigest(), cases[i]
    assert got["cache"] == "True"
    assert got["names"] == "sha1,sha256"
    assert got["sha384"] == "refused"
    assert got["suites"] == (
        "TLS_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA"
    )
    assert got["random"] == "32,True"


# --- AES-GCM ------------------------------------------------------------------------

# McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", revised spec (2005),
# Appendix B (the cases NIST SP 800-38D points to): test cases 2, 3, 4 (AES-128) and
# 14, 15, 16 (AES-256). https://csrc.nist.rip/groups/ST/toolkit/BCM/documents/
# proposedmodes/gcm/gcm-revised-spec.pdf
_K = "feffe9928665731c6d6a8f9467308308"
_IV = "cafebabefacedbaddecaf888"
_P = (
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
)
_A = "feedfacedeadbeeffeedfacedeadbeefabaddad2"
_C3 = (
    "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
    "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985"
)
_C15 = (
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
)
GCM_SPEC = [
    # (case, key, iv, plaintext, aad, ciphertext, tag)
    ("2", "00" * 16, "00" * 12, "00" * 16, "", "0388dace60b6a392f328c2b971b2fe78",
     "ab6e47d42cec13bdf53a67b21257bddf"),
    ("3", _K, _IV, _P, "", _C3, "4d5c2af327cd64a62cf35abd2ba6fab4"),
    ("4", _K, _IV, _P[:120], _A, _C3[:120], "5bc94fbc3221a5db94fae95ae7121a47"),
    ("14", "00" * 32, "00" * 12, "00" * 16, "", "cea7403d4d606b6e074ec5d3baf39d18",
     "d0d1c8a799996bf0265b98b5d48ab919"),
    ("15", _K * 2, _IV, _P, "", _C15, "b094dac5d93471bdec1a502270e3cc6c"),
    ("16", _K * 2, _IV, _P[:120], _A, _C15[:120], "76fc6ece0f4e1768cddf8853bb2d551b"),
]  # fmt: skip


def test_gcm_spec_table_matches_cryptography():
    # guards the table above against typing errors before it is used as an oracle
    for _case, k, iv, p, a, c, t in GCM_SPEC:
        assert AESGCM(H(k)).encrypt(H(iv), H(p), H(a)) == H(c + t)


def test_gcm_spec_vectors_seal_open_and_tamper():
    script = PRELUDE + "V = %r\n" % (GCM_SPEC,)
    script += """
for case, k, iv, p, a, c, t in V:
    g = B.aes_gcm(H(k))
    ct = g.seal(H(iv), H(p), H(a))
    print("seal%s=%s" % (case, ct.hex()))
    print("open%s=%s" % (case, g.open(H(iv), ct, H(a)) == H(p)))
    bad = []
    for i in (0, len(ct) - 17, len(ct) - 16, len(ct) - 1):  # first/last ct byte, tag bytes
        if i < 0:
            continue
        x = bytearray(ct); x[i] ^= 0x01
        bad.append(g.open(H(iv), bytes(x), H(a)))
    bad.append(g.open(H(iv), ct, H(a) + b"\\x00"))           # different AAD
    n = bytearray(H(iv)); n[11] ^= 0x80
    bad.append(g.open(bytes(n), ct, H(a)))                    # different nonce
    bad.append(g.open(H(iv), ct[:-1], H(a)))                  # truncated tag
    bad.append(g.open(H(iv), ct[:15], H(a)))                  # shorter than a tag
    print("tamper%s=%s" % (case, all(b is None for b in bad)))
    print("reuse%s=%s" % (case, g.seal(H(iv), H(p), H(a)) == ct))
"""
    got = _parse(run_mp(script))
    for case, _k, _iv, _p, _a, c, t in GCM_SPEC:
        assert got["seal" + case] == c + t, case
        assert got["open" + case] == "True", case
        assert got["tamper" + case] == "True", case
        assert got["reuse" + case] == "True", case


GCM_LENGTHS = [0, 1, 15, 16, 17, 31, 32, 33, 100, 1023, 1024, 1025, 2048, 3000, 16384]


def test_gcm_cross_check_with_cryptography_both_ways():
    # MicroPython opens what cryptography sealed, and cryptography opens what
    # MicroPython sealed; lengths cross the 16-byte block and the 1 KiB keystream chunk
    rng = random.Random(0x5EA1)
    inbound, outbound = [], []
    for i, n in enumerate(GCM_LENGTHS):
        key = rng.randbytes(16 if i % 2 == 0 else 32)
        nonce, aad, pt = rng.randbytes(12), rng.randbytes(13), rng.randbytes(n)
        ct = AESGCM(key).encrypt(nonce, pt, aad)
        inbound.append((key.hex(), nonce.hex(), aad.hex(), ct.hex(), pt.hex()))
        outbound.append(
            (key.hex(), rng.randbytes(12).hex(), rng.randbytes(13).hex(), rng.randbytes(n).hex())
        )
    script = PRELUDE + "IN = %r\nOUT = %r\n" % (inbound, outbound)
    script += """
for i, (k, n, a, c, p) in enumerate(IN):
    print("in%d=%s" % (i, B.aes_gcm(H(k)).open(H(n), H(c), H(a)) == H(p)))
for i, (k, n, a, p) in enumerate(OUT):
    print("out%d=%s" % (i, B.aes_gcm(H(k)).seal(H(n), H(p), H(a)).hex()))
"""
    got = _parse(run_mp(script))
    for i in range(len(GCM_LENGTHS)):
        assert got["in%d" % i] == "True", GCM_LENGTHS[i]
        k, n, a, p = outbound[i]
        assert AESGCM(H(k)).decrypt(H(n), H(got["out%d" % i]), H(a)) == H(p), GCM_LENGTHS[i]


def test_viper_kernels_match_portable_ones():
    script = """
import os
from tlscore import ghash
print("viper=%s" % ghash.HAVE_VIPER)
ok = True
for n in (0, 1, 13, 16, 17, 64, 100, 1000):
    h = os.urandom(16); a = os.urandom(n % 29); c = os.urandom(n)
    ok = ok and ghash.GHash(h).digest(a, c) == ghash.GHash(h, portable=True).digest(a, c)
print("same=%s" % ok)
a = bytearray(16 * 70); b = bytearray(16 * 70); nonce = os.urandom(12)
ghash._counters_viper(a, nonce, 0xFFFFF0, 70); ghash._counters_py(b, nonce, 0xFFFFF0, 70)
print("counters=%s" % (a == b))
x = os.urandom(1000); a = bytearray(os.urandom(1000)); b = bytearray(a)
ghash._xor_viper(a, x, 999); ghash._xor_py(b, x, 999)
print("xor=%s" % (a == b))
"""
    got = _parse(run_mp(script))
    assert got["viper"] == "True"  # the production path on the board is the one tested
    assert got["same"] == "True"
    assert got["counters"] == "True"
    assert got["xor"] == "True"


def test_gcm_16k_record_within_a_small_heap():
    # a full 16 KiB record sealed and opened: the record and its copy, plus two 1 KiB
    # keystream buffers, besides the backend compiled from source (with its Montgomery
    # code, about 100 KiB are needed): 112 KiB of heap on the 64-bit unix port
    script = (
        PRELUDE
        + """
k = bytes(16); n = bytes(12); p = bytes(16384)
g = B.aes_gcm(k)
ct = g.seal(n, p, b"")
print("ok=%s" % (g.open(n, ct, b"") == p))
"""
    )
    assert _parse(run_mp(script, heapsize="112k"))["ok"] == "True"


# --- AES-CBC ------------------------------------------------------------------------

# NIST SP 800-38A Appendix F.2.1 (CBC-AES128.Encrypt) and F.2.5 (CBC-AES256.Encrypt)
_CBC_IV = "000102030405060708090a0b0c0d0e0f"
_CBC_P = (
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)
CBC_SPEC = [
    ("F.2.1", "2b7e151628aed2a6abf7158809cf4f3c",
     "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
     "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"),
    ("F.2.5", "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
     "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d"
     "39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b"),
]  # fmt: skip


def test_cbc_sp800_38a_and_round_trip():
    rng = random.Random(0xCBC)
    rand = [
        (rng.randbytes(16).hex(), rng.randbytes(16).hex(), rng.randbytes(16 * m).hex())
        for m in (1, 2, 5, 64)
    ]
    script = PRELUDE + "SPEC = %r\nIV = %r\nP = %r\nRAND = %r\n" % (CBC_SPEC, _CBC_IV, _CBC_P, rand)
    script += """
for name, k, c in SPEC:
    cbc = B.aes_cbc(H(k))
    print("enc%s=%s" % (name, cbc.encrypt(H(IV), H(P)).hex()))
    print("dec%s=%s" % (name, cbc.decrypt(H(IV), H(c)).hex()))
    # the same object again: a fresh IV per call, no chaining carried over
    print("again%s=%s" % (name, cbc.encrypt(H(IV), H(P)).hex() == c))
for i, (k, iv, p) in enumerate(RAND):
    cbc = B.aes_cbc(H(k))
    c = cbc.encrypt(H(iv), H(p))
    print("rand%d=%s" % (i, c.hex()))
    print("back%d=%s" % (i, cbc.decrypt(H(iv), c) == H(p)))
"""
    got = _parse(run_mp(script))
    for name, _k, c in CBC_SPEC:
        assert got["enc" + name] == c
        assert got["dec" + name] == _CBC_P
        assert got["again" + name] == "True"
    for i, (k, iv, p) in enumerate(rand):
        e = Cipher(algorithms.AES(H(k)), modes.CBC(H(iv))).encryptor()
        assert got["rand%d" % i] == (e.update(H(p)) + e.finalize()).hex()
        assert got["back%d" % i] == "True"
