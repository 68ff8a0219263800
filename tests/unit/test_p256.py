"""tlscore.p256 (the board's P-256 and ECDSA) against `cryptography`: scalar
multiplication, public keys, signatures made by ours and verified by OpenSSL, DER, and
the nonce rules (hedged, used once). Verification and multiples of other points come
from the tests' own tests/firmware/scripts/p256_verify.py (the board needs neither)."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from hsmtls.backend import BACKEND
from tlscore import p256

REPO = Path(__file__).resolve().parents[2]
# a MicroPython script of tests/firmware, run here under CPython too
sys.path.insert(0, str(REPO / "tests" / "firmware" / "scripts"))
import p256_verify as V  # noqa: E402
from boardapp import key as boardkey  # noqa: E402
from boardapp import key_ec as boardkey_ec  # noqa: E402
from boardapp import keygen as boardgen  # noqa: E402

N = p256.N


def ref_point(k: int) -> tuple[int, int]:
    pub = ec.derive_private_key(k, ec.SECP256R1()).public_key().public_numbers()
    return pub.x, pub.y


def ref_public(point: tuple[int, int]) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256.encode_point(point))


def test_base_comb_table_is_what_it_says():
    assert V.comb_table((p256.GX, p256.GY)) == p256._G_COMB
    for u, entry in enumerate(p256._G_COMB):
        k = (1 << 192) + sum((1 if (u >> t) & 1 else -1) << (64 * t) for t in range(3))
        assert entry == ref_point(k % N)


EDGE = [1, 3, 4, 5, 15, 16, 17, 255, 256, 1 << 64, (1 << 64) - 1, 1 << 192, (1 << 255) % N,
        N - 1, N - 3, N - 4, N // 2, N // 2 + 1, (1 << 256) - 1 - N]


@pytest.mark.parametrize("k", EDGE + [int.from_bytes(os.urandom(32), "big") % N for _ in range(40)])
def test_mul_base_matches_cryptography(k):
    assert p256.mul_base(k, os.urandom(32)) == ref_point(k)


def test_mul_generic_point():
    q = ref_point(123456789)
    for k in EDGE[:6] + [int.from_bytes(os.urandom(32), "big") % N for _ in range(5)]:
        assert V.mul(k, q, os.urandom(32)) == ref_point(k * 123456789 % N)


def test_scalars_with_structure():
    # near 0 and n, and sums of the comb's teeth (2^64 i): where an incomplete addition
    # formula would meet its own operand if it ever could
    ks = list(range(1, 64)) + [N - i for i in range(1, 64)]
    ks += [(a << 192) + (b << 128) + (c << 64) + e for a in (0, 1, 3) for b in (0, 1, N - 1)
           for c in (0, 1, 2) for e in (1, 2, N - 1)]
    for k in ks:
        k %= N
        if k:
            assert p256.mul_base(k, os.urandom(32)) == ref_point(k)


def test_randomised_coordinates_do_not_change_the_result():
    k = int.from_bytes(os.urandom(32), "big") % N
    assert len({p256.mul_base(k, os.urandom(32)) for _ in range(4)}) == 1


def test_public_key_and_point_encoding():
    d = p256.private_key(BACKEND)
    q = p256.public_key(d, BACKEND)
    ref = ec.derive_private_key(d, ec.SECP256R1()).public_key()
    enc = ref.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert p256.encode_point(q) == enc
    assert p256.on_curve(*q) and not p256.on_curve(q[0], q[1] ^ 1) and not p256.on_curve(q[0], q[1] + p256.P)
    for bad_d in (0, N):
        with pytest.raises(ValueError):
            p256.public_key(bad_d, BACKEND)


def test_signatures_verify_with_cryptography():
    d = p256.private_key(BACKEND)
    q = p256.public_key(d, BACKEND)
    pub = ref_public(q)
    rs = set()
    for i in range(30):
        msg = os.urandom(i * 7)
        pair = p256.presign(BACKEND, d)
        r, s = p256.sign_digest(d, hashlib.sha256(msg).digest(), pair)
        sig = p256.der_signature(r, s)
        pub.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
        assert utils.decode_dss_signature(sig) == (r, s)
        assert sig == utils.encode_dss_signature(r, s)
        assert V.verify_digest(q, hashlib.sha256(msg).digest(), r, s, os.urandom(32))
        assert not V.verify_digest(q, hashlib.sha256(msg + b".").digest(), r, s, os.urandom(32))
        with pytest.raises(InvalidSignature):
            pub.verify(sig, msg + b".", ec.ECDSA(hashes.SHA256()))
        rs.add(r)
    assert len(rs) == 30  # a fresh nonce each time


def test_verify_digest_accepts_cryptography_signatures():
    key = ec.generate_private_key(ec.SECP256R1())
    n = key.public_key().public_numbers()
    for _ in range(5):
        msg = os.urandom(50)
        r, s = utils.decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
        assert V.verify_digest((n.x, n.y), hashlib.sha256(msg).digest(), r, s, os.urandom(32))
    assert not V.verify_digest((n.x, n.y), bytes(32), 0, 1, os.urandom(32))


@pytest.mark.parametrize("r,s", [(1, 1), (0x7F, 0x80), (0xFF << 248, N - 1), (N - 1, 1 << 255), (1 << 247, 0x80 << 240)])
def test_der_encoding_matches_cryptography(r, s):
    sig = p256.der_signature(r, s)
    assert sig == utils.encode_dss_signature(r, s)
    assert utils.decode_dss_signature(sig) == (r, s)


class FixedRandom:
    """A broken RNG that always answers the same bytes."""

    def random(self, n: int) -> bytes:
        return b"\x42" * n

    def hmac(self, name: str, key: bytes, data: bytes) -> bytes:
        return BACKEND.hmac(name, key, data)


def test_nonces_are_hedged_by_the_key_and_the_extra_input():
    # With a constant RNG the nonce still depends on d, and on `extra` (the board's
    # boot number and count): the board never gets the same k for two signatures.
    rng = FixedRandom()
    d1, d2 = 12345, 67890
    k1 = p256.presign(rng, d1, b"1/1")[0]
    assert p256.presign(rng, d1, b"1/1")[0] == k1  # deterministic given all inputs
    assert p256.presign(rng, d1, b"1/2")[0] != k1
    assert p256.presign(rng, d1, b"2/1")[0] != k1
    assert p256.presign(rng, d2, b"1/1")[0] != k1


def test_presign_is_sliced_and_checks_itself():
    d = p256.private_key(BACKEND)
    steps = list(p256.presign_steps(BACKEND, d))
    assert steps[:-1] == [None] * (len(steps) - 1) and len(steps) >= 4
    k, kinv, r = steps[-1]
    assert k * kinv % N == 1 and r == ref_point(k)[0] % N
    # the online step checks s*k == z + r*d: a corrupted k^-1 is caught
    with pytest.raises(ValueError):
        p256.sign_digest(d, bytes(32), (k, kinv + 1, r))


# --- the board's key (firmware/lib/boardapp/key_ec.py) --------------------------------------


def make_board_key(tmp_path: Path) -> tuple[boardkey_ec.ECBoardKey, ec.EllipticCurvePublicKey]:
    key = next(k for k in boardgen.keygen_ec() if k is not None)
    path = tmp_path / "client.key"
    path.write_text(boardgen.key_text(key))
    loaded = boardkey.load(str(path))
    assert isinstance(loaded, boardkey_ec.ECBoardKey)
    assert (loaded.d, loaded.x, loaded.y) == (key.d, key.x, key.y)
    assert (key.x, key.y) == ref_point(key.d)
    return loaded, ref_public((key.x, key.y))


def test_board_key_prepared_pair_is_used_once(tmp_path):
    key, pub = make_board_key(tmp_path)
    assert not key.ready
    while not key.prepare_step(BACKEND):
        pass
    assert key.ready
    k_ready = int.from_bytes(key._pair[:32], "big")
    sig = key.sign(BACKEND, "sha256", b"first")
    pub.verify(sig, b"first", ec.ECDSA(hashes.SHA256()))
    assert not key.ready and key.prepared_used == 1
    assert key._pair == bytearray(96)  # wiped
    # nothing ready: made on the spot, with another nonce
    sig2 = key.sign(BACKEND, "sha256", b"second")
    pub.verify(sig2, b"second", ec.ECDSA(hashes.SHA256()))
    assert key.prepared_used == 1
    assert utils.decode_dss_signature(sig)[0] != utils.decode_dss_signature(sig2)[0]
    assert utils.decode_dss_signature(sig)[0] == ref_point(k_ready)[0] % N
    # a half-made pair is finished, not thrown away
    key.prepare_step(BACKEND)
    assert key._steps is not None
    pub.verify(key.sign(BACKEND, "sha256", b"third"), b"third", ec.ECDSA(hashes.SHA256()))
    assert key._steps is None and not key.ready
    # each load is one more boot: the counter file goes up
    assert (tmp_path / "client.key.boots").read_text().strip() == "1"
    key2 = boardkey.load(str(tmp_path / "client.key"))
    key2.prepare(BACKEND)
    assert (tmp_path / "client.key.boots").read_text().strip() == "2"


def test_board_key_files(tmp_path):
    key, _ = make_board_key(tmp_path)
    assert key.can_sign("ecdsa_secp256r1_sha256") and not key.can_sign("rsa_pkcs1_sha256")
    with pytest.raises(ValueError):
        key.sign(BACKEND, "sha384", b"x")
    # x, y may be left out (computed), and a wrong point is refused
    (tmp_path / "short.key").write_text("type=ec\nd=%x\n" % key.d)
    assert (boardkey.load(str(tmp_path / "short.key")).x, ) == (key.x, )
    (tmp_path / "bad.key").write_text("type=ec\nd=%x\nx=%x\ny=%x\n" % (key.d, key.x, key.y ^ 1))
    with pytest.raises(ValueError):
        boardkey.load(str(tmp_path / "bad.key"))


def test_board_csr_is_signed_with_ecdsa(tmp_path):
    from cryptography import x509

    key, _ = make_board_key(tmp_path)
    der = boardgen.csr(key, BACKEND, [("CN", "board ec"), ("O", "hsmtls")])
    csr = x509.load_der_x509_csr(der)
    assert csr.is_signature_valid
    assert csr.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.ECDSA_WITH_SHA256
    pub = csr.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey) and isinstance(pub.curve, ec.SECP256R1)
    assert (pub.public_numbers().x, pub.public_numbers().y) == (key.x, key.y)
    # RFC 5758 §3.2: ecdsa-with-SHA256 has no parameters (not even NULL)
    assert bytes.fromhex("300a06082a8648ce3d040302") in der


def test_x509_curve_constants_are_p256s():
    from tlscore import x509

    assert (x509._P256_P, x509._P256_B) == (p256.P, p256.B)


def test_the_nonce_counter_survives_a_write_cut_short(tmp_path):
    # written to .tmp and renamed over the counter: a reset leaves one of the two whole.
    # Where the rename could not replace (FAT: the counter removed first) and the board
    # stopped there, the counter goes on from the temporary file, not from 0 again.
    counter = tmp_path / "client.key.boots"
    assert boardkey.next_count(str(counter)) == 1
    assert boardkey.next_count(str(counter)) == 2
    assert counter.read_text() == "2\n" and not (tmp_path / "client.key.boots.tmp").exists()
    counter.unlink()
    (tmp_path / "client.key.boots.tmp").write_text("41\n")
    assert boardkey.next_count(str(counter)) == 42 and counter.read_text() == "42\n"
    # a counter that does not read as one refuses, and says so
    counter.write_text("")
    with pytest.raises(OSError, match=r"cannot read the nonce counter .* \(not a number\)"):
        boardkey.next_count(str(counter))
    assert counter.read_text() == ""
