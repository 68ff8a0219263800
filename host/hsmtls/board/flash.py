"""What goes on the board's flash: the trust anchor, its certificate and its key.

The key is stored as the integers the firmware signs with (firmware/lib/boardapp/key.py),
one ``name=hex`` line each: the CRT integers of an RSA key, or ``type=ec`` and d, x,
y of an ECDSA P-256 key, so the board never parses PEM or ASN.1 private keys. For a real board copy the directory's files with
``mpremote cp DIR/* :``; the emulator runs in the directory itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..keys import write_private_file

FILES = ("ca.pem", "client.pem", "client.key")


def key_lines(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        en = key.private_numbers()
        return f"type=ec\ncurve=secp256r1\nd={en.private_value:x}\nx={en.public_numbers.x:x}\ny={en.public_numbers.y:x}\n"
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
        if not (isinstance(k, rsa.RSAPrivateKey)
                or (isinstance(k, ec.EllipticCurvePrivateKey) and isinstance(k.curve, ec.SECP256R1))):
            raise ValueError(f"{key}: the board signs with RSA or ECDSA P-256 only")
        write_private_file(d / "client.key", key_lines(k).encode())
    return d
