"""The PEM file key's premaster decryption (host/hsmtls/keys.py): the countermeasure
does not depend on OpenSSL having implicit rejection (3.2+; Debian 12 has 3.0).

Both of the file key's ways are tested whatever this OpenSSL is: through OpenSSL when
it rejects implicitly, and raw RSA in Python (CRT, blinded) when it does not, forced
by clearing `openssl_rejects_implicitly`.
"""

from __future__ import annotations

import copy
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import padding

from hsmtls.keys import FileKey
from tlscore import constants as C
from tlscore.pkcs1 import depad_premaster

from support.engine_pair import BAD_PREMASTER_KINDS, bad_premaster_alerts, bad_premaster_ciphertext

WAYS = ["openssl", "python"]


@pytest.fixture(params=WAYS)
def file_key(request, server_key) -> FileKey:
    key = copy.copy(server_key)
    if request.param == "openssl" and not key.openssl_rejects_implicitly:
        pytest.skip("this OpenSSL has no implicit rejection")
    key.openssl_rejects_implicitly = request.param == "openssl"
    return key


def test_depad_premaster():
    k = 256
    m = b"\x03\x03" + bytes(range(46))
    good = b"\x00\x02" + b"\x11" * (k - 51) + b"\x00" + m
    assert depad_premaster(good, k) == (1, m)
    for bad in (
        b"\x00\x01" + good[2:],  # block type 1
        b"\x01" + good[1:],  # leading byte
        good[: k - 49] + b"\x05" + good[k - 48:],  # no separator before 48 bytes
        b"\x00\x02" + b"\x11" * 5 + b"\x00" * (k - 56) + b"\x00" + m,  # zero inside PS
        b"",  # no decryption at all (a ciphertext refused before it)
    ):
        assert depad_premaster(bad, k)[0] == 0


def test_good_premaster_decrypts(file_key):
    pm = b"\x03\x03" + os.urandom(46)
    ct = file_key._rsa_key.public_key().encrypt(pm, padding.PKCS1v15())
    assert file_key.decrypt_premaster(ct)[:2] == (1, pm)


@pytest.mark.parametrize("kind", BAD_PREMASTER_KINDS)
def test_bad_ciphertext_gives_the_same_substitute_each_time(file_key, kind):
    # implicit rejection as in the token: a pair (candidate, substitute) that depends
    # only on the ciphertext and the key, so a repeated probe learns nothing new
    ct = bad_premaster_ciphertext(kind, file_key.n, file_key.e, file_key.k, b"\x03\x03" + bytes(46))
    a, b = file_key.decrypt_premaster(ct), file_key.decrypt_premaster(ct)
    assert isinstance(a, tuple) and a == b and len(a[1]) == 48 and len(a[2]) == 46


@pytest.mark.parametrize("kind", BAD_PREMASTER_KINDS)
def test_bad_premaster_fails_at_finished(make_configs, file_key, kind, monkeypatch):
    cc, sc = make_configs("TLS_RSA_WITH_AES_128_GCM_SHA256")
    after_cke, closed, client_alerts = bad_premaster_alerts(cc, sc, file_key, kind, monkeypatch)
    assert after_cke == b""  # no alert at the key exchange
    assert closed is not None and closed.local and closed.alert == C.BAD_RECORD_MAC
    assert client_alerts == [C.BAD_RECORD_MAC]


def test_python_way_never_calls_openssl_decryption(server_key):
    # without implicit rejection OpenSSL raises on a bad padding: an exception path a
    # peer can time (Bleichenbacher, Marvin); the Python way must not go there at all
    key = copy.copy(server_key)
    key.openssl_rejects_implicitly = False

    class NoDecrypt:
        def decrypt(self, *a):
            raise AssertionError("OpenSSL's PKCS#1 v1.5 decryption was called")

    key._rsa_key = NoDecrypt()
    for kind in BAD_PREMASTER_KINDS:
        key.decrypt_premaster(bad_premaster_ciphertext(kind, key.n, key.e, key.k, b"\x03\x03" + bytes(46)))
    assert key.premaster_note is not None and "raw RSA in Python" in key.premaster_note


def test_openssl_probe_matches_its_version(server_key):
    from cryptography.hazmat.backends.openssl import backend

    text = backend.openssl_version_text()
    if text.startswith("OpenSSL "):
        major, minor = (int(x) for x in text.split()[1].split(".")[:2])
        assert server_key.openssl_rejects_implicitly == ((major, minor) >= (3, 2)), text
    assert (server_key.premaster_note is None) == server_key.openssl_rejects_implicitly


# --- secret files: 0600 from the first byte ---------------------------------------------------


@pytest.fixture
def umask_0():
    old = os.umask(0)  # the widest a careless caller could leave it
    yield
    os.umask(old)


@pytest.mark.parametrize("exclusive", [True, False])
def test_private_file_is_created_0600_and_never_chmoded(tmp_path, umask_0, monkeypatch, exclusive):
    from pathlib import Path

    from hsmtls.keys import write_private_file

    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, flags, mode=0o777: opened.append((flags, mode)) or real_open(p, flags, mode))
    for chmod in (os, Path):
        monkeypatch.setattr(chmod, "chmod", lambda *a, **k: pytest.fail("chmod after the file was written"))
    target = tmp_path / "secret"
    write_private_file(target, b"1234\n", exclusive=exclusive)
    assert target.read_bytes() == b"1234\n" and (target.stat().st_mode & 0o777) == 0o600
    assert opened == [(opened[0][0], 0o600)] and opened[0][0] & os.O_EXCL
    if exclusive:
        with pytest.raises(FileExistsError):
            write_private_file(target, b"other\n", exclusive=True)
        assert target.read_bytes() == b"1234\n"
    else:
        write_private_file(target, b"new\n")  # replaces, still 0600
        assert target.read_bytes() == b"new\n" and (target.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_devpki_keys_are_0600(tmp_path, umask_0):
    from hsmtls import devpki

    path = devpki.write_key(tmp_path / "k.key", devpki.new_key())
    assert (path.stat().st_mode & 0o777) == 0o600
