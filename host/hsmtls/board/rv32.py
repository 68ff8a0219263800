"""The rv32 machine: MicroPython's qemu port on QEMU's 32-bit RISC-V virt board.

build_image() builds the image (`hsmtls board build --machine rv32`, through build.py)
from MicroPython's sources with boards/rv32/ as the board: the firmware frozen in,
mbedTLS for hashlib, cryptolib and MicroPython's own `tls`, and the board support in
boards/rv32/board.c. qemu_argv() is how the emulated board (emulator.EmulatedBoard with
machine="rv32") starts it:

* the UART is the board's serial port: QEMU opens the board side of the emulator's
  relay (a pty), so the relay's ESP32 ring and link faults work as for the unix port;
* the flash is the emulator's flash directory, QEMU's working directory, which the
  board reaches by semihosting (files persist across resets, as on a board);
* a boot block placed in RAM by QEMU's generic loader at every boot gives the heap
  size, the boot flags and 32 bytes of fresh host entropy, the seed of the board's
  random generator: the emulator's stand-in for the ESP32's hardware RNG (the virt
  machine has none, and the port's own generator repeats every boot);
* -icount shift=0: the clock counts 1 ns per instruction executed, so what the board
  computes is measured in instructions, the same on every run; sleep=on: while the
  CPU sleeps waiting for the host, its clock follows real time, so the link's and the
  session's timeouts mean what they mean on a board (with sleep=off the clock would
  jump to each timeout's end at once, and every timeout would fire in microseconds).

The heap is set at boot, up to the image's MICROPY_HEAP_SIZE (1 MiB unless built with
--heap): one image serves every heap size, which the smallest-heap search needs.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

from . import FIRMWARE

BOARD_DIR = FIRMWARE.parent / "boards" / "rv32"
QEMU = "qemu-system-riscv32"
CC = "riscv64-unknown-elf-gcc"
APT = "apt install gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc"

# GCC 12 (Debian 12) has no multilib for the port's default rv32imac_zicsr and would
# link a 64-bit libgcc: the C code is built for rv32imac under the 2.2 ISA spec (where
# the CSR instructions are part of I), the assembler gets the full name. Part of the
# image's recipe.
RV32_MAKE = ["RV32_ARCH=rv32imac", "CFLAGS_EXTRA=-misa-spec=2.2", "AFLAGS=-mabi=ilp32 -march=rv32imac_zicsr"]
MAX_HEAP = 1024 * 1024  # MICROPY_HEAP_SIZE unless build_image is given one

# The boot block (boards/rv32/board.c): where, and its flags
BOOT_BLOCK = 0x80800000
BOOT_MAGIC = 0x544D5348
BOOT_NO_MAIN = 1  # the REPL instead of main.py
BOOT_NO_RING = 2  # the host's end holds the host back (native USB): no 260-byte ring
BOOT_DEV_BUTTON = 4  # the BOOT button held as the board starts (board_port/qemu.py)


def check_toolchain() -> None:
    from .build import BuildError

    if shutil.which(CC) is None:
        raise BuildError(f"no RISC-V compiler ({CC}): {APT}")
    r = subprocess.run([CC, "--print-file-name=picolibc.specs"], capture_output=True, text=True)
    if r.returncode or r.stdout.strip() == "picolibc.specs":
        raise BuildError(f"no C library for the RISC-V compiler (picolibc): {APT}")


def build_image(tree: Path, out_dir: Path, heap: int | None, manifest: Path) -> Path:
    """The rv32 image from `tree` into out_dir: firmware.elf, which QEMU boots.
    heap: MICROPY_HEAP_SIZE, the largest heap a boot may ask for (default 1 MiB)."""
    from .build import _lock, build_dir, forget_frozen, mpy_cross, run_make

    check_toolchain()
    log = out_dir / "build.log"
    cross = mpy_cross(tree, log)
    build = build_dir("rv32", tree)
    with _lock(build.name):
        # MICROPY_HEAP_SIZE is a C define make does not track: the objects that use it
        # are rebuilt when it changes
        stamp = build / "heap"
        size = heap or MAX_HEAP
        if not stamp.exists() or stamp.read_text() != str(size):
            shutil.rmtree(build, ignore_errors=True)
            build.mkdir(parents=True)
            stamp.write_text(str(size))
        forget_frozen(build)
        run_make([f"-j{os.cpu_count() or 1}", "BOARD=HSMTLS_RV32", f"BOARD_DIR={BOARD_DIR}", f"BUILD={build}",
                  *RV32_MAKE, f"MICROPY_MPYCROSS={cross}", f"FROZEN_MANIFEST={manifest}",
                  f"MICROPY_HEAP_SIZE={size}"], tree / "ports" / "qemu", log)
        image = out_dir / "firmware.elf"
        shutil.copy2(build / "firmware.elf", image)
    return image


def boot_block(heap: int | None, flags: int) -> bytes:
    """What the board finds in RAM at boot: heap bytes (0: the image's), flags, seed."""
    return struct.pack("<IIII", BOOT_MAGIC, heap or 0, flags, 0) + os.urandom(32)


def qemu_binary() -> str:
    found = shutil.which(QEMU)
    if found is None:
        raise RuntimeError(f"{QEMU} is not installed: apt install qemu-system-misc")
    return found


def qemu_argv(image: Path, tty: str, boot: Path) -> list[str]:
    """QEMU running `image` with its UART on `tty` and `boot` (boot_block) in RAM. Run it
    in the board's flash directory."""
    return [qemu_binary(), "-machine", "virt", "-bios", "none", "-nodefaults", "-display", "none",
            "-chardev", f"serial,id=link,path={tty}", "-serial", "chardev:link",
            "-semihosting-config", "enable=on,target=native",
            "-icount", "shift=0,sleep=on",
            "-device", f"loader,file={boot},addr={BOOT_BLOCK:#x},force-raw=on",
            "-kernel", str(image)]


def heap_bytes(heap: str | int | None) -> int | None:
    """The emulator's heap ("96k", "1m", 65536) in bytes."""
    if heap is None:
        return None
    s = str(heap).strip().lower()
    mult = {"k": 1024, "m": 1024 * 1024}.get(s[-1:], 1)
    return int(s.rstrip("km")) * mult


if __name__ == "__main__":
    # until `hsmtls board build` has --machine rv32 here: python -m hsmtls.board.rv32 [--heap N]
    import argparse

    from .build import BuildError, build

    ap = argparse.ArgumentParser(prog="python -m hsmtls.board.rv32")
    ap.add_argument("--heap")
    ap.add_argument("--micropython")
    a = ap.parse_args()
    try:
        print(build("rv32", a.heap, a.micropython, log=print)["image"])
    except BuildError as e:
        raise SystemExit(f"error: {e}") from None
