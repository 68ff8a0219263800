"""tests/hil/test_labgrid.py under the python that has labgrid, when this one has not
(labgrid's pyserial fork installs the same `serial` package as pyserial, so it may live
in a venv of its own: $HSMTLS_LABGRID_PYTHON names its python; .ci/run makes one). Every
test there must pass, none skip. Collected only without labgrid here (conftest.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_labgrid_tests_pass_under_the_python_that_has_labgrid():
    python = os.environ.get("HSMTLS_LABGRID_PYTHON")
    if not python:
        why = "labgrid is not installed here and $HSMTLS_LABGRID_PYTHON is not set (pip install labgrid)"
        if os.environ.get("CI"):
            pytest.fail(why + ": CI runs the labgrid tests (.ci/run makes their venv)")
        pytest.skip(why)
    out = subprocess.run([python, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--slow",
                          "-rs", "-q", str(HERE / "test_labgrid.py")], cwd=HERE.parents[1],
                         capture_output=True, text=True, timeout=560)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 passed" in out.stdout and "skipped" not in out.stdout, out.stdout
