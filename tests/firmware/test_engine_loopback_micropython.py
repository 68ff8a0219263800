"""The whole engine under MicroPython with the board's backend: client and server back
to back for every board suite (GCM; CBC with and without encrypt_then_mac), with client
authentication, renegotiation from both sides and data both ways."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from hsmtls.devpki import DevPKI

from support.mp_run import requires_micropython, run_mp

SCRIPT = Path(__file__).parent / "scripts" / "engine_loopback.py"


def _numbers(path: Path) -> str:
    k = serialization.load_pem_private_key(path.read_bytes(), None).private_numbers()
    vals = {"n": k.public_numbers.n, "e": k.public_numbers.e, "p": k.p, "q": k.q,
            "dp": k.dmp1, "dq": k.dmq1, "qinv": k.iqmp}
    return "\n".join(f"{a}={b:x}" for a, b in vals.items())


@pytest.mark.micropython
@requires_micropython
def test_engine_loopback_under_micropython(tmp_path, monkeypatch):
    pki = DevPKI(tmp_path)
    (tmp_path / "server.key.txt").write_text(_numbers(pki.server_key))
    (tmp_path / "client.key.txt").write_text(_numbers(pki.client_key))
    (tmp_path / "now.txt").write_text(str(int(time.time())))
    monkeypatch.chdir(tmp_path)
    script = "import os\nos.chdir(%r)\n" % str(tmp_path) + SCRIPT.read_text()
    out = run_mp(script, timeout=180)
    lines = out.strip().splitlines()
    assert lines[-1] == "done", out
    assert sorted(lines[:-1]) == sorted([
        "ok TLS_RSA_WITH_AES_128_GCM_SHA256 True",
        "ok TLS_RSA_WITH_AES_128_CBC_SHA256 True", "ok TLS_RSA_WITH_AES_128_CBC_SHA256 False",
        "ok TLS_RSA_WITH_AES_128_CBC_SHA True", "ok TLS_RSA_WITH_AES_128_CBC_SHA False",
    ]), out
