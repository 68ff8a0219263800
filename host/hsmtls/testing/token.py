"""A throwaway SoftHSM2 token for tests: a CA, a second ("rogue") CA and the server key
made in it, the certificates written as PEM files, and CRLs signed in it.

SoftHSM2 reads SOFTHSM2_CONF once, when the module is loaded into a process, so the
store is made and SOFTHSM2_CONF set (`softhsm_store()`, once a process) before
anything loads it; a process that loaded the module already keeps the store it has.
The user's own SoftHSM2 tokens are never touched. Under pytest-xdist the store and the
token are the run's, made by the first worker that needs them and used by all
(`shared_token()`, hsmtls.testing.shared).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from . import shared

PIN = "4321-test"
_store: Path | None = None


def softhsm_store() -> Path:
    """The process's throwaway SoftHSM2 store (made and put in SOFTHSM2_CONF at the
    first call; subprocesses inherit it): in a pytest-xdist worker, the run's."""
    global _store
    if _store is None:
        from hsmtls.hsm import token as T
        from hsmtls.hsm.provision import write_softhsm_conf

        run = shared.shared_dir()
        if T._LIBS and os.environ.get("SOFTHSM2_CONF"):  # loaded already: it reads no other store
            _store = Path(os.environ["SOFTHSM2_CONF"]).parent
        elif run is not None:
            with shared.locked(run):
                conf = run / "softhsm" / "softhsm2.conf"
                if not conf.exists():
                    write_softhsm_conf(run / "softhsm")
            _store = run / "softhsm"
            os.environ["SOFTHSM2_CONF"] = str(conf)
        else:
            _store = Path(tempfile.mkdtemp(prefix="hsmtls-softhsm-"))
            os.environ["SOFTHSM2_CONF"] = str(write_softhsm_conf(_store))
    return _store


def shared_token(directory: Path) -> ThrowawayToken:
    """The token for this process's tests: in a pytest-xdist worker the run's, made by
    the first worker to ask (in the run's directory) and opened by the others; else a
    new one in `directory`. A worker whose SoftHSM2 store is another (the module was
    loaded before the plugin chose the run's) makes its own."""
    run = shared.shared_dir()
    if run is None or softhsm_store() != run / "softhsm":
        return ThrowawayToken(directory)
    with shared.locked(run):
        made = run / "token" / "token.json"
        if made.exists():
            info = json.loads(made.read_text())
            return ThrowawayToken(run / "token", info["label"], info["pin"], make=False)
        (run / "token").mkdir(exist_ok=True)
        token = ThrowawayToken(run / "token")
        made.write_text(json.dumps({"label": token.label, "pin": token.pin}))
        return token


class ThrowawayToken:
    """A SoftHSM2 token labelled `label` with the keys "ca", "rogue-ca" and "server"
    (RSA-2048, made in the token); in `dir`: ca.pem, rogue-ca.pem, server.pem (CN=localhost,
    DNS:localhost, IP:127.0.0.1, signed by the token's CA), and for peers that cannot use
    a token key (openssl s_server): server-soft.pem and its key server-soft.key.

    `make=False` opens a token another process made with these files in `directory`."""

    KEYS = ("ca", "rogue-ca", "server")

    def __init__(self, directory: Path, label: str = "hsmtls-pytest", pin: str = PIN, make: bool = True) -> None:
        from hsmtls.hsm.keyops import TokenKey
        from hsmtls.hsm.provision import ca_init, init_token, issue_localhost_server, keygen

        softhsm_store()
        self.dir = Path(directory)
        self.label = label
        self.pin = pin
        self._crls = 0
        self.soft_server_key = self.dir / "server-soft.key"
        self.keys: dict[str, TokenKey] = {}
        if not make:
            for name in self.KEYS:
                self.keys[name] = TokenKey(self.uri(name), pin=pin, pool_size=2)
            self.ca_cert = x509.load_pem_x509_certificate((self.dir / "ca.pem").read_bytes())
            self.rogue_cert = x509.load_pem_x509_certificate((self.dir / "rogue-ca.pem").read_bytes())
            self.ca_pem, self.rogue_ca_pem = self.dir / "ca.pem", self.dir / "rogue-ca.pem"
            self.server_pem, self.soft_server_pem = self.dir / "server.pem", self.dir / "server-soft.pem"
            return
        token = init_token(label, pin, "so-" + pin)
        for name in self.KEYS:
            keygen(token, pin, name)
            self.keys[name] = TokenKey(self.uri(name), pin=pin, pool_size=2)
        self.ca_cert = ca_init(self.keys["ca"], "CN=hsmtls test CA,O=hsmtls", 30)
        self.rogue_cert = ca_init(self.keys["rogue-ca"], "CN=rogue CA,O=elsewhere", 30)
        self.ca_pem = self._write("ca.pem", self.ca_cert)
        self.rogue_ca_pem = self._write("rogue-ca.pem", self.rogue_cert)
        self.server_pem = self._write(
            "server.pem", issue_localhost_server(self.keys["ca"], self.ca_cert, self.keys["server"].public_key(), 30))
        soft = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.soft_server_key.write_bytes(soft.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self.soft_server_pem = self._write(
            "server-soft.pem", issue_localhost_server(self.keys["ca"], self.ca_cert, soft.public_key(), 30))

    def _write(self, name: str, cert: x509.Certificate) -> Path:
        path = self.dir / name
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    def uri(self, name: str) -> str:
        """The pkcs11: URI of a private key in the token ("ca", "rogue-ca", "server")."""
        return f"pkcs11:token={self.label};object={name};type=private"

    @property
    def env(self) -> dict[str, str]:
        """The environment for `hsmtls` subprocesses: this store, the PIN."""
        return dict(os.environ, HSMTLS_PIN=self.pin, SOFTHSM2_CONF=os.environ["SOFTHSM2_CONF"])

    def revoke(self, *serials: int, ca: str = "ca") -> Path:
        """A CRL of the CA listing `serials`, signed in the token; its path (for
        `hsmtls serve --crl`)."""
        from hsmtls.hsm.provision import crl_sign_in_token

        self._crls += 1
        path = self.dir / f"crl-{os.getpid()}-{self._crls}.pem"  # the directory may be the run's
        cert = self.ca_cert if ca == "ca" else self.rogue_cert
        path.write_bytes(crl_sign_in_token(self.keys[ca], cert, list(serials)).public_bytes(serialization.Encoding.PEM))
        return path

    def close(self) -> None:
        for k in self.keys.values():
            k.close()
