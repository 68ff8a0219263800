"""The board's TLS sessions: `hsmtls board handshake`, `board autorun`, `board bench`
and `hsmtls bridge`; the `board` group (board.py) takes the first three in
hsmtls/cli/__init__.py."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hsmtls.cli.board import _anchor_fingerprints
from hsmtls.cli.common import fail, host_port


@click.command()
@click.option("--port", required=True, help="Serial port of the board (or the emulator's tty).")
@click.option("--to", "target", required=True, help="TLS server HOST:PORT.")
@click.option("--ca", type=click.Path(exists=True, dir_okay=False), help="Check that the board's stored trust anchor is this CA.")
@click.option("--client-cert", is_flag=True, help="Authenticate with the board's certificate and key.")
@click.option("--server-name", help="Name the board verifies (default: the host of --to).")
@click.option("--cipher", "ciphers", multiple=True, help="Offer only this suite (IANA name); repeatable.")
@click.option("--renegotiate", is_flag=True, help="Renegotiate once from the board after the handshake.")
@click.option("--send", "send_text", help="Text to send after the handshake; waits for as many bytes back.")
@click.option("--mfl", type=click.Choice(["512", "1024", "2048", "4096", "off"]),
              help="max_fragment_length (RFC 6066) the board offers [default: the board's, 2048]; off: none.")
@click.option("--timeout", default=60.0, show_default=True, type=float)
@click.option("--trace", "trace", is_flag=True, help="Print the handshake as the bridge saw it (steps, sizes, decoded plaintext messages) and the board's time per step.")
@click.option("--trace-out", type=click.Path(), help="Write that trace and the board's result as JSON.")
@click.option("--pcap", type=click.Path(), help="Write the TLS bytes crossing the bridge as FILE.pcapng (Wireshark).")
@click.option("--engine", type=click.Choice(["hsmtls", "mbedtls"]), default="hsmtls", show_default=True,
              help="The board's TLS client: ours, or the port's own tls module (mbedTLS) over the same link "
                   "(the handshake alone: no --cipher, --renegotiate, --send, --mfl).")
@click.option("--count", default=1, show_default=True, type=click.IntRange(min=1),
              help="Handshakes in a row, one connection each: the board offers its last session every time "
                   "(summary: how many resumed, times).")
@click.option("--no-resume", is_flag=True, help="The board neither offers nor keeps a session: full handshakes.")
def handshake(port, target, ca, client_cert, server_name, ciphers, renegotiate, send_text, mfl, timeout, trace, trace_out, pcap,
              engine, count, no_resume) -> None:
    """Drive one TLS handshake from the board and print the board's result."""
    from hsmtls.board.bridge import BoardFailure, format_result, handshake_once
    from hsmtls.board.hostlink import LinkError

    host, tcp_port = host_port(target, "--to")
    opts = _session_opts(server_name or host, client_cert, ciphers, renegotiate, send_text)
    if no_resume:
        opts["resume"] = False
    if engine != "hsmtls":
        opts["engine"] = engine
    if mfl:
        opts["mfl"] = 0 if mfl == "off" else int(mfl)
    if ca:
        fps = _anchor_fingerprints(ca)
        if not fps:
            fail(f"no certificate in {ca}")
        opts["anchor_sha256"] = fps[0]
    from hsmtls.board.sniff import RecordSniffer

    if count > 1:
        _handshakes_in_a_row(port, (host, tcp_port), opts, count, timeout)
        return
    sniffer = RecordSniffer() if (trace or trace_out) else None
    taps: list = [sniffer] if sniffer else []
    capture = _open_pcap(pcap, tcp_port)
    if capture is not None:
        taps.append(capture)
    try:
        r = handshake_once(port, (host, tcp_port), opts, log=lambda s: click.echo(s, err=True), timeout=timeout,
                           taps=taps)
    except (LinkError, BoardFailure) as e:
        fail(str(e))
    finally:
        if capture is not None:
            capture.close()
    for line in format_result(r):
        click.echo(line)
    if sniffer is not None:
        from hsmtls.demo import board_step_lines

        if trace:
            from rich.console import Console

            sniffer.render(Console(width=max(120, Console().width)), board_step_lines(r))
        if trace_out:
            import json

            Path(trace_out).write_text(json.dumps({"records": sniffer.rows, "board_result": r}, indent=2, default=str))
    if pcap:
        click.echo(f"capture: {pcap}" + ("" if tcp_port == 443 else f" (tshark: -d tcp.port=={tcp_port},tls)"))
    if not r.get("ok"):
        sys.exit(1)


