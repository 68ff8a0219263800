"""The benchmarks still run (figures are not asserted: they are measured, not tested),
and put no PIN on a command line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support.required_tools import requires_tool
from support.softhsm import requires_softhsm

pytestmark = requires_softhsm


def test_openssl_engine_argv_has_no_pin(tmp_path):
    # argv is public (ps, /proc/PID/cmdline): the bench's libp11 server gets the PIN
    # from the URI's pin-source, a 0600 file. Built in a child: the setup makes its own
    # SoftHSM2 store, which a process picks once.
    script = ("import json, sys\nfrom pathlib import Path\n"
              "from hsmtls.bench.server import BENCH_PIN, BenchSetup, openssl_engine_server_argv\n"
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
    assert "workers: hsmtls " in proc.stdout and "÷ nginx PEM, c=1" in proc.stdout
    assert "| hsmtls, token key, RSA kx |" in proc.stdout and "| hsmtls, PEM key, ECDHE_RSA |" in proc.stdout
    # resumed handshakes: ours with tickets sealed in the token, nginx with its cache and tickets
    resumed = re.search(r"hsmtls, token key, ECDHE_RSA resumed\s+c=1\s.*resumed (\d+)/(\d+)", proc.stdout)
    assert resumed and int(resumed.group(2)) > 0 and int(resumed.group(1)) >= int(resumed.group(2)) - 1, proc.stdout
    assert "| nginx, PEM key, ECDHE_RSA resumed |" in proc.stdout


# the nginx cells alone, in a child (the setup makes its own SoftHSM2 store, which a
# process picks once): nginx with a PEM key, and through libp11, RSA key exchange
_NGINX_CELLS = """
import json, sys
from pathlib import Path
from hsmtls.bench import server as bench
from hsmtls.bench.nginx import nginx_path
d = Path(sys.argv[1])
s = bench.BenchSetup(d)
rows = [r for r in bench._nginx_rows(s, 2, nginx_path(), engine=True) if r.suite == "rsa"]
out = bench._run_rows(rows, [1], 1.0, s, d, "nginx", lambda line: None)
print(json.dumps({"results": out, "conf": (d / "nginx-pem-rsa" / "nginx.conf").read_text()}))
"""


@pytest.mark.slow
@requires_tool("nginx")
@requires_tool("libp11-engine")
def test_nginx_cells_run_with_our_workers_and_libp11_says_why_it_fails(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "HSMTLS_PIN")}
    proc = subprocess.run([sys.executable, "-c", _NGINX_CELLS, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert "worker_processes 2;" in data["conf"].splitlines()
    pem = data["results"]["nginx-pem-rsa"]
    assert pem["failed"] is None and pem["cells"]["1"]["handshakes_per_s"] > 0, pem
    # libp11 (0.4.12) cannot do the RSA key exchange's decryption: the row says why, not a crash
    libp11 = data["results"]["nginx-libp11-rsa"]
    if libp11["failed"] is None:  # a libp11 that learnt it
        assert libp11["cells"]["1"]["handshakes"] > 0, libp11
    else:
        assert "padding mode" in libp11["failed"], libp11


@pytest.mark.slow
def test_bench_premaster_runs():
    proc = subprocess.run([sys.executable, "-m", "hsmtls", "bench", "premaster", "--rounds", "10"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CKM_RSA_X_509+depad" in proc.stdout and "CKM_RSA_PKCS" in proc.stdout
    assert "TokenKey.decrypt_premaster" in proc.stdout and "file key, raw RSA in Python" in proc.stdout
