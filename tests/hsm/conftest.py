"""A throwaway SoftHSM2 token for the whole test session.

SoftHSM2 reads SOFTHSM2_CONF once, when the module is loaded into a process, so the
private configuration is set here at import time, before any test loads the module.
Subprocesses get the same environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hsmtls.hsm.token import SOFTHSM_MODULES

MODULE = next((m for m in SOFTHSM_MODULES if Path(m).exists()), None)
PIN = "4321-test"
STORE = Path(tempfile.mkdtemp(prefix="hsmtls-softhsm-"))

if MODULE is not None:
    from hsmtls.hsm.provision import write_softhsm_conf

    os.environ["SOFTHSM2_CONF"] = str(write_softhsm_conf(STORE))

requires_softhsm = pytest.mark.skipif(MODULE is None, reason="SoftHSM2 not installed (apt install softhsm2)")


def pytest_unconfigure(config):
    shutil.rmtree(STORE, ignore_errors=True)


class TokenEnv:
    """The token, its PIN in the environment, and helpers to run the CLI against it."""

    label = "hsmtls-test"

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.env = dict(os.environ, HSMTLS_PIN=PIN, HSMTLS_TOKEN=self.label,
                        SOFTHSM2_CONF=os.environ["SOFTHSM2_CONF"])

    def uri(self, name: str, kind: str = "private") -> str:
        return f"pkcs11:token={self.label};object={name};type={kind}"

    def cli(self, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "hsmtls", *args], capture_output=True, text=True,
                              env=env or self.env, cwd=self.dir, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"hsmtls {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture(scope="session")
def token_env(tmp_path_factory) -> TokenEnv:
    """A token with server, client and CA keys and token-signed certificates."""
    if MODULE is None:
        pytest.skip("SoftHSM2 not installed (apt install softhsm2)")
    from hsmtls.hsm.provision import init_token

    t = TokenEnv(tmp_path_factory.mktemp("token"))
    init_token(t.label, PIN, "so-" + PIN)
    for name in ("server", "client", "ca"):
        t.cli("token", "keygen", "--object", name)
    t.cli("ca", "init", "--key", t.uri("ca"), "--subject", "CN=hsmtls token CA,O=hsmtls test", "--out", "ca.pem")
    t.cli("ca", "issue", "--ca-key", t.uri("ca"), "--ca-cert", "ca.pem", "--profile", "server",
          "--public-key", t.uri("server", "public"), "--subject", "CN=localhost",
          "--san", "DNS:localhost", "--san", "IP:127.0.0.1", "--days", "30", "--out", "server.pem")
    t.cli("ca", "issue", "--ca-key", t.uri("ca"), "--ca-cert", "ca.pem", "--profile", "client",
          "--public-key", t.uri("client", "public"), "--subject", "CN=token client",
          "--days", "30", "--out", "client.pem")
    return t
