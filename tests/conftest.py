"""Project-wide pytest options and the fixtures the interop tests share.

Options: --slow (always on when $CI is set) runs tests marked slow; --board picks the
emulated machine for HIL runs, --port a real board (the hsmtls plugin's option). Marks:
requires_tool(name) (tests/support/required_tools.py): skipped without the tool, failed
under $CI. Fixtures: `pki` (tests/support/pki.py, generated once per session),
`hsmtls_cmd` (how to run our CLI), `free_port`, and `hsmtls_server` (a factory that
starts `hsmtls serve` on a kernel-chosen port and stops it after the test).
"""

from __future__ import annotations

import os
import socket
import sys

import pytest

from support.openssl_tools import HsmtlsServer, ServerPool, start_hsmtls_server
from support.pki import PKI, make_pki
from support.required_tools import require_tool


def pytest_addoption(parser):
    parser.addoption(
        "--slow",
        action="store_true",
        default=False,
        help="also run tests marked slow (always on when $CI is set)",
    )
    parser.addoption(
        "--board",
        default="emulator",
        help="board to run HIL tests on: emulator (the unix64 machine), or the emulated machine "
        "unix32 or rv32 (built by `hsmtls board build`, or on first use)",
    )
    # --port (a real board's serial port or URL) is the hsmtls pytest plugin's
    # (hsmtls.testing.plugin, installed with the package), which this suite uses as a user would


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "requires_tool(name): needs an external tool; skipped without it, failed under $CI "
        "(tests/support/required_tools.py)")

    # an emulated machine for every EmulatedBoard of the run, and the `hsmtls` commands
    # it starts; a machine with an image is built (or found in the cache) once, here
    machine = config.getoption("--board")
    if machine in ("unix64", "unix32", "rv32"):
        os.environ["HSMTLS_MACHINE"] = machine
    if machine in ("unix32", "rv32"):
        from hsmtls.board.build import BuildError, find_image

        try:
            if machine == "rv32":
                from hsmtls.board import rv32

                try:
                    rv32.qemu_binary()
                except RuntimeError as e:
                    raise BuildError(str(e)) from None
            find_image(machine)
        except BuildError as e:
            # under $CI a missing tool fails the run (.ci/run installs them all), unless
            # the sources themselves are missing (HSMTLS_NO_MICROPYTHON_SOURCES: they cannot
            # be fetched there); elsewhere every test skips, saying why in one line
            if os.environ.get("CI") and not os.environ.get("HSMTLS_NO_MICROPYTHON_SOURCES"):
                raise pytest.UsageError(f"--board {machine}: {e}") from None
            config.stash[_NO_IMAGE] = f"--board {machine}: {e}"


_NO_IMAGE = pytest.StashKey[str]()


def pytest_report_header(config):
    if _NO_IMAGE in config.stash:
        return f"{config.stash[_NO_IMAGE]} (every test skips)"
    return None


def pytest_runtest_setup(item):
    for mark in item.iter_markers("requires_tool"):
        require_tool(*mark.args)


def slow_enabled(config) -> bool:
    return bool(config.getoption("--slow") or os.environ.get("CI"))


def pytest_collection_modifyitems(config, items):
    if _NO_IMAGE in config.stash:
        no_image = pytest.mark.skip(reason=config.stash[_NO_IMAGE])
        for item in items:
            item.add_marker(no_image)
        return
    if slow_enabled(config):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow (CI always does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def board_name(request) -> str:
    return request.config.getoption("--board")


@pytest.fixture(scope="session")
def board_port(request) -> str | None:
    return request.config.getoption("--port")


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> PKI:
    """The test PKI (CA, good and broken server/client certificates) as PEM files."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def hsmtls_cmd() -> list[str]:
    """argv prefix that runs our CLI with the interpreter running the tests."""
    return [sys.executable, "-m", "hsmtls"]


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (prefer port 0 where possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerFactory:
    """The `hsmtls_server` fixture: call it to start a server; remembers what it started."""

    def __init__(self, cmd: list[str]) -> None:
        self.cmd = cmd
        self.started: list[HsmtlsServer] = []

    def __call__(
        self,
        cert,
        key,
        client_ca=None,
        verify_client=None,
        app="echo",
        ciphers=None,
        renegotiate=False,
        extra=(),
    ) -> HsmtlsServer:
        server = start_hsmtls_server(
            self.cmd,
            cert,
            key,
            client_ca=client_ca,
            verify_client=verify_client,
            app=app,
            ciphers=ciphers,
            renegotiate=renegotiate,
            extra=extra,
            timeout=15.0,
        )
        self.started.append(server)
        return server

    def close(self) -> None:
        for server in self.started:
            server.terminate()


@pytest.fixture(scope="module")
def hsmtls_server_pool(hsmtls_cmd):
    """ServerPool: servers shared by a module's tests, one per configuration
    (`pool.get(cert, key, **same keywords as hsmtls_server)`), stopped after the module."""
    pool = ServerPool(hsmtls_cmd)
    yield pool
    pool.close()


@pytest.fixture
def hsmtls_server(hsmtls_cmd):
    """Factory: hsmtls_server(cert, key, client_ca=None, verify_client=None, app="echo",
    ciphers=None, renegotiate=False, extra=()) -> HsmtlsServer with .port, .proc,
    .output(), .wait_for(), .wait_log(prefix), launched as `hsmtls serve --host
    127.0.0.1 --port 0 ...`; fails with the server's output if `listening on
    127.0.0.1:PORT` does not appear within 15 s. Every server is terminated at teardown.
    """
    factory = ServerFactory(hsmtls_cmd)
    yield factory
    factory.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # A failed interop test shows our server's side too, not only the assertion.
    report = yield
    if report.failed and call.when in ("call", "teardown"):
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, ServerFactory):
                servers = value.started
            elif isinstance(value, ServerPool):
                servers = [value.current] if value.current else []
            else:
                continue
            for server in servers:
                report.sections.append(("hsmtls serve output", server.transcript()))
    return report
