"""The rv32 machine's host side (host/hsmtls/board/rv32.py): the boot block the board
reads, how QEMU is started, and one line for what is missing. The machine itself runs in
the HIL suite (pytest --board rv32)."""

from __future__ import annotations

import struct

import pytest

from hsmtls.board import rv32
from hsmtls.board.build import BuildError


def test_boot_block_gives_heap_flags_and_a_fresh_seed_each_boot():
    a = rv32.boot_block(64 * 1024, rv32.BOOT_NO_MAIN)
    b = rv32.boot_block(None, 0)
    assert len(a) == len(b) == 48
    magic, heap, flags, _ = struct.unpack("<IIII", a[:16])
    assert (magic, heap, flags) == (rv32.BOOT_MAGIC, 65536, rv32.BOOT_NO_MAIN)
    assert struct.unpack("<IIII", b[:16])[1] == 0  # the image's own heap
    assert a[16:] != b[16:] and len(set(rv32.boot_block(None, 0)[16:] for _ in range(8))) == 8


def test_qemu_counts_instructions_and_finds_the_boot_block(monkeypatch, tmp_path):
    monkeypatch.setattr(rv32.shutil, "which", lambda name: f"/usr/bin/{name}")
    argv = rv32.qemu_argv(tmp_path / "firmware.elf", "/dev/pts/9", tmp_path / "boot.bin")
    line = " ".join(argv)
    assert argv[0] == "/usr/bin/qemu-system-riscv32"
    assert "-icount shift=0,sleep=on" in line
    assert f"loader,file={tmp_path / 'boot.bin'},addr=0x80800000,force-raw=on" in line
    assert "serial,id=link,path=/dev/pts/9" in line and "-semihosting-config enable=on" in line


def test_heap_sizes():
    assert rv32.heap_bytes("64k") == 65536 and rv32.heap_bytes("1m") == 1 << 20
    assert rv32.heap_bytes(4096) == 4096 and rv32.heap_bytes(None) is None


def test_what_is_missing_is_one_line(monkeypatch):
    monkeypatch.setattr(rv32.shutil, "which", lambda name: None)
    with pytest.raises(BuildError) as e:
        rv32.check_toolchain()
    assert str(e.value) == ("no RISC-V compiler (riscv64-unknown-elf-gcc): apt install gcc-riscv64-unknown-elf "
                            "picolibc-riscv64-unknown-elf qemu-system-misc")
    with pytest.raises(RuntimeError, match=r"^qemu-system-riscv32 is not installed: apt install qemu-system-misc$"):
        rv32.qemu_binary()


def test_the_emulator_says_when_qemu_is_missing(monkeypatch):
    from hsmtls.board.emulator import EmulatedBoard

    monkeypatch.setattr(rv32.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="qemu-system-riscv32 is not installed"):
        EmulatedBoard(machine="rv32")


def test_a_build_compiles_every_frozen_module_again(tmp_path):
    # MicroPython's manifest tool skips a module whose .mpy is newer than its source:
    # a firmware file whose time went back (a checkout, another worktree sharing the
    # build directory) would have shipped the old bytecode
    from hsmtls.board.build import forget_frozen

    (tmp_path / "frozen_mpy" / "tlscore").mkdir(parents=True)
    (tmp_path / "frozen_mpy" / "tlscore" / "client.mpy").write_bytes(b"M")
    (tmp_path / "frozen_content.c").write_text("/* old */")
    (tmp_path / "py").mkdir()
    forget_frozen(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["py"]


def test_qemu_dies_with_the_process_that_started_it(monkeypatch):
    from hsmtls.board import emulator

    monkeypatch.setattr(emulator.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert emulator.dies_with_us(["qemu"]) == ["/usr/bin/setpriv", "--pdeathsig", "KILL", "qemu"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_rv32_image_builds_a_32_bit_risc_v_program():
    # the real build, into the user's cache (.ci/run has built it: a lookup); without the
    # sources or the toolchain it skips in one line, but not under $CI, which has them
    import os

    from hsmtls.board import build as B

    try:
        if B.default_sources() is None:
            raise BuildError("no MicroPython sources at ../shared/micropython")
        rv32.check_toolchain()
        rv32.qemu_binary()
        image = B.find_image("rv32")
    except (BuildError, RuntimeError) as e:
        if os.environ.get("CI") and not os.environ.get("HSMTLS_NO_MICROPYTHON_SOURCES"):
            raise
        pytest.skip(str(e))
    head = image.read_bytes()[:20]
    # ELF, 32-bit, little-endian, e_machine 243 (RISC-V)
    assert head[:4] == b"\x7fELF" and head[4] == 1 and head[5] == 1 and struct.unpack("<H", head[18:20])[0] == 243
