"""A throwaway SoftHSM2 token for the whole test session.

"""

from __future__ import annotations

import shutil

import pytest

from support.required_tools import require_tool
from support.softhsm import PIN, STORE, TokenEnv


def pytest_unconfigure(config):
    shutil.rmtree(STORE, ignore_errors=True)


@pytest.fixture(scope="session")
def token_env(tmp_path_factory) -> TokenEnv:
    """A token with server, client and CA keys and token-signed certificates."""
    require_tool("softhsm2")
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
