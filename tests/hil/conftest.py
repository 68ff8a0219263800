"""Fixtures for board tests: a PKI, TLS servers to talk to, and the board.

The board is the emulated one (firmware/main.py under the MicroPython unix port on a
pty) unless HSMTLS_BOARD_PORT names a real board's serial port, already provisioned
with this run's files (see `hsmtls board provision`); the same tests then run on it,
except those that need the emulator's relay (faults, resets).

`server_key_spec` is the one place the server's key comes from: a PEM file today; the
token-backed key (a pkcs11: URI for `hsmtls serve --key`) replaces it there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))
from hil_support import REAL_BOARD, requires_board, requires_emulator  # noqa: E402, F401
from mp_run import MICROPYTHON  # noqa: E402

from hsmtls.board.emulator import EmulatedBoard  # noqa: E402
from hsmtls.board.flash import provision  # noqa: E402
from hsmtls.devpki import DevPKI  # noqa: E402


@pytest.fixture(scope="session")
def board_pki(tmp_path_factory) -> DevPKI:
    return DevPKI(tmp_path_factory.mktemp("board_pki"))


@pytest.fixture(scope="session")
def server_key_spec(board_pki) -> str:
    """What `hsmtls serve --key` gets: swap for a pkcs11: URI when the token arrives."""
    return str(board_pki.server_key)


@pytest.fixture(scope="session")
def flash_dir(board_pki, tmp_path_factory) -> Path:
    return provision(
        tmp_path_factory.mktemp("board_flash"), board_pki.ca_cert, board_pki.client_cert, board_pki.client_key
    )


class Servers:
    def __init__(self, pki: DevPKI, key_spec: str) -> None:
        self.pki = pki
        self.key_spec = key_spec
        self.procs: list[subprocess.Popen] = []

    def hsmtls(self, *extra: str, client_auth: bool = False) -> int:
        args = [sys.executable, "-m", "hsmtls", "serve", "--host", "127.0.0.1", "--port", "0",
                "--cert", str(self.pki.server_cert), "--key", self.key_spec, *extra]
        if client_auth:
            args += ["--client-ca", str(self.pki.ca_cert)]
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(p)
        line = p.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"hsmtls serve did not start: {line}{p.stdout.read()}")
        m = re.search(r"listening on [^ ]+:(\d+)", line)
        assert m, line
        return int(m.group(1))

    def openssl(self, *extra: str, client_auth: bool = False) -> int:
        if shutil.which("openssl") is None:
            pytest.skip("openssl not installed")
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        args = ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-tls1_2",
                "-cert", str(self.pki.server_cert), "-key", str(self.pki.server_key), "-quiet", *extra]
        if client_auth:
            args += ["-Verify", "1", "-CAfile", str(self.pki.ca_cert)]
        p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return port
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("openssl s_server did not start")

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


@pytest.fixture
def servers(board_pki, server_key_spec):
    s = Servers(board_pki, server_key_spec)
    yield s
    s.close()


@pytest.fixture(scope="session")
def board_tty(flash_dir):
    """The serial port of the board shared by the plain handshake tests."""
    if REAL_BOARD:
        yield REAL_BOARD
        return
    if MICROPYTHON is None:
        pytest.skip("MicroPython unix port not installed")
    with EmulatedBoard(flash_dir, heap="256k") as b:
        yield b.tty
        assert b.rx_dropped == 0, "the host overran the emulated 260-byte UART ring"
