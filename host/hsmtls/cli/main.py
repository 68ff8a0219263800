"""The `hsmtls` group and its own commands: serve, connect, demo (the command
groups board, bridge, token, ca and bench are added in hsmtls/cli/__init__.py)."""

from __future__ import annotations

import sys

import click

from hsmtls.cli.common import fail, host_port, module_option, pin_file_option
from hsmtls.keys import KeyError_, load_private_key
from hsmtls.tlsconfig import ConfigError, client_config
from tlscore.errors import TLSError


@click.group()
@click.version_option(package_name="hsmtls")
def main() -> None:
    """TLS 1.2 handshake tools: token-backed server, client, board bridge."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=4433, show_default=True, type=int, help="TCP port (0: any free port).")
@click.option("--cert", "certs", required=True, multiple=True, type=click.Path(), help="Server certificate chain (PEM). Repeatable with --key: the first pair is the default, the others are chosen by the client's server name (their subjectAltName DNS names).")
@click.option("--key", "key_specs", required=True, multiple=True, help="Private key: PEM file or pkcs11: URI (RFC 7512); one per --cert, in the same order.")
@click.option("--sni", "sni", multiple=True, metavar="NAME=CERT,KEY", help="Serve CERT with KEY to clients asking for NAME (exact, or *.domain for one label). Repeatable.")
@click.option("--sni-strict/--no-sni-strict", default=None, help="A server name with no certificate of its own gets a fatal unrecognized_name (default when several certificates are served), else the default certificate.")
@click.option("--client-ca", type=click.Path(), help="CA certificates that sign client certificates.")
@click.option(
    "--verify-client",
    type=click.Choice(["none", "optional", "require"]),
    help="Ask for a client certificate (default: require when --client-ca is given).",
)
@click.option("--app", type=click.Choice(["echo", "http"]), default="echo", show_default=True)
@click.option("--cipher", "ciphers", multiple=True, help="Cipher suite (IANA or OpenSSL name), in preference order; repeatable.")
@click.option("--renegotiate", is_flag=True, help="Renegotiate (HelloRequest) after a client's first data.")
@click.option("--client-auth-path", metavar="PATH", help="--app http: ask for a client certificate only for requests under PATH, by renegotiating (no CertificateRequest at first, even with --client-ca).")
@module_option
@pin_file_option
@click.option("--workers", type=int, default=None, help="Server processes sharing the port (default: one per core).")
@click.option("--trace", "trace", is_flag=True, help="Print each connection's handshake transcript (steps 1-11).")
@click.option("--trace-out", type=click.Path(), help="Write each connection's trace: FILE.json, FILE.svg or FILE.html (2nd connection: FILE-2.svg, ...).")
@click.option("--keylog", type=click.Path(), help="Append NSS key log lines (CLIENT_RANDOM) for Wireshark (default: $SSLKEYLOGFILE).")
@click.option("--crl", "crls", multiple=True, type=click.Path(), help="CRL of a client CA (PEM/DER, e.g. from `hsmtls ca crl`): revoked client certificates get certificate_revoked. Repeatable.")
@click.option("--session-cache", type=int, default=20000, show_default=True, help="Resumable sessions kept (by session ID, shared by the workers, sealed); 0: none.")
@click.option("--session-lifetime", type=int, default=7200, show_default=True, help="Seconds a session can be resumed for (cache and tickets).")
@click.option("--tickets", is_flag=True, help="Issue RFC 5077 session tickets, sealed by the token's ticket key (`hsmtls token keygen --ticket-key`; a key in memory for a file key).")
@click.option("--allow-sha1", is_flag=True, help="Accept SHA-1 in a client's CertificateVerify (refused by default: SHA-1 signatures can be forged by chosen-prefix collisions).")
def serve(host, port, certs, key_specs, sni, sni_strict, client_ca, verify_client, app, ciphers, renegotiate, client_auth_path, module, pin_file, workers, trace, trace_out, keylog, crls, session_cache, session_lifetime, tickets, allow_sha1) -> None:
    """Serve TLS 1.2: RSA key exchange and ECDHE_RSA, key in a file or a token."""
    from hsmtls.workers import ServeSettings, build_server, default_workers, run_workers

    if len(certs) != len(key_specs):
        fail(f"give one --key per --cert ({len(certs)} certificates, {len(key_specs)} keys)")
    cert, key_spec = certs[0], key_specs[0]
    sni_entries = [((), c, k) for c, k in zip(certs[1:], key_specs[1:])]
    for entry in sni:
        name, eq, rest = entry.partition("=")
        c, comma, k = rest.partition(",")
        if not (name and eq and c and comma and k):
            fail(f"--sni {entry!r}: expected NAME=CERT,KEY")
        sni_entries.append(((name,), c, k))

    settings = ServeSettings(host, port, cert, key_spec, client_ca, verify_client, app, tuple(ciphers),
                             renegotiate, module, pin_file, crls=tuple(crls), allow_sha1=allow_sha1,
                             session_cache=session_cache, tickets=tickets, session_lifetime=session_lifetime,
                             sni=tuple(sni_entries), sni_strict=sni_strict, client_auth_path=client_auth_path)
    n = workers if workers is not None else default_workers()
    if n < 1:
        fail("--workers must be at least 1")
    if session_cache < 0 or session_lifetime < 1:
        fail("--session-cache must be 0 or more and --session-lifetime at least 1 second")
    tracing = trace or trace_out is not None
    if tracing:
        if n > 1 and workers is not None:
            fail("--trace/--trace-out need one server process: use --workers 1")
        n = 1
        _check_trace_out(trace_out)
    if keylog:
        import os

        from hsmtls.tracing.keylog import ENV, KeyLog, KeyLogError

        try:
            KeyLog(keylog)  # fail now, naming --keylog, if it cannot be written
        except KeyLogError as e:
            fail(str(e))
        os.environ[ENV] = keylog  # worker processes inherit it
    try:
        token_keys = [k for k in (key_spec, *(e[2] for e in sni_entries)) if k.startswith("pkcs11:")]
        if token_keys:  # one PIN, read once, for the token keys (the workers get it)
            from hsmtls.hsm.token import TokenError, read_pin
            from hsmtls.hsm.uri import PKCS11URI, URIError

            try:
                settings.pin = read_pin(pin_file, PKCS11URI.parse(token_keys[0]))
            except (TokenError, URIError) as e:
                fail(str(e))
        server = build_server(settings, lambda s: click.echo(s))  # checks files, key and PIN once
    except (ConfigError, KeyError_, TLSError) as e:
        fail(str(e))
    note = getattr(server.key, "premaster_note", None)
    if note:
        click.echo(note)
    if tracing:
        _trace_server(server, trace, trace_out)
    if n > 1:
        close = getattr(server.key, "close", None)
        if close is not None:
            close()  # the workers open their own token sessions
        manager = None
        if session_cache:
            # one cache for all workers (a manager process holds it: sealed sessions only);
            # the in-memory sealing key, if one is used, is the same in every worker
            from hsmtls.sessions import shared_table

            manager, settings.table = shared_table(session_cache)
        if session_cache or tickets:
            from hsmtls.sessions import RamSealer

            sealer = RamSealer()  # its key and name, for every worker's RamSealer
            settings.ram_key = (sealer.key, sealer.name)
        try:
            rc = run_workers(settings, n, lambda s: click.echo(s, err=s.startswith("error")))
        finally:
            if manager is not None:
                manager.shutdown()
        sys.exit(rc)

    def ready(h: str, p: int) -> None:
        click.echo(f"listening on {h}:{p}")
        sys.stdout.flush()

    try:
        from hsmtls.server import run_loop

        run_loop(server.serve(host, port, ready))
    except OSError as e:
        fail(f"cannot listen on {host}:{port}: {e.strerror or e}")
    except KeyboardInterrupt:
        pass


def _check_trace_out(path: str | None) -> None:
    from hsmtls.tracing.trace import check_trace_out

    problem = check_trace_out(path) if path else None
    if problem:
        fail(problem)


def _trace_console():
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 120
    return console


def _write_trace(tr, path: str) -> None:
    try:
        tr.write(path)
    except (OSError, ValueError) as e:
        click.echo(f"error: cannot write trace {path}: {getattr(e, 'strerror', None) or e}; "
                   "pick a writable path for --trace-out", err=True)


def _trace_server(server, show: bool, trace_out: str | None) -> None:
    """serve --trace/--trace-out: a Trace per connection, shown/written as it ends."""
    import os

    from hsmtls.tracing.trace import TraceHub, chain_hooks

    count = 0

    def done(tr) -> None:
        nonlocal count
        count += 1
        if show:
            _trace_console().print()
            tr.render_terminal(_trace_console())
            sys.stdout.flush()
        if trace_out:
            root, ext = os.path.splitext(trace_out)
            _write_trace(tr, trace_out if count == 1 else f"{root}-{count}{ext}")

    hub = TraceHub(done, performer=getattr(server.key, "performer", "host"), title="hsmtls serve")
    server.config.trace = chain_hooks(server.config.trace, hub.hook)
    server.on_connection_end = hub.finish


def _reconnect(host, port, config, key, timeout, session, times: int, send_text) -> None:
    """`connect --resume/--reconnect N`: each connection offers the last one's session."""
    import copy
    import time

    from hsmtls.client import TLSClient

    resumed = 0
    start = time.perf_counter()
    for i in range(times):
        cfg = copy.copy(config)
        cfg.session = session
        client = TLSClient(host, port, cfg, key, timeout=timeout)
        try:
            hs = client.handshake()
            if send_text is not None:
                client.send(send_text.replace("\\n", "\n").encode())
                client.read(0.2)
        finally:
            client.close()
        resumed += hs.resumed
        session = hs.session
        if times <= 10:
            click.echo(f"reconnect {i + 1}: resumed: {'yes' if hs.resumed else 'no'} cipher: {hs.cipher_suite}")
    took = time.perf_counter() - start
    if times == 1:
        click.echo(f"resumed: {'yes' if resumed else 'no'}")
    else:
        click.echo(f"resumed: {resumed}/{times} ({times / took:.0f} connections/s)")


