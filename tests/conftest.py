"""Project-wide pytest options: --slow (on in CI), and --board/--port for HIL runs."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="also run tests marked slow (always on when $CI is set)")
    parser.addoption("--board", default="emulator", help="board to run HIL tests on (default: emulator)")
    parser.addoption("--port", default=None, help="serial port of a real board")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow") or os.environ.get("CI"):
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
