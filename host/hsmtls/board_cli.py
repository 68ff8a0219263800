"""`hsmtls board ...` and `hsmtls bridge`: the emulated board, provisioning, the bridge."""

from __future__ import annotations

import hashlib
import sys
import time

import click


def _fail(msg: str) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(1)


def _target(target: str) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter("expected HOST:PORT", param_hint="--to")
    return host.strip("[]"), int(port)


def _anchor_fingerprints(path: str) -> list[str]:
    from tlscore import x509

    with open(path, "rb") as f:
        return [hashlib.sha256(d).hexdigest() for d in x509.pem_to_der_list(f.read())]


@click.group()
def board() -> None:
    """The MicroPython board: emulate it, provision it, run a handshake from it."""


@board.command()
@click.option("--heap", default="256k", show_default=True, help="MicroPython heap (-X heapsize), e.g. 96k.")
@click.option("--flash", "flash_dir", type=click.Path(file_okay=False), help="Directory used as the board's flash (default: a temporary one).")
@click.option("--ca", type=click.Path(exists=True, dir_okay=False), help="Provision this trust anchor (PEM) first.")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="Provision the board's certificate (PEM).")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="Provision the board's RSA key (PEM).")
def emulate(heap, flash_dir, ca, cert, key) -> None:
    """Run firmware/main.py under the MicroPython unix port on a pty; print its path."""
    from .board.emulator import EmulatedBoard
    from .board.flash import provision

    try:
        b = EmulatedBoard(flash_dir, heap=heap)
    except (RuntimeError, ValueError) as e:
        _fail(str(e))
    if ca:
        provision(b.flash_dir, ca, cert, key)
    with b:
        click.echo(b.tty)
        sys.stdout.flush()
        try:
            while b.alive:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    if not b.alive and b.stderr:
        click.echo(b.stderr.decode("utf-8", "replace"), err=True)


@board.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--ca", required=True, type=click.Path(exists=True, dir_okay=False), help="Trust anchor (PEM).")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="Board certificate (PEM).")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="Board RSA key (PEM); stored as CRT integers.")
def provision(directory, ca, cert, key) -> None:
    """Write the board's flash files to DIRECTORY (copy them with `mpremote cp DIRECTORY/* :`)."""
    from .board.flash import provision as do_provision

    try:
        d = do_provision(directory, ca, cert, key)
    except (OSError, ValueError) as e:
        _fail(str(e))
    click.echo(f"board files in {d}")


@board.command()
@click.option("--port", required=True, help="Serial port of the board (or the emulator's tty).")
@click.option("--to", "target", required=True, help="TLS server HOST:PORT.")
@click.option("--ca", type=click.Path(exists=True, dir_okay=False), help="Check that the board's stored trust anchor is this CA.")
@click.option("--client-cert", is_flag=True, help="Authenticate with the board's certificate and key.")
@click.option("--server-name", help="Name the board verifies (default: the host of --to).")
@click.option("--cipher", "ciphers", multiple=True, help="Offer only this suite (IANA name); repeatable.")
@click.option("--renegotiate", is_flag=True, help="Renegotiate once from the board after the handshake.")
@click.option("--send", "send_text", help="Text to send after the handshake; waits for as many bytes back.")
@click.option("--mfl", type=click.Choice(["512", "1024", "2048", "4096"]), help="Offer max_fragment_length (RFC 6066).")
@click.option("--timeout", default=60.0, show_default=True, type=float)
def handshake(port, target, ca, client_cert, server_name, ciphers, renegotiate, send_text, mfl, timeout) -> None:
    """Drive one TLS handshake from the board and print the board's result."""
    from .board.bridge import BoardFailure, format_result, handshake_once
    from .board.hostlink import LinkError

    host, tcp_port = _target(target)
    opts: dict = {"server_name": server_name or host, "client_auth": client_cert, "renegotiate": renegotiate}
    if ciphers:
        opts["suites"] = list(ciphers)
    if send_text:
        opts["send"] = send_text.replace("\\n", "\n")
    if mfl:
        opts["mfl"] = int(mfl)
    if ca:
        fps = _anchor_fingerprints(ca)
        if not fps:
            _fail(f"no certificate in {ca}")
        opts["anchor_sha256"] = fps[0]
    try:
        r = handshake_once(port, (host, tcp_port), opts, log=lambda s: click.echo(s, err=True), timeout=timeout)
    except (LinkError, BoardFailure) as e:
        _fail(str(e))
    for line in format_result(r):
        click.echo(line)
    if not r.get("ok"):
        sys.exit(1)


@click.command()
@click.option("--port", required=True, help="Serial port of the board (or the emulator's tty).")
@click.option("--to", "target", required=True, help="TLS server HOST:PORT the board's sessions go to.")
def bridge(port, target) -> None:
    """Carry the board's TLS records to a TCP server and back, until interrupted."""
    from .board.bridge import Bridge, format_result
    from .board.hostlink import HostLink, LinkError

    try:
        with HostLink(port) as link:
            info = link.connect()
            click.echo(f"board: {info.get('board')} {info.get('impl')} heap {info.get('heap')}")
            b = Bridge(link, _target(target), log=click.echo)
            b.serve(on_result=lambda r: click.echo("\n".join(format_result(r))))
    except LinkError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        pass


@board.command()
@click.option("-n", "count", default=10, show_default=True, help="Handshakes per client.")
@click.option("--client-auth", is_flag=True, help="With a client certificate (CertificateVerify on the board).")
def bench(count, client_auth) -> None:
    """Benchmark: our firmware vs MicroPython's tls (mbedTLS); smallest heap (benchmarks/bench_board.py)."""
    import importlib.util

    from .board import FIRMWARE

    path = FIRMWARE.parent / "benchmarks" / "bench_board.py"
    spec = importlib.util.spec_from_file_location("bench_board", path)
    if spec is None or spec.loader is None or not path.exists():
        _fail(f"{path} not found (the benchmark runs from a source checkout)")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.run(count, client_auth, echo=click.echo)
