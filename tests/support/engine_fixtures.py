"""Fixtures for engine tests (a throwaway PKI, configs and keys), shared by tests/unit and
tests/fuzz through their conftest.py."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from hsmtls import devpki
from hsmtls.keys import FileKey
from hsmtls.tlsconfig import client_config, server_config


class EnginePKI(devpki.DevPKI):
    """DevPKI plus the bad certificates engine tests need."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        from cryptography.hazmat.primitives import serialization
        from cryptography.x509 import load_pem_x509_certificate

        d = self.dir
        ca = load_pem_x509_certificate(self.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), None)
        server_pub = serialization.load_pem_private_key(self.server_key.read_bytes(), None).public_key()
        client_pub = serialization.load_pem_private_key(self.client_key.read_bytes(), None).public_key()
        now = datetime.datetime.now(datetime.timezone.utc)
        day = datetime.timedelta(days=1)
        self.server_expired = devpki.write_cert(
            d / "server_expired.pem",
            devpki.issue(ca, ca_key, server_pub, "localhost", "server", dns=("localhost",),
                         not_before=now - 30 * day, not_after=now - day),
        )
        self.server_wrong_host = devpki.write_cert(
            d / "server_wrong_host.pem",
            devpki.issue(ca, ca_key, server_pub, "wrong.example", "server", dns=("wrong.example",)),
        )
        other_key = devpki.new_key()
        other = devpki.make_ca(other_key, "hsmtls demo CA")  # same name, different key
        self.other_ca_cert = devpki.write_cert(d / "other_ca.pem", other)
        self.server_other_ca = devpki.write_cert(
            d / "server_other_ca.pem",
            devpki.issue(other, other_key, server_pub, "localhost", "server", dns=("localhost",)),
        )
        self.client_other_ca = devpki.write_cert(
            d / "client_other_ca.pem",
            devpki.issue(other, other_key, client_pub, "intruder", "client"),
        )


@pytest.fixture(scope="session")
def epki(tmp_path_factory) -> EnginePKI:
    return EnginePKI(tmp_path_factory.mktemp("engine-pki"))


@pytest.fixture(scope="session")
def server_key(epki) -> FileKey:
    return FileKey(str(epki.server_key))


@pytest.fixture(scope="session")
def client_key(epki) -> FileKey:
    return FileKey(str(epki.client_key))


@pytest.fixture(scope="session")
def client_ec_key(epki) -> FileKey:
    return FileKey(str(epki.client_ec_key), signing_only=True)


@pytest.fixture
def make_configs(epki):
    def make(suite=None, client_auth="none", client_cert=None, server_cert=None, ca=None, name="localhost"):
        ciphers = [suite] if suite else None
        sc = server_config(str(server_cert or epki.server_cert),
                           str(epki.ca_cert) if client_auth != "none" else None,
                           client_auth, ciphers)
        cc = client_config(str(ca or epki.ca_cert), name,
                           str(client_cert) if client_cert else None, ciphers)
        return cc, sc

    return make
