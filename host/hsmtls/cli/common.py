"""What the `hsmtls` command groups share (main.py, token.py, board.py): how a command
fails, how it reads HOST:PORT, and the token options every key-using command takes."""

from __future__ import annotations

import sys
from typing import NoReturn

import click


def fail(msg: str) -> NoReturn:
    """End the command with `error: msg` on stderr and exit status 1: no traceback."""
    click.echo(f"error: {msg}", err=True)
    sys.exit(1)


def host_port(target: str, param_hint: str) -> tuple[str, int]:
    """HOST:PORT, an IPv6 host in brackets, as (host, port); a usage error names param_hint."""
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter("expected HOST:PORT", param_hint=param_hint)
    return host.strip("[]"), int(port)


# The token options of every command that uses a pkcs11: key (serve, connect, token ...,
# ca ..., board provision and the board admin commands). The PIN's order is read_pin's:
# $HSMTLS_PIN, then this file, then the key URI's pin-source, then a prompt.
module_option = click.option(
    "--module", help="PKCS#11 module (default: $HSMTLS_PKCS11_MODULE, else SoftHSM2).")
pin_file_option = click.option(
    "--pin-file", type=click.Path(dir_okay=False),
    help="File holding the token user PIN (unless $HSMTLS_PIN is set; else a prompt).")
