"""Fixtures for board tests: a PKI, TLS servers to talk to, and the board.

The board is the emulated one (firmware/main.py under the MicroPython unix port on a
pty) unless HSMTLS_BOARD_PORT names a real board's serial port, already provisioned
with this run's files (see `hsmtls board provision`); the same tests then run on it,
except those that need the emulator's relay (faults, resets).

`server_key_spec` is the one place the server's key comes from: a PEM file today; the
token-backed key (a pkcs11: URI for `hsmtls serve --key`) replaces it there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from hsmtls.board.emulator import EmulatedBoard
from hsmtls.board.flash import provision
from hsmtls.devpki import DevPKI

from support import softhsm
from support.hil import REAL_BOARD, provision_emulated, requires_board, requires_emulator  # noqa: F401
from support.required_tools import have_tool, require_tool

# labgrid brings a fork of pyserial (the same `serial` package), so it may live in a venv
# of its own: without labgrid here, test_labgrid_venv.py runs test_labgrid.py under
# $HSMTLS_LABGRID_PYTHON, the python that has it (.ci/run makes one)
try:
    import labgrid  # noqa: F401

    collect_ignore = ["test_labgrid_venv.py"]
except ImportError:
    collect_ignore = ["test_labgrid.py"]


@pytest.fixture(scope="session")
def board_pki(tmp_path_factory) -> DevPKI:
    return DevPKI(tmp_path_factory.mktemp("board_pki"))


@pytest.fixture(scope="session")
def server_key_spec(board_pki, request) -> str:
    """What `hsmtls serve --key` gets: the server key in the SoftHSM2 token (imported
    there, so the DevPKI certificate matches), or the PEM file without SoftHSM2."""
    if not have_tool("softhsm2"):  # under $CI: a failure, not the PEM fallback
        return str(board_pki.server_key)
    from hsmtls.hsm.provision import import_key
    from hsmtls.hsm.token import Token
    from hsmtls.hsm.uri import PKCS11URI

    token = request.getfixturevalue("hil_token")
    uri = import_key(Token(PKCS11URI({"token": token.label})), token.pin, "devpki-server", str(board_pki.server_key))
    return str(uri)


@pytest.fixture(scope="session")
def flash_dir(board_pki, tmp_path_factory) -> Path:
    return provision(
        tmp_path_factory.mktemp("board_flash"), board_pki.ca_cert, board_pki.client_cert, board_pki.client_key
    )


class Servers:
    """The plugin's servers (hsmtls.testing.servers) with this run's DevPKI: each call
    starts one and returns its port; all are stopped after the test."""

    def __init__(self, pki: DevPKI, key_spec: str) -> None:
        self.pki = pki
        self.key_spec = key_spec
        self.started: list = []

    def hsmtls(self, *extra: str, client_auth: bool = False) -> int:
        from hsmtls.testing.servers import hsmtls_server

        server = hsmtls_server(self.pki.server_cert, self.key_spec, dict(os.environ, HSMTLS_PIN=softhsm.PIN),
                               self.pki.ca_cert if client_auth else None, extra=extra)
        self.started.append(server)
        return server.port

    def openssl(self, *extra: str, client_auth: bool = False) -> int:
        from hsmtls.testing.servers import openssl_server

        if shutil.which("openssl") is None:
            pytest.skip("openssl not installed")
        server = openssl_server(self.pki.server_cert, self.pki.server_key,
                                self.pki.ca_cert if client_auth else None, extra)
        self.started.append(server)
        return server.port

    def close(self) -> None:
        for server in self.started:
            server.close()


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
    require_tool("micropython")
    # precompiled by mpy-cross, as `hsmtls board deploy` puts it on a board: compiling
    # the sources on the board leaves its heap in pieces (the 16 KiB records of the
    # mfl=0 echo then find no block); tests/firmware and the link tests run the sources
    with EmulatedBoard(flash_dir, heap="320k", mpy=True) as b:
        yield b.tty
        assert b.rx_dropped == 0, "the host overran the emulated 260-byte UART ring"


# --- the token, a token-backed server and a board provisioned by the token's CA -----------
#
# The token and the board are the hsmtls pytest plugin's (hsmtls.testing.plugin):
# `hsmtls_token`, `hsmtls_board`, as a user's tests get them. support.softhsm puts the
# SoftHSM2 store in SOFTHSM2_CONF when imported (at the top of this file), before anything
# loads the module.


@pytest.fixture(scope="session")
def hil_token(request):
    """The plugin's throwaway token: keys ca, rogue-ca, server; ca.pem, rogue-ca.pem,
    server.pem in .dir (skipped without SoftHSM2, failed under $CI)."""
    require_tool("softhsm2")
    return request.getfixturevalue("hsmtls_token")


@pytest.fixture(scope="session")
def token_server(hil_token):
    """A server whose key is in the token, requiring a client certificate from the token CA."""
    from hsmtls.server import BackgroundServer, TLSServer
    from hsmtls.tlsconfig import server_config

    config = server_config(str(hil_token.dir / "server.pem"), str(hil_token.dir / "ca.pem"), "require")
    log: list[str] = []
    server = TLSServer(config, hil_token.keys["server"], out=log.append)
    with BackgroundServer(server) as bg:
        bg.log = log  # type: ignore[attr-defined]
        yield bg


class ProvisionedBoard:
    """A board with an on-board key and a certificate from `ca` (the emulator, or
    the real board on --port)."""

    def __init__(self, tty: str, flash_dir: Path | None, prov) -> None:
        self.tty = tty
        self.flash_dir = flash_dir
        self.prov = prov


@pytest.fixture(scope="session")
def provisioned_board(hil_token, request):
    """The plugin's board (emulated unless --port) with its own RSA key and a
    token-CA-signed certificate."""
    if not (request.config.getoption("--port") or REAL_BOARD):
        require_tool("micropython")
    board = request.getfixturevalue("hsmtls_board")
    prov = board.provision(hil_token, key_type="rsa")
    return ProvisionedBoard(board.port, board.emulated.flash_dir if board.emulated else None, prov)
