"""What the `hsmtls` command groups share (cli.py, token_cli.py, board_cli.py): how a
command fails, and how it reads HOST:PORT."""

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