@main.command()
@click.argument("target")
@click.option("--ca", type=click.Path(), help="CA certificates to verify the server with (PEM).")
@click.option("--insecure", is_flag=True, help="Do not verify the server certificate (testing only).")
@click.option("--cert", type=click.Path(), help="Client certificate chain (PEM).")
@click.option("--key", "key_spec", help="Client private key: PEM file or pkcs11: URI (RFC 7512).")
@click.option("--cipher", "ciphers", multiple=True, help="Offer only this suite (IANA name); repeatable.")
@click.option("--servername", help="Name to verify and send as SNI (default: the host).")
@click.option("--allow-cn", is_flag=True, help="Accept a server certificate without subjectAltName whose CN is the name.")
@click.option("--renegotiate", is_flag=True, help="Renegotiate once after the handshake.")
@click.option("--resume", is_flag=True, help="Connect a second time, offering the first connection's session (ID or ticket).")
@click.option("--reconnect", type=int, default=0, help="Connect this many more times, each offering the session of the one before (implies --resume).")
@click.option("--send", "send_text", help="Text to send (\\n becomes a newline).")
@click.option("--until", "until_text", help="Stop reading once this text has arrived.")
@click.option("--idle-timeout", default=1.0, show_default=True, type=float, help="Stop reading after this long without data.")
@click.option("--timeout", default=10.0, show_default=True, type=float, help="Connect/handshake timeout.")
@module_option
@pin_file_option
@click.option("--trace", "trace", is_flag=True, help="Print the handshake transcript (steps 1-11) after the result.")
@click.option("--trace-out", type=click.Path(), help="Write the trace: FILE.json, FILE.svg (sequence diagram) or FILE.html.")
@click.option("--keylog", type=click.Path(), help="Append NSS key log lines (CLIENT_RANDOM) for Wireshark (default: $SSLKEYLOGFILE).")
@click.option("--crl", "crls", multiple=True, type=click.Path(), help="CRL of the server's CA: a revoked server certificate fails the handshake. Repeatable.")
def connect(target, ca, insecure, cert, key_spec, ciphers, servername, allow_cn, renegotiate, resume, reconnect, send_text, until_text, idle_timeout, timeout, module, pin_file, trace, trace_out, keylog, crls) -> None:
    """Connect to a TLS 1.2 server and report what was negotiated."""
    from hsmtls.client import TLSClient, TLSFailure

    host, port = host_port(target, "TARGET")
    _check_trace_out(trace_out)
    if not ca and not insecure:
        fail("give --ca CA.pem to verify the server (or --insecure to skip verification)")
    if bool(cert) != bool(key_spec):
        fail("--cert and --key go together")
    try:
        config = client_config(None if insecure else ca, servername or host, cert, ciphers, tuple(crls), allow_cn)
        key = load_private_key(key_spec, module, pin_file, signing_only=True) if key_spec else None
    except (ConfigError, KeyError_, TLSError) as e:
        fail(str(e))
    yn = {True: "yes", False: "no"}
    client = None
    tracer = None
    if trace or trace_out:
        from hsmtls.tracing.trace import Trace

        tracer = Trace(f"hsmtls connect {target}")
        if key is not None:
            tracer.performer(getattr(key, "performer", "host"), "client")
    try:
        client = TLSClient(host, port, config, key, timeout=timeout, keylog=keylog,
                           trace=tracer.hook if tracer else None)
        hs = client.handshake()
        if renegotiate:
            hs = client.renegotiate()
        received = b""
        if send_text is not None:
            client.send(send_text.replace("\\n", "\n").encode())
        if send_text is not None or until_text is not None:
            received = client.read(idle_timeout, until_text.encode() if until_text else None)
        click.echo(f"version: {hs.version}")
        click.echo(f"cipher: {hs.cipher_suite}")
        click.echo(f"extended_master_secret: {yn[hs.extended_master_secret]}")
        click.echo(f"secure_renegotiation: {yn[hs.secure_renegotiation]}")
        click.echo(f"encrypt_then_mac: {yn[hs.encrypt_then_mac]}")
        click.echo(f"peer: {hs.peer_subject or '-'}")
        click.echo(f"renegotiations: {client.conn.renegotiation_count}")
        click.echo(f"resumed: {yn[hs.resumed]}")
        if send_text is not None or until_text is not None:
            click.echo(f"received: {received.decode('utf-8', 'replace')}")
        again = reconnect if reconnect > 0 else (1 if resume else 0)
        if again:
            client.close()
            client = None
            _reconnect(host, port, config, key, timeout, hs.session, again, send_text)
    except TLSFailure as e:
        fail(str(e))
    finally:
        if client is not None:
            client.close()
        if tracer is not None and tracer.entries:  # nothing to show if we never connected
            if trace:
                tracer.render_terminal(_trace_console())
            if trace_out:
                _write_trace(tracer, trace_out)


