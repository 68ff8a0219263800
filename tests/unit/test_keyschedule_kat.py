"""Known-answer tests for tlscore.keyschedule with the CPython backend.

Every expected value comes from a published source (tests/vectors/keyschedule.py names
each one: IETF TLS list, mbedTLS, OpenSSL/NIST CAVP, NIST ACVP incl. RFC 7627 EMS).
The same vectors run under MicroPython in tests/firmware/test_backend_micropython.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from hsmtls.backend import BACKEND
from tlscore import keyschedule, suites

ROOT = Path(__file__).resolve().parents[2]


def _load_vectors():
    spec = importlib.util.spec_from_file_location(
        "vectors_keyschedule", ROOT / "tests" / "vectors" / "keyschedule.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


V = _load_vectors()
H = bytes.fromhex


def _ids(vectors):
    return [v["name"] for v in vectors]


@pytest.mark.parametrize("v", V.PRF, ids=_ids(V.PRF))
def test_prf(v):
    out = keyschedule.prf(
        BACKEND, v["hash"], H(v["secret"]), v["label"].encode(), H(v["seed"]), len(H(v["output"]))
    )
    assert out == H(v["output"])


@pytest.mark.parametrize("v", V.PRF, ids=_ids(V.PRF))
def test_p_hash_output_is_a_prefix_stream(v):
    # a short request is a prefix of a long one: catches an off-by-one in the A(i) chain
    full = H(v["output"])
    for n in (1, 12, 31, 32, 33, 48, 49):
        if n <= len(full):
            got = keyschedule.prf(
                BACKEND, v["hash"], H(v["secret"]), v["label"].encode(), H(v["seed"]), n
            )
            assert got == full[:n]


@pytest.mark.parametrize("v", V.MASTER_SECRET, ids=_ids(V.MASTER_SECRET))
def test_master_secret(v):
    ms = keyschedule.master_secret(
        BACKEND, v["hash"], H(v["pre_master_secret"]), H(v["client_random"]), H(v["server_random"])
    )
    assert ms == H(v["master_secret"])
    assert len(ms) == keyschedule.MASTER_SECRET_LEN


@pytest.mark.parametrize("v", V.EXTENDED_MASTER_SECRET, ids=_ids(V.EXTENDED_MASTER_SECRET))
def test_extended_master_secret(v):
    ms = keyschedule.extended_master_secret(
        BACKEND, v["hash"], H(v["pre_master_secret"]), H(v["session_hash"])
    )
    assert ms == H(v["master_secret"])


@pytest.mark.parametrize("v", V.KEY_BLOCK, ids=_ids(V.KEY_BLOCK))
def test_key_block(v):
    kb = H(v["key_block"])
    out = keyschedule.key_block(
        BACKEND,
        v["hash"],
        H(v["master_secret"]),
        H(v["server_random"]),
        H(v["client_random"]),
        len(kb),
    )
    assert out == kb


def test_ems_differs_from_classic_master_secret():
    # the EMS label and seed really are used (a swapped call would still be "a PRF")
    v = V.EXTENDED_MASTER_SECRET[0]
    pms, sh = H(v["pre_master_secret"]), H(v["session_hash"])
    ems = keyschedule.extended_master_secret(BACKEND, v["hash"], pms, sh)
    classic = keyschedule.master_secret(BACKEND, v["hash"], pms, sh[:16], sh[16:])
    assert ems != classic


# (mac_key_length, enc_key_length, fixed_iv_length) per RFC 5246 Appendix C and
# RFC 5288 §3 (GCM: 4-byte salt, no MAC key). Written out here, not read from suites.py.
EXPECTED_LENGTHS = {
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": (0, 16, 4),  # RFC 5289
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": (0, 32, 4),
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": (32, 16, 0),  # RFC 5289
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384": (48, 32, 0),
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": (20, 16, 0),  # RFC 4492
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": (20, 32, 0),
    "TLS_RSA_WITH_AES_128_GCM_SHA256": (0, 16, 4),
    "TLS_RSA_WITH_AES_256_GCM_SHA384": (0, 32, 4),
    "TLS_RSA_WITH_AES_128_CBC_SHA256": (32, 16, 0),
    "TLS_RSA_WITH_AES_128_CBC_SHA": (20, 16, 0),
}


def test_every_suite_has_expected_lengths():
    assert sorted(s.name for s in suites.ALL) == sorted(EXPECTED_LENGTHS)


@pytest.mark.parametrize("suite", suites.ALL, ids=[s.name for s in suites.ALL])
def test_split_key_block_lengths(suite):
    mac, key, iv = EXPECTED_LENGTHS[suite.name]
    total = 2 * (mac + key + iv)
    assert keyschedule.key_block_length(suite) == total
    block = bytes(range(total))
    parts = keyschedule.split_key_block(suite, block)
    assert [len(p) for p in parts] == [mac, mac, key, key, iv, iv]
    # order: client_MAC, server_MAC, client_key, server_key, client_IV, server_IV
    assert b"".join(parts) == block


def test_split_key_block_of_published_key_block():
    # AES-128-GCM over the OpenSSL/NIST key block: keys then salts, nothing left over
    v = V.KEY_BLOCK[0]
    kb = H(v["key_block"])
    suite = suites.TLS_RSA_WITH_AES_128_GCM_SHA256
    cm, sm, ck, sk, civ, siv = keyschedule.split_key_block(
        suite, kb[: keyschedule.key_block_length(suite)]
    )
    assert cm == sm == b""
    assert ck == kb[0:16] and sk == kb[16:32]
    assert civ == kb[32:36] and siv == kb[36:40]
