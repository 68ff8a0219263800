"""The benchmarks still run (figures are not asserted: they are measured, not tested)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from softhsm_support import requires_softhsm

pytestmark = [requires_softhsm, pytest.mark.slow]


def test_bench_server_runs_and_reports_ratios():
    proc = subprocess.run([sys.executable, "-m", "hsmtls", "bench", "server", "--duration", "0.5",
                           "--concurrency", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(a)/(d) throughput: c=1:" in proc.stdout
    assert "| (a) hsmtls, token key, RSA kx |" in proc.stdout


def test_bench_premaster_runs():
    proc = subprocess.run([sys.executable, "-m", "hsmtls", "bench", "premaster", "--rounds", "10"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CKM_RSA_X_509+depad" in proc.stdout and "CKM_RSA_PKCS" in proc.stdout
