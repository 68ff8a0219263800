"""Build tlscore configurations from files named on the command line."""

from __future__ import annotations

from tlscore import suites, x509
from tlscore.config import TLSConfig


class ConfigError(Exception):
    """A file or setting given by the user is unusable; the message says which and why."""


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}") from None


def load_cert_chain(path: str) -> list[bytes]:
    ders = x509.pem_to_der_list(_read(path, "certificate file"))
    if not ders:
        raise ConfigError(f"no PEM certificate found in {path}")
    return ders


def load_anchors(path: str) -> list:
    anchors = [x509.parse_certificate(d) for d in load_cert_chain(path)]
    return anchors


def parse_ciphers(names: list[str] | tuple[str, ...] | None) -> list:
    if not names:
        return list(suites.ALL)
    out = []
    for n in names:
        for part in n.split(":"):
            s = suites.lookup(part.strip())
            if s is None:
                known = ", ".join(x.name for x in suites.ALL)
                raise ConfigError(f"unknown cipher suite {part!r}; known: {known}")
            out.append(s)
    return out


def server_config(
    cert: str,
    client_ca: str | None = None,
    verify_client: str | None = None,
    ciphers: list[str] | tuple[str, ...] | None = None,
) -> TLSConfig:
    mode = verify_client or ("require" if client_ca else "none")
    if mode != "none" and not client_ca:
        raise ConfigError("--verify-client needs --client-ca CA.pem to check client certificates")
    return TLSConfig(
        certificate_chain=load_cert_chain(cert),
        trust_anchors=load_anchors(client_ca) if client_ca else [],
        client_auth=mode,
        cipher_suites=parse_ciphers(ciphers),
    )


def client_config(
    ca: str | None,
    server_name: str | None,
    cert: str | None = None,
    ciphers: list[str] | tuple[str, ...] | None = None,
) -> TLSConfig:
    return TLSConfig(
        trust_anchors=load_anchors(ca) if ca else [],
        verify_peer=ca is not None,
        server_name=server_name,
        certificate_chain=load_cert_chain(cert) if cert else [],
        cipher_suites=parse_ciphers(ciphers),
    )
