"""The hsmtls pytest plugin (`pip install 'hsmtls[pytest]'`, entry point `pytest11`).

Fixtures for host-driven tests of a board running the hsmtls firmware:

- `hsmtls_board` (session): the Board (hsmtls.testing.board) on `--port` (a device or
  an rfc2217:// / socket:// URL; a comma-separated list under pytest-xdist: one a
  worker), else labgrid's target's serial port (`--lg-env`), else an emulated board
  started for the session (one a pytest-xdist worker);
- `hsmtls_token` (session): a throwaway SoftHSM2 token with a CA and a server key (one
  for the whole run, pytest-xdist workers included);
- `hsmtls_provisioned_board` (session): the board with its own key and a certificate
  from the token's CA;
- `hsmtls_serve` (factory): `hsmtls serve` with the token's key (client auth,
  renegotiation, suites, CRL): one a set of options for the whole run, shared by the
  tests and the pytest-xdist workers (hsmtls.testing.shared), or `private=True`;
- `hsmtls_openssl_server` (factory): `openssl s_server` with a PEM key from the same CA.

Options follow pytest-embedded where they mean the same (`--port`, `--baud`); ours
are `--hsmtls-*`. A board that cannot be reached, a busy port, other firmware: the
tests that need it fail with one line saying which and what to do.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported when a fixture is used: the plugin loads in every pytest run
    from .board import Board
    from .servers import Server
    from .token import ThrowawayToken


def _add(group, *names: str, **kw) -> None:
    # --port/--baud may come from another plugin already (pytest-embedded): same meaning
    try:
        group.addoption(*names, **kw)
    except ValueError:
        pass


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hsmtls", "hsmtls: the board under test")
    _add(group, "--port", default=None,
         help="serial port of the board: a device (/dev/ttyUSB0), rfc2217://HOST:PORT or socket://HOST:PORT; "
              "with pytest-xdist a comma-separated list, one a worker [default: $HSMTLS_BOARD_PORT, else an "
              "emulated board]")
    _add(group, "--baud", type=int, default=None, help="baud rate of --port [default: the board's, 115200]")
    group.addoption("--hsmtls-board", default="emulator",
                    help="board name (boards/*.toml: esp32-devkitc, esp32s3-devkitc-1, ...) [default: emulator]")
    group.addoption("--hsmtls-heap", default="320k", help="heap of the emulated board (the 64-bit unix port) [default: 320k]")
    group.addoption("--hsmtls-key-type", default="ec", choices=["ec", "rsa"],
                    help="key the board makes when provisioned [default: ec, ECDSA P-256]")


def _xdist_controller(config: pytest.Config) -> bool:
    """Whether this process is the controller of a pytest-xdist run (runs no tests itself)."""
    if hasattr(config, "workerinput") or not config.pluginmanager.hasplugin("xdist"):
        return False
    return getattr(config.option, "dist", "no") != "no" and bool(getattr(config.option, "numprocesses", None)
                                                                  or getattr(config.option, "tx", None))


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    # before the workers start (pytest_sessionstart): they inherit the run's directory
    if _xdist_controller(config):
        from . import shared

        config.stash[_RUN] = shared.begin_run()


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(_RUN, None)
    if run is not None:
        from . import shared

        shared.end_run(run)
        del config.stash[_RUN]


_RUN = pytest.StashKey["object"]()


def _ports(config: pytest.Config) -> list[str]:
    text = config.getoption("port", None) or os.environ.get("HSMTLS_BOARD_PORT") or ""
    return [p.strip() for p in text.split(",") if p.strip()]


def _labgrid_env(config: pytest.Config) -> bool:
    """Whether labgrid's plugin has an environment (--lg-env, $LG_ENV): the board's
    port is then its target's serial port (hsmtls.testing.labgrid)."""
    return bool(getattr(config.option, "lg_env", None) or (config.pluginmanager.hasplugin("labgrid")
                                                           and os.environ.get("LG_ENV")))


def _worker_index(config: pytest.Config) -> int:
    worker = getattr(config, "workerinput", {}).get("workerid", "gw0")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


def pytest_report_header(config: pytest.Config) -> str:
    ports = _ports(config)
    where = ", ".join(ports) if ports else "the labgrid target's port" if _labgrid_env(config) \
        else "an emulated board"
    return f"hsmtls: board {config.getoption('hsmtls_board')} on {where}"


