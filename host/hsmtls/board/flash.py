"""What goes on the board's flash: the trust anchor, its certificate and its RSA key.

The key is stored as the precomputed CRT integers the firmware signs with
(firmware/lib/boardkey.py), one ``name=hex`` line each, so the board never parses PEM
or ASN.1 private keys. For a real board copy the directory's files with
``mpremote cp DIR/* :``; the emulator runs in the directory itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

FILES = ("ca.pem", "client.pem", "client.key")


def key_lines(key: rsa.RSAPrivateKey) -> str:
    pn = key.private_numbers()
    pub = pn.public_numbers
    vals = {
        "n": pub.n, "e": pub.e, "d": pn.d, "p": pn.p, "q": pn.q,
        "dp": pn.dmp1, "dq": pn.dmq1, "qinv": pn.iqmp,
    }
    return "".join(f"{k}={v:x}\n" for k, v in vals.items())


def provision(
    directory: str | Path,
    ca: str | Path,
    cert: str | Path | None = None,
    key: str | Path | None = None,
) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ca, d / "ca.pem")
    if cert is not None:
        shutil.copyfile(cert, d / "client.pem")
    if key is not None:
        k = serialization.load_pem_private_key(Path(key).read_bytes(), None)
        if not isinstance(k, rsa.RSAPrivateKey):
            raise ValueError(f"{key}: the board signs with RSA only")
        (d / "client.key").write_text(key_lines(k))
        (d / "client.key").chmod(0o600)
    return d
