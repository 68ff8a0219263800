"""`hsmtls bench ...`: benchmarks (figures, not pass/fail)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def bench() -> None:
    """Benchmarks; each reports ratios against a peer measured in the same run."""


@bench.command("server")
@click.option("--concurrency", default="1,8,64", show_default=True, help="Comma-separated client counts.")
@click.option("--duration", default=5.0, show_default=True, type=float, help="Seconds per measurement.")
@click.option("--workers", type=int, default=None, help="Our server's worker processes (default: one per core).")
@click.option("--workers-sweep", help="Comma-separated worker counts: our server alone at each (sizing).")
@click.option("--json-out", type=click.Path(), help="Also write the raw figures as JSON.")
def bench_server_cmd(concurrency, duration, workers, workers_sweep, json_out) -> None:
    """Handshakes/s and p50/p99 latency: ours (PEM and token key) vs nginx and openssl s_server."""
    from hsmtls.bench.server import (
        bench_server,
        bench_workers_sweep,
        print_server_table,
        print_sweep_table,
    )

    concs = [int(c) for c in concurrency.split(",") if c.strip()]
    click.echo(f"bench server: {duration:g} s per cell, concurrency {concs}, load generator: hsmtls.bench.loadgen (OpenSSL)")
    if workers_sweep:
        data = bench_workers_sweep([int(n) for n in workers_sweep.split(",") if n.strip()], concs, duration,
                                   click.echo)
        print_sweep_table(data, click.echo)
    else:
        data = bench_server(concs, duration, workers, click.echo)
        print_server_table(data, click.echo)
    if json_out:
        Path(json_out).write_text(json.dumps(data, indent=2))


@bench.command("premaster")
@click.option("--rounds", default=400, show_default=True, type=int)
def bench_premaster_cmd(rounds) -> None:
    """Premaster decryption, good vs bad padding: token mechanisms, TokenKey, PEM file key."""
    from hsmtls.bench.server import bench_premaster

    click.echo(f"bench premaster: RSA-2048, {rounds} rounds each, medians")
    bench_premaster(rounds, click.echo)


@bench.command("heap32")
@click.option("--wasm-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="An unpacked @micropython/micropython-webassembly-pyscript (default: npm pack it once).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the figures to this file.")
def bench_heap32_cmd(wasm_dir, json_path) -> None:
    """The firmware's import cost on a 32-bit MicroPython (webassembly port) vs the 64-bit emulator."""
    from hsmtls.cli.board_sessions import load_benchmark

    mod = load_benchmark("heap_32bit.py")
    try:
        mod.run(wasm_dir, echo=click.echo, json_path=json_path)
    except RuntimeError as e:
        raise click.ClickException(str(e)) from None


@bench.command("lucky13")
@click.option("--interpreter", type=click.Choice(["cpython", "micropython", "both"]), default="both",
              show_default=True)
@click.option("--mac", type=click.Choice(["sha1", "sha256", "both"]), default="both", show_default=True)
@click.option("--samples", type=int, default=None,
              help="Rounds (default: on CPython 48000, and more, up to 96000, until the control's leak is "
                   "significant; 4000 on MicroPython).")
@click.option("--batch", type=int, default=None,
              help="Decryptions timed together per sample (default: 1 on CPython, 8 on MicroPython).")
@click.option("--json-out", type=click.Path(), help="Also write the figures as JSON.")
def bench_lucky13_cmd(interpreter, mac, samples, batch, json_out) -> None:
    """CBC MAC-then-encrypt: good padding + bad MAC vs bad padding timing (Lucky13), with the pre-fix check as control."""
    from hsmtls.bench.lucky13 import bench_lucky13

    interps = ["cpython", "micropython"] if interpreter == "both" else [interpreter]
    macs = ["sha1", "sha256"] if mac == "both" else [mac]
    try:
        data = bench_lucky13(interps, samples, macs, batch, click.echo)
    except RuntimeError as e:
        raise click.ClickException(str(e)) from None
    if json_out:
        Path(json_out).write_text(json.dumps(data, indent=2))
    if any(d["overlap"] is False for d in data.values()):
        raise SystemExit(1)