def _handshakes_in_a_row(port: str, target: tuple[str, int], opts: dict, count: int, timeout: float) -> None:
    """`board handshake --count N`: N sessions over one link, each its own TCP connection."""
    import statistics

    from hsmtls.board.bridge import BoardFailure, Bridge
    from hsmtls.board.hostlink import HostLink, LinkError

    results = []
    try:
        with HostLink(port) as link:
            link.connect()
            bridge = Bridge(link, target, lambda s: click.echo(s, err=True))
            for _ in range(count):
                r = bridge.run_handshake(opts, timeout)
                results.append(r)
                if not r.get("ok"):
                    break
    except (LinkError, BoardFailure) as e:
        fail(str(e))
    ok = [r for r in results if r.get("ok")]
    resumed = [r for r in ok if r.get("resumed")]
    click.echo(f"handshakes: {len(ok)}/{count} ok")
    click.echo(f"resumed: {len(resumed)}/{count}")
    for label, rows in (("full", [r for r in ok if not r.get("resumed")]), ("resumed", resumed)):
        us = [r["handshake_us"] for r in rows if r.get("handshake_us") is not None]
        if us:
            click.echo(f"{label}: median {statistics.median(us) / 1000:.2f} ms ClientHello to Finished ({len(us)})")
    if len(ok) < count:
        click.echo(f"reason: {results[-1].get('reason')}")
        sys.exit(1)


def _session_opts(server_name: str, client_cert: bool, ciphers, renegotiate: bool, send_text: str | None) -> dict:
    """RUN's options from the flags `board handshake` and `board autorun` share (only
    those given: what the board is not told it takes as off)."""
    opts: dict = {"server_name": server_name}
    if client_cert:
        opts["client_auth"] = True
    if ciphers:
        opts["suites"] = list(ciphers)
    if renegotiate:
        opts["renegotiate"] = True
    if send_text:
        opts["send"] = send_text.replace("\\n", "\n")  # --send 'GET /\n': the escape typed on a shell
    return opts


def _open_pcap(pcap: str | None, tcp_port: int):
    """A PcapWriter for --pcap FILE (None without it); a clear error if it cannot be written."""
    if not pcap:
        return None
    from hsmtls.tracing.pcap import PcapWriter

    try:
        return PcapWriter(pcap, server_port=tcp_port)
    except OSError as e:
        fail(f"cannot write {pcap}: {e.strerror or e}")


@click.command()
@click.option("--port", required=True, help="Serial port of the board (or the emulator's tty).")
@click.option("--to", "target", required=True, help="TLS server HOST:PORT the board's sessions go to.")
@click.option("--pcap", type=click.Path(), help="Write what crosses the link as FILE.pcapng (Wireshark reads it as TLS).")
def bridge(port, target, pcap) -> None:
    """Carry the board's TLS records to a TCP server and back, until interrupted."""
    from hsmtls.board.bridge import Bridge, format_result
    from hsmtls.board.hostlink import HostLink, LinkError

    host, tcp_port = host_port(target, "--to")
    capture = _open_pcap(pcap, tcp_port)
    try:
        with HostLink(port) as link:
            info = link.connect()
            click.echo(f"board: {info.get('board')} {info.get('impl')} heap {info.get('heap')}")
            b = Bridge(link, (host, tcp_port), log=click.echo, taps=[capture] if capture else [])
            b.serve(on_result=lambda r: click.echo("\n".join(format_result(r))))
    except LinkError as e:
        fail(str(e))
    except KeyboardInterrupt:
        pass
    finally:
        if capture is not None:
            capture.close()


@click.command()
@click.option("--port", required=True, help="Serial port of the board (or the emulator's tty).")
@click.option("--server-name", help="Name the board connects to and verifies (its certificate's DNS name).")
@click.option("--client-cert", is_flag=True, help="Authenticate with the board's certificate and key.")
@click.option("--cipher", "ciphers", multiple=True, help="Offer only this suite (IANA name); repeatable.")
@click.option("--renegotiate", is_flag=True, help="Renegotiate once from the board after each handshake.")
@click.option("--send", "send_text", help="Text to send after each handshake (up to 128 bytes).")
@click.option("--every", "every_s", default=0, show_default=True, type=click.IntRange(min=0),
              help="Seconds from one session's start to the next; 0: one a boot.")
