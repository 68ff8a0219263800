"""The unix32 machine: MicroPython 1.28 built from its sources as a 32-bit program with
the firmware frozen in (`hsmtls board build`, `hsmtls board emulate --machine unix32`),
the emulated board closest to an ESP32 that runs on the host: 32-bit objects, 16-byte
GC blocks, the code out of the heap. Its smallest heaps are the board's heap budget
(docs/board.md, "Heap"); a change that needs more fails here."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hsmtls.board.emulator import EmulatedBoard
from hsmtls.board.hostlink import HostLink

from support.hil import requires_emulator

pytestmark = [pytest.mark.micropython, requires_emulator, pytest.mark.slow]


@pytest.fixture(scope="module")
def image():
    from hsmtls.board.build import BuildError, check_toolchain, default_sources, find_image

    try:
        if default_sources() is None:
            raise BuildError("no MicroPython sources at ../shared/micropython")
        check_toolchain("gcc-m32")
        return find_image("unix32")
    except BuildError as e:
        if os.environ.get("CI") and not os.environ.get("HSMTLS_NO_MICROPYTHON_SOURCES"):
            raise
        pytest.skip(str(e))


def test_the_board_runs_the_frozen_firmware_on_32_bits(image, flash_dir):
    with EmulatedBoard(flash_dir, heap="64k", machine="unix32") as b, HostLink(b.tty) as link:
        hello = link.connect(10)
    assert hello["impl"] == "micropython 1.28.0" and hello["heap"] < 65536, hello


def test_emulate_says_when_the_heap_is_too_small_to_start(image, tmp_path):
    p = subprocess.run([sys.executable, "-m", "hsmtls", "board", "emulate", "--machine", "unix32", "--heap", "24k",
                        "--flash", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stdout.startswith("/dev/"), p
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "MemoryError" in err[0] and "heap 24k is too small to start the firmware" in err[0], err


# The budget: a 2048-bit-chain handshake (RSA-2048 server and CA, TLS_RSA_WITH_AES_128_
# GCM_SHA256) on fresh boards, the firmware frozen. Measured with `hsmtls bench board
# --machine unix32`: plain 52 KiB, ECDSA P-256 client key 58, RSA-2048 client key 64
# (resumption, tickets and four more suites took the firmware's own state from 34.6 to
# 36.6 KB). The target is 64 KiB for all three; plain is held to 52.
BUDGET_KIB = {"plain": 52, "ecdsa": 64, "rsa": 64}


@pytest.mark.parametrize("kind", list(BUDGET_KIB))
def test_handshake_within_the_heap_budget(image, tmp_path, kind):
    from hsmtls.cli.board_sessions import load_benchmark
    from hsmtls.devpki import DevPKI

    bb = load_benchmark("bench_board.py")
    auth, key_type = bb.HEAP_KINDS[kind]
    pki = DevPKI(tmp_path / "pki")
    flash = bb.provision(tmp_path / "flash", pki.ca_cert, *bb._client(pki, key_type))
    srv, port = bb._openssl(pki, auth)
    try:
        for _ in range(3):  # fresh boards: how the heap falls into pieces varies per boot
            r = bb.ours(flash, port, 1, auth, f"{BUDGET_KIB[kind]}k", machine="unix32")
            assert r["ok"], (kind, r)
    finally:
        srv.kill()


def test_deploy_is_frozen_on_unix32(image, tmp_path):
    # `hsmtls board deploy --board emulator` on unix32 once pushed x64 .mpy files into a
    # 32-bit image's flash: main.py only, the firmware found frozen in the image
    flash = tmp_path / "flash"
    p = subprocess.run([sys.executable, "-m", "hsmtls", "board", "deploy", "--board", "emulator", "--flash", str(flash)],
                       capture_output=True, text=True, timeout=240, env=dict(os.environ, HSMTLS_MACHINE="unix32"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "firmware code frozen in the image (boardapp/board.py)" in p.stdout, p.stdout
    assert sorted(x.name for x in flash.iterdir()) == ["main.py"]
