"""The throwaway SoftHSM2 store for the test session, and helpers around the token.

SoftHSM2 reads SOFTHSM2_CONF once, when the module is loaded into a process, so the
private configuration is set at import time, before any test loads the module.
Subprocesses get the same environment. Imported by name from tests/hsm (two
conftest.py modules on the path would clash).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from support.required_tools import requires_tool, tool_path

MODULE = tool_path("softhsm2")
PIN = "4321-test"

if MODULE is not None:
    # the store the hsmtls pytest plugin's token lives in too (one a process)
    from hsmtls.testing.token import softhsm_store

    STORE = softhsm_store()
else:
    STORE = Path(tempfile.mkdtemp(prefix="hsmtls-softhsm-"))

requires_softhsm = requires_tool("softhsm2")  # skipped without SoftHSM2, failed under $CI


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
