"""The benchmarks still run (figures are not asserted: they are measured, not tested),
and put no PIN on a command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from softhsm_support import requires_softhsm

pytestmark = requires_softhsm


def test_openssl_engine_argv_has_no_pin(tmp_path):
    # argv is public (ps, /proc/PID/cmdline): the bench's libp11 server gets the PIN
    # from the URI's pin-source, a 0600 file. Built in a child: the setup makes its own
    # SoftHSM2 store, which a process picks once.
    script = ("import json, sys\nfrom pathlib import Path\n"
              "from hsmtls.bench import BENCH_PIN, BenchSetup, openssl_engine_server_argv\n"
              "s = BenchSetup(Path(sys.argv[1]))\n"
              "print(json.dumps([BENCH_PIN, str(s.pin_file), openssl_engine_server_argv(s, 4433)]))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "HSMTLS_PIN")}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    pin, pin_file, argv = json.loads(proc.stdout)
    assert not any(pin in arg or "pin-value" in arg for arg in argv), argv
    assert any(arg.endswith(f"?pin-source=file:{pin_file}") for arg in argv), argv
    assert Path(pin_file).read_text() == pin and (Path(pin_file).stat().st_mode & 0o777) == 0o600


@pytest.mark.slow
def test_bench_server_runs_and_reports_ratios():
    proc = subprocess.run([sys.executable, "-m", "hsmtls", "bench", "server", "--duration", "0.5",
                           "--concurrency", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(a)/(d) throughput: c=1:" in proc.stdout
    assert "| (a) hsmtls, token key, RSA kx |" in proc.stdout


@pytest.mark.slow
def test_bench_premaster_runs():
    proc = subprocess.run([sys.executable, "-m", "hsmtls", "bench", "premaster", "--rounds", "10"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CKM_RSA_X_509+depad" in proc.stdout and "CKM_RSA_PKCS" in proc.stdout
    assert "TokenKey.decrypt_premaster" in proc.stdout and "file key, raw RSA in Python" in proc.stdout