@main.command()
@click.option("--board", default="emulator", show_default=True, help="Board (boards/*.toml); a real one needs --port.")
@click.option("--port", help="Serial port of a real board running the firmware.")
@click.option("--trace-out", help="Also write the server's trace as .json, .svg or .html.")
@click.option("--key-type", type=click.Choice(["ec", "rsa"]), default="ec", show_default=True,
              help="The key the board makes for itself: ECDSA P-256, or RSA-2048 (signed with CRT on the board).")
@click.option("--yes", is_flag=True, help="A real board: replace its identity without asking.")
@click.option("--machine", type=click.Choice(["unix64", "unix32", "rv32"]),
              help="The emulated board's machine: rv32 runs the demo on the emulated RISC-V MCU (QEMU; its image "
              "is built first, see `hsmtls board build`).  [default: $HSMTLS_MACHINE, else unix64]")
def demo(board: str, port: str | None, trace_out: str | None, key_type: str, yes: bool = False,
         machine: str | None = None) -> None:
    """Run the handshake end to end on this machine (throwaway token, nothing configured)."""
    from hsmtls.demo import run_demo

    if board != "emulator" and not yes:
        # the demo provisions the board from a throwaway CA: a real board's own trust
        # anchor, certificate and key (which never left it) are replaced for good
        what = (f"the demo replaces {board}'s trust anchor, certificate and private key on {port or 'its port'} "
                "with throwaway ones (hsmtls board provision gives it a real identity again)")
        if not sys.stdin.isatty():
            click.echo(f"error: {what}: pass --yes to go on", err=True)
            sys.exit(1)
        if not click.confirm(f"{what}. Go on?", default=False):
            sys.exit(1)
    if machine and board != "emulator":
        click.echo(f"error: --machine is the emulated board's; --board {board} is a real one", err=True)
        sys.exit(2)
    sys.exit(run_demo(click.echo, board=board, port=port, trace_out=trace_out, key_type=key_type, machine=machine))