@click.option("--off", is_flag=True, help="No session of the board's own any more (removes autorun.json).")
def autorun(port, server_name, client_cert, ciphers, renegotiate, send_text, every_s, off) -> None:
    """The TLS session the board starts on its own, whenever a host bridges it.

    Kept on the board's flash (autorun.json) across resets. The board starts it once a
    host has connected and given it the time: `hsmtls bridge --port TTY --to HOST:PORT`
    then carries it and prints each result; `hsmtls board handshake` still runs its own.
    """
    from hsmtls.board.bridge import INLINE_SEND, BoardFailure, Bridge
    from hsmtls.board.hostlink import HostLink, LinkError

    opts: dict | None = None
    if not off:
        if not server_name:
            fail("--server-name is required (the name the board verifies), or --off")
        opts = _session_opts(server_name, client_cert, ciphers, renegotiate, send_text)
        opts["every_s"] = every_s
        if len(opts.get("send", "").encode()) > INLINE_SEND:
            fail(f"--send takes up to {INLINE_SEND} bytes here (the board keeps it in autorun.json)")
    try:
        with HostLink(port) as link:
            link.connect()
            kept = Bridge(link, ("127.0.0.1", 0)).set_autorun(opts)
    except (LinkError, BoardFailure) as e:
        fail(str(e))
    if kept is None:
        click.echo("autorun: off (the board starts sessions only on a host's RUN)")
        return
    when = f"every {kept['every_s']} s" if kept.get("every_s") else "once a boot"
    click.echo(f"autorun: the board starts a session to {kept['server_name']} {when} once a host bridges it:"
               f" hsmtls bridge --port {port} --to HOST:PORT")


@click.command()
@click.option("-n", "count", default=10, show_default=True, help="Handshakes per client.")
@click.option("--client-auth", is_flag=True, help="With a client certificate (CertificateVerify on the board).")
@click.option("--key-type", type=click.Choice(["rsa", "ec"]), default="rsa", show_default=True,
              help="The client key with --client-auth: RSA-2048 (CRT on the board) or ECDSA P-256.")
@click.option("--no-heap", is_flag=True, help="Skip the smallest-heap search.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the figures to this file.")
@click.option("--machine", type=click.Choice(["unix64", "unix32", "rv32"]),
              help="The emulated machine; unix32 (firmware frozen) reports the smallest heap of the plain, "
                   "ECDSA and RSA client-auth handshakes; rv32: on the emulated RISC-V MCU, in instructions, "
                   "both engines in the same image (benchmarks/bench_rv32.py). [default: $HSMTLS_MACHINE, else unix64]")
@click.option("--boards", type=click.IntRange(min=1),
              help="Instead: how a test suite's time falls with 1..N emulated boards, one a pytest-xdist worker "
                   "(the pytest plugin's example suite; benchmarks/bench_boards.py).")
@click.option("--network", is_flag=True,
              help="Instead: the board through ser2net (socket://, rfc2217://) against its pty: opening, a link round "
                   "trip, handshake_ms, a 4 KB echo; -n sessions each (benchmarks/bench_network.py).")
def bench(count, client_auth, key_type="rsa", no_heap=False, json_path=None, machine=None, boards=None,
          network=False) -> None:
    """Benchmark: our firmware vs MicroPython's tls (mbedTLS); smallest heap (benchmarks/bench_board.py)."""
    try:
        if boards or network:
            if network:
                rows = load_benchmark("bench_network.py").run(count, echo=click.echo)
            else:
                rows = load_benchmark("bench_boards.py").run(boards, echo=click.echo)
            if json_path:
                import json

                Path(json_path).write_text(json.dumps(rows, indent=2))
            return
        if machine == "rv32":
            mod = load_benchmark("bench_rv32.py")
            mod.run(count, client_auth, echo=click.echo, heap=not no_heap, json_path=json_path, key_type=key_type)
        else:
            mod = load_benchmark("bench_board.py")
            mod.run(count, client_auth, echo=click.echo, heap=not no_heap, json_path=json_path, key_type=key_type,
                    machine=machine)
    except RuntimeError as e:  # an image that cannot be built, a machine not emulated here
        fail(str(e))


def load_benchmark(filename: str):
    """A script of benchmarks/ as a module: the benchmarks run from a source checkout."""
    import importlib.util

    from hsmtls.board import FIRMWARE

    path = FIRMWARE.parent / "benchmarks" / filename
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None or not path.exists():
        fail(f"{path} not found (the benchmark runs from a source checkout)")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
