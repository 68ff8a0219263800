"""PKCS#1 v1.5 (tlscore.pkcs1) against `cryptography`, in both directions."""

import os
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hsmtls.backend import BACKEND
from tlscore import pkcs1

_ROOT = Path(__file__).resolve().parents[2]

HASHES = {
    "sha1": hashes.SHA1(),
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


@pytest.fixture(scope="session")
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def pub(key):
    nums = key.public_key().public_numbers()
    return nums.n, nums.e


def test_byte_and_bit_length_match_python():
    rng = random.Random(1)
    values = [0, 1, 2, 255, 256, 257, (1 << 64) - 1, 1 << 64, (1 << 2048) - 1, 1 << 4095,
              (1 << 16384) - 1, 1 << 16384, (1 << 40000) + 7]
    values += [rng.getrandbits(rng.randrange(1, 5000)) for _ in range(200)]
    for v in values:
        assert pkcs1.bit_length(v) == v.bit_length()
        assert pkcs1.byte_length(v) == (v.bit_length() + 7) // 8


def test_int_bytes_round_trip_and_overflow():
    assert pkcs1.int_to_bytes(1, 4) == b"\x00\x00\x00\x01"
    assert pkcs1.bytes_to_int(b"\x00\x01\x00") == 256
    assert pkcs1.bytes_to_int(memoryview(b"\x01\x02")) == 0x102
    with pytest.raises(ValueError):
        pkcs1.int_to_bytes(256, 1)
    with pytest.raises(ValueError):
        pkcs1.int_to_bytes(-1, 4)


def test_digest_info_prefixes_are_der_of_the_hash_oid():
    for name, algo in HASHES.items():
        digest = bytes(algo.digest_size)
        info = pkcs1.digest_info(name, digest)
        # SEQUENCE length covers the rest; the digest sits in a final OCTET STRING
        assert info[0] == 0x30 and info[1] == len(info) - 2
        assert info[-len(digest) - 2 :][:2] == bytes([0x04, len(digest)])
    with pytest.raises(ValueError):
        pkcs1.digest_info("md5", bytes(16))
    with pytest.raises(ValueError):
        pkcs1.digest_info("sha256", bytes(20))


def test_our_encrypt_decrypts_with_cryptography(key, pub):
    n, e = pub
    for message in (b"", b"x", os.urandom(48), os.urandom(256 - 11)):
        c = pkcs1.encrypt(BACKEND, n, e, message)
        assert len(c) == 256
        assert key.decrypt(c, padding.PKCS1v15()) == message


def test_encrypt_padding_is_nonzero_even_with_zero_heavy_randomness(key, pub):
    class ZeroHeavy:
        hash_names = BACKEND.hash_names

        def __init__(self):
            self.drawn = 0

        def random(self, n):
            # every other byte zero: the encoder has to draw again
            out = bytes((j % 2) * (j % 255 + 1) for j in range(self.drawn, self.drawn + n))
            self.drawn += n
            return out

    n, e = pub
    c = pkcs1.encrypt(ZeroHeavy(), n, e, b"premaster")
    d = key.private_numbers().d
    em = pkcs1.int_to_bytes(pow(pkcs1.bytes_to_int(c), d, n), 256)
    assert em[:2] == b"\x00\x02"
    ps_end = em.index(0, 2)
    assert ps_end - 2 >= 8 and em[ps_end + 1 :] == b"premaster"


def test_encrypt_rejects_long_message(pub):
    n, e = pub
    with pytest.raises(ValueError):
        pkcs1.encrypt(BACKEND, n, e, bytes(256 - 10))


@pytest.mark.parametrize("name", ["sha256", "sha384", "sha512", "sha1"])
def test_cryptography_signature_verifies(key, pub, name):
    n, e = pub
    message = b"ServerKeyExchange params " + name.encode()
    sig = key.sign(message, padding.PKCS1v15(), HASHES[name])
    assert pkcs1.verify(BACKEND, n, e, name, message, sig) is True
    # our encoder is what cryptography exponentiated
    d = key.private_numbers().d
    assert pkcs1.encode_signature(BACKEND, name, message, 256) == pkcs1.int_to_bytes(
        pow(pkcs1.bytes_to_int(sig), e, n), 256
    )
    assert (
        pkcs1.int_to_bytes(
            pow(pkcs1.bytes_to_int(pkcs1.encode_signature(BACKEND, name, message, 256)), d, n), 256
        )
        == sig
    )


def test_tampered_or_malformed_signatures_fail(key, pub):
    n, e = pub
    message = b"certificate tbs"
    sig = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    bad = bytearray(sig)
    bad[100] ^= 1
    assert pkcs1.verify(BACKEND, n, e, "sha256", message, bytes(bad)) is False
    assert pkcs1.verify(BACKEND, n, e, "sha256", message + b"!", sig) is False
    assert pkcs1.verify(BACKEND, n, e, "sha384", message, sig) is False
    assert pkcs1.verify(BACKEND, n, e, "sha256", message, sig[1:]) is False
    assert pkcs1.verify(BACKEND, n, e, "sha256", message, b"\x00" + sig) is False
    assert pkcs1.verify(BACKEND, n, e, "sha256", message, pkcs1.int_to_bytes(n, 256)) is False
    assert pkcs1.verify(BACKEND, n, e, "sha256", message, b"\xff" * 256) is False


def test_unsupported_hash_returns_false(key, pub):
    n, e = pub
    message = b"m"
    sig = key.sign(message, padding.PKCS1v15(), hashes.SHA384())
    assert pkcs1.verify(BACKEND, n, e, "md5", message, sig) is False

    class Sha256Only:
        hash_names = ("sha256",)

        def hash(self, name, data):
            return BACKEND.hash(name, data)

    assert pkcs1.verify(Sha256Only(), n, e, "sha384", message, sig) is False


def test_equal():
    assert pkcs1.equal(b"abc", b"abc")
    assert not pkcs1.equal(b"abc", b"abd")
    assert not pkcs1.equal(b"abc", b"ab")
