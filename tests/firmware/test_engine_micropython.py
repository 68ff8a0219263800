"""The engine under MicroPython: every module imports, every message codec round-trips."""

from pathlib import Path

import pytest

from support.mp_run import requires_micropython, run_mp

REPO = Path(__file__).resolve().parents[2]
ENGINE = sorted(
    p.stem
    for p in (REPO / "firmware" / "lib" / "tlscore").glob("*.py")
    if p.stem != "__init__"
)
SCRIPTS = Path(__file__).parent / "scripts"

pytestmark = [pytest.mark.micropython, requires_micropython]


def test_every_engine_module_imports_under_micropython():
    script = "import tlscore\n" + "".join(
        "import tlscore.%s\nprint('imported', %r)\n" % (m, m) for m in ENGINE
    )
    out = run_mp(script)
    assert out.split().count("imported") == len(ENGINE)


def test_codecs_round_trip_under_micropython():
    out = run_mp((SCRIPTS / "codec_roundtrip.py").read_text())
    lines = out.strip().splitlines()
    assert lines[-1] == "done"
    names = {line.split()[1] for line in lines if line.startswith("ok ")}
    assert names == {
        "HelloRequest", "ClientHello", "ServerHello", "Certificate", "CertificateRequest",
        "ServerHelloDone", "ServerKeyExchange", "ClientKeyExchange", "CertificateVerify", "Finished",
    }
