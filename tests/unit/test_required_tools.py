"""tests/support/required_tools.py: a missing SoftHSM2 or MicroPython skips locally and fails
under $CI, through the helper and through the requires_tool mark (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import required_tools
from support.required_tools import have_tool, require_tool, requires_tool

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def missing(monkeypatch):
    monkeypatch.setenv("HSMTLS_TESTS_WITHOUT", "softhsm2,micropython")


def test_missing_tool_skips_locally(missing, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="softhsm2 not installed"):
        require_tool("softhsm2")
    assert have_tool("micropython") is False


@pytest.mark.parametrize("name", ["softhsm2", "micropython"])
def test_missing_tool_fails_under_ci(missing, monkeypatch, name):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"{name} not installed .*CI must run this suite"):
        require_tool(name)
    with pytest.raises(pytest.fail.Exception):
        have_tool(name)


def test_present_tool_is_returned(monkeypatch):
    monkeypatch.setattr(required_tools, "_find", lambda name: "/usr/bin/x")
    monkeypatch.setenv("CI", "true")
    assert require_tool("micropython") == "/usr/bin/x" and have_tool("softhsm2")


def test_unknown_tool_is_an_error():
    with pytest.raises(KeyError):
        requires_tool("no-such-tool")


def _pytest(nodeid: str, ci: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["HSMTLS_TESTS_WITHOUT"] = "softhsm2,micropython"
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", nodeid],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


@pytest.mark.parametrize("nodeid", [
    "tests/hsm/test_token.py::test_uri_round_trip_and_pin_value_refused",  # the module's requires_softhsm mark
    "tests/hsm/test_token.py::test_list_shows_uris_and_key_protection",  # the token_env fixture
    "tests/firmware/test_p256_micropython.py",  # requires_micropython, run_mp
])
def test_the_suites_skip_locally_and_fail_under_ci(nodeid):
    local = _pytest(nodeid, ci=False)
    assert local.returncode == 0 and "skipped" in local.stdout and "passed" not in local.stdout, local.stdout
    ci = _pytest(nodeid, ci=True)
    assert ci.returncode == 1 and "not installed" in ci.stdout and "CI must run this suite" in ci.stdout, ci.stdout
    assert "skipped" not in ci.stdout.splitlines()[-1], ci.stdout
