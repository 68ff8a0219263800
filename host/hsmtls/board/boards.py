"""Board definitions: one TOML file per board in boards/ (adding a board is adding a file).

Each names the chip, the MicroPython image's flash offset, the baud rates, the USB
VID:PID pairs that identify it, its heap budget, how the firmware reaches the serial
byte stream (uart0 behind a USB-UART bridge, usb-serial-jtag, pty for the emulator),
whether that stream drops bytes on overflow, and the .mpy architecture for mpy-cross.
`detect()` matches serial ports (pyserial's list_ports) against the VID:PID lists.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import FIRMWARE

BOARDS_DIR = FIRMWARE.parent / "boards"
SERIAL_KINDS = ("uart0", "usb-cdc", "usb-serial-jtag", "pty")
REQUIRED = ("name", "title", "chip", "flash_offset", "baud", "usb", "heap", "serial", "rx_drops", "mpy_arch",
            "mpy_arch_code")


class BoardError(Exception):
    pass


@dataclass(frozen=True)
class BoardDef:
    name: str
    title: str
    chip: str
    flash_offset: int
    baud: int
    usb: tuple[tuple[int, int], ...]
    heap: int
    serial: str
    rx_drops: bool
    mpy_arch: str
    mpy_arch_code: int
    flash_baud: int = 0
    micropython_image: str = ""
    emulated: bool = False
    path: Path | None = field(default=None, compare=False)

    def matches(self, vid: int | None, pid: int | None) -> bool:
        return vid is not None and (vid, pid) in self.usb


def _vidpid(text: str, where: Path) -> tuple[int, int]:
    try:
        v, p = text.split(":")
        return int(v, 16), int(p, 16)
    except ValueError:
        raise BoardError(f"{where}: USB id {text!r} is not VID:PID in hex") from None


def load_board(path: Path) -> BoardDef:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise BoardError(f"{path}: {e}") from None
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise BoardError(f"{path}: missing {', '.join(missing)}")
    if data["serial"] not in SERIAL_KINDS:
        raise BoardError(f"{path}: serial must be one of {', '.join(SERIAL_KINDS)}")
    if data["name"] != path.stem:
        raise BoardError(f"{path}: name {data['name']!r} must match the file name")
    fields = {k: v for k, v in data.items() if k in BoardDef.__dataclass_fields__}
    fields["usb"] = tuple(_vidpid(u, path) for u in data["usb"])
    return BoardDef(path=path, **fields)


def all_boards(directory: Path = BOARDS_DIR) -> dict[str, BoardDef]:
    return {p.stem: load_board(p) for p in sorted(directory.glob("*.toml"))}


def get_board(name: str, directory: Path = BOARDS_DIR) -> BoardDef:
    boards = all_boards(directory)
    by_chip = [b for b in boards.values() if b.chip == name]
    if name not in boards and len(by_chip) == 1:
        return by_chip[0]  # --board esp32s3: the one board with that chip
    if name not in boards:
        raise BoardError(f"unknown board {name!r}: one of {', '.join(boards)} (files in {directory})")
    return boards[name]


@dataclass
class FoundPort:
    device: str
    vid: int | None
    pid: int | None
    description: str
    boards: list[str]


def detect(directory: Path = BOARDS_DIR, ports: list | None = None) -> list[FoundPort]:
    """Serial ports whose USB VID:PID one of the boards lists (all candidates named)."""
    if ports is None:
        from serial.tools import list_ports

        ports = list(list_ports.comports())
    boards = all_boards(directory)
    out = []
    for p in ports:
        names = [b.name for b in boards.values() if b.matches(p.vid, p.pid)]
        if names:
            out.append(FoundPort(p.device, p.vid, p.pid, p.description or "", names))
    return out