@pytest.fixture(scope="session")
def hsmtls_board(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The board under test (see the module's docstring); its HELLO checked."""
    from .board import Board

    config = request.config
    name = config.getoption("hsmtls_board")
    ports = _ports(config)
    baud = config.getoption("baud", None)
    if not ports and _labgrid_env(config):
        from .labgrid import LabgridError, serial_port

        why = ""
        try:
            port, speed = serial_port(request.getfixturevalue("target"))
        except LabgridError as e:
            why = str(e)
        _fail(why)
        board = Board(port, name, baud or speed)
        _check(board)
        yield board
        board.close()
        return
    if not ports:
        if name != "emulator":
            pytest.fail(f"--hsmtls-board {name}: give its serial port with --port", pytrace=False)
        from hsmtls.board.emulator import EmulatedBoard, can_precompile

        try:
            emulated = EmulatedBoard(tmp_path_factory.mktemp("hsmtls_flash"), heap=config.getoption("hsmtls_heap"),
                                     mpy=can_precompile()).start()
        except (RuntimeError, ValueError, OSError) as e:
            why = f"cannot start the emulated board: {e}"
        else:
            why = ""
        _fail(why)
        board = Board(emulated.tty, "emulator", baud or 115200, emulated)
        try:
            _check(board)
            yield board
        finally:
            emulated.stop()
        return
    index = _worker_index(config)
    if index >= len(ports):
        pytest.fail(f"worker {index} has no board: --port lists {len(ports)} (one a pytest-xdist worker, -n)",
                    pytrace=False)
    if name != "emulator" and baud is None:
        from hsmtls.board.boards import BoardError as DefError
        from hsmtls.board.boards import get_board

        why = ""
        try:
            baud = get_board(name).baud
        except DefError as e:
            why = f"--hsmtls-board: {e}"
        _fail(why)
    board = Board(ports[index], name, baud or 115200)
    _check(board)
    yield board
    board.close()


def _fail(why: str) -> None:
    # one line in the report (outside any `except`: no "during handling" context)
    if why:
        pytest.fail(why, pytrace=False)


def _check(board: Board) -> None:
    from .board import BoardError

    why = ""
    try:
        board.hello()
    except BoardError as e:
        why = str(e)
    _fail(why)


@pytest.fixture(scope="session")
def hsmtls_token(tmp_path_factory: pytest.TempPathFactory):
    """A throwaway SoftHSM2 token (hsmtls.testing.token.ThrowawayToken): keys "ca",
    "rogue-ca", "server"; ca.pem, server.pem; revoke(serial) -> a CRL signed in it.
    Under pytest-xdist the run's: made by the first worker to ask, used by all."""
    from hsmtls.hsm.token import TokenError, find_module

    from .token import shared_token

    try:
        find_module()
    except TokenError as e:
        pytest.skip(f"no PKCS#11 module for the throwaway token: {e}")
    token = shared_token(tmp_path_factory.mktemp("hsmtls_token"))
    yield token
    token.close()


@pytest.fixture(scope="session")
def _hsmtls_shared_servers(hsmtls_token: ThrowawayToken):
    from .servers import SharedServers

    servers = SharedServers(hsmtls_token)
    yield servers
    servers.close()


@pytest.fixture(scope="session")
def hsmtls_provisioned_board(hsmtls_board: Board, hsmtls_token: ThrowawayToken, request: pytest.FixtureRequest):
    """The board with a key it made and a certificate from the token's CA (its trust
    anchor too); `.provisioned` has the certificate's subject, serial and PEM."""
    from .board import BoardError

    why = ""
    try:
        hsmtls_board.provision(hsmtls_token, key_type=request.config.getoption("hsmtls_key_type"))
    except BoardError as e:
        why = str(e)
    _fail(why)
    return hsmtls_board


class _Factory:
    def __init__(self, start) -> None:
        self.start = start
        self.started: list[Server] = []

    def __call__(self, *args, **kw) -> Server:
        from .servers import ServerError

        try:
            server = self.start(*args, **kw)
        except ServerError as e:
            why = str(e)
        else:
            if not getattr(server, "shared", False):
                self.started.append(server)
            return server
        pytest.fail(why, pytrace=False)

    def close(self) -> None:
        for s in self.started:
            s.close()


@pytest.fixture
def hsmtls_serve(hsmtls_token: ThrowawayToken, _hsmtls_shared_servers):
    """Factory: hsmtls_serve(client_auth=False, renegotiate=False, ciphers=(), crl=None,
    app="echo", private=False) -> Server (.port, .address, .output()): `hsmtls serve` with
    the token's server key. The same options give the same server to every test of the
    run, on every pytest-xdist worker (its output holds all their connections), stopped
    when the run ends; `private=True` starts one for this test alone, stopped after it."""
    from .servers import serve

    def start(private: bool = False, **kw) -> Server:
        if private:
            return serve(hsmtls_token, **kw)
        return _hsmtls_shared_servers.get(**kw)

    factory = _Factory(start)
    yield factory
    factory.close()


@pytest.fixture
def hsmtls_openssl_server(hsmtls_token: ThrowawayToken):
    """Factory: hsmtls_openssl_server(client_auth=False, extra=()) -> Server: `openssl
    s_server -tls1_2` with a PEM key certified by the token's CA; stopped after the test."""

    from .servers import openssl_server

    def start(client_auth: bool = False, extra: tuple[str, ...] = ()) -> Server:
        return openssl_server(hsmtls_token.soft_server_pem, hsmtls_token.soft_server_key,
                              hsmtls_token.ca_pem if client_auth else None, extra)

    factory = _Factory(start)
    yield factory
    factory.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # every RESULT the board gave during the test: in the JUnit XML's properties, and
    # in the report of a failed test
    report = yield
    if call.when != "call":
        return report
    funcargs = getattr(item, "funcargs", {})
    board = funcargs.get("hsmtls_board") or funcargs.get("hsmtls_provisioned_board")
    if board is not None and getattr(board, "results", None):
        results, board.results = board.results, []
        for r in results:
            item.user_properties.append(("hsmtls_result", json.dumps(r, sort_keys=True, default=str)))
        if report.failed:
            from hsmtls.board.bridge import format_result

            report.sections.append(("hsmtls board results", "\n\n".join("\n".join(format_result(r))
                                                                         for r in results)))
    return report
