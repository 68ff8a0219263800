"""`hsmtls demo`: the whole system on this machine, with nothing configured.

A throwaway SoftHSM2 token (its own configuration directory, set in this process's
environment before the PKCS#11 module loads) gets the CA and server keys; the server
certificate is signed in the token; a token-backed server starts; the emulated board
(or a real one: --board NAME --port P) starts, makes its own key pair, sends a CSR over
the link and gets a certificate signed by the token's CA; then the board runs a
mutually authenticated handshake and a renegotiation through the bridge. Each numbered
step of the classic handshake (1..11) is printed as the server sees it happen, with who
did it (board, host, token) and how long it took; the board's own compute time per
step comes from its RESULT. Everything is removed afterwards. Exit status 1 if any
step fails.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from .tracing.steps import STEPS
from .tracing.trace import Trace

WHO = {"client": "board", "server": "host", "server_key": "token", "client_key": "board"}

# The board's RESULT names its compute per handshake message it handled (and the
# ClientHello it built, the signature it made); the classic step each belongs to.
BOARD_STEPS = {
    "ClientHello": (1, "builds ClientHello"),
    "HelloRequest": (11, "handles HelloRequest"),
    "ServerHello": (2, "reads ServerHello"),
    "Certificate": (3, "verifies the server's certificate chain"),
    "CertificateRequest": (2, "reads CertificateRequest"),
    "prepare ClientKeyExchange": (4, "encrypts a premaster to the key this server had (while it answers)"),
    "ServerHelloDone": (4, "encrypts the premaster, derives keys, sends its flight"),
    "prepare CertificateVerify": (5, "makes its signature's nonce while it waits (R = kG, k^-1)"),
    "sign CertificateVerify": (5, "signs CertificateVerify with its own key"),
    "ChangeCipherSpec": (9, "reads ChangeCipherSpec"),
    "Finished": (9, "verifies the server's Finished"),
}


class DemoFailure(Exception):
    pass


class Demo:
    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.failures = 0
        self.t0 = time.perf_counter()

    def stage(self, who: str, text: str, t: float) -> None:
        self.echo(f"[{who:<5}] {text} ({(time.perf_counter() - t) * 1000:.0f} ms)")


class LiveTrace:
    """The server's Trace, printing each entry as it arrives (one line per step)."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.trace = Trace("hsmtls demo").performer("token", "server").performer("board", "client")
        self.echo = echo
        self._shown = 0
        self._round = 0
        self._last_t = 0.0

    def hook(self, conn: Any, event: str, what: Any, msg: Any = None, size: int = 0) -> None:
        self.trace.hook(conn, event, what, msg, size)
        entries = self.trace.entries
        while self._shown < len(entries):
            e = entries[self._shown]
            self._shown += 1
            self._print(e)

    def _print(self, e: dict) -> None:
        if e["round"] != self._round:
            self._round = e["round"]
            title = "handshake" if self._round == 1 else f"renegotiation #{self._round - 1}"
            self.echo(f"  --- {title} ---")
        step = f"{e['step']:>2}" if e["step"] else " -"
        kind = e["kind"]
        if kind == "message":
            who = f"{WHO.get(e['from'], e['from'])} -> {WHO.get(e['to'], e['to'])}"
            what = f"{e['name']} ({e['size']} bytes)"
            ms = f"+{(e['t'] - self._last_t) * 1000:.1f} ms"
        elif kind == "key_op":
            return  # the result line carries the duration
        elif kind == "key_result":
            who = WHO.get(e["from"], e["from"])
            what = f"{'decrypts the premaster' if e['fields'].get('operation') == 'decrypt' else 'signs'} (PKCS#11)"
            ms = f"{e['fields'].get('duration_ms', 0):.1f} ms"
        elif kind == "milestone":
            who = WHO.get(e["side"], e["side"])
            what = e["name"] + (f": {e['summary']}" if e["summary"] else "")
            ms = f"+{(e['t'] - self._last_t) * 1000:.1f} ms"
        elif kind == "round":
            who, what, ms = "board -> host", "renegotiation: " + e["summary"], ""
        else:
            who = WHO.get(e["side"], e["side"])
            what = f"{e['name']} {e['summary']}".strip()
            ms = ""
        self._last_t = e["t"]
        self.echo(f"  step {step}  {who:<15} {what:<70} {ms}")


def board_step_lines(result: dict) -> list[str]:
    """The board's compute time per classic step, per round, from its RESULT."""
    lines: list[str] = []
    rnd = 0
    finished = False
    for name, ms in result.get("steps") or []:
        # a round ends with the server's Finished: what the board times next (the
        # nonce it makes while waiting, a HelloRequest, the ServerHello; the
        # renegotiation's ClientHello is built inside the previous step) is the next
        if rnd == 0 or finished:
            rnd += 1
            lines.append(f"  board, {'handshake' if rnd == 1 else f'renegotiation #{rnd - 1} (step 11)'}:")
        finished = name == "Finished"
        step, what = BOARD_STEPS.get(name, (0, name))
        label = f"{step:>2}" if step else " -"
        lines.append(f"    step {label}  board  {what:<58} {ms} ms")
    return lines


@contextmanager
def throwaway_token(directory: Path) -> Iterator[dict]:
    """A SoftHSM2 token in `directory` with CA and server keys; yields names and PIN."""
    from .hsm.provision import write_softhsm_conf

    os.environ["SOFTHSM2_CONF"] = str(write_softhsm_conf(directory / "softhsm"))
    from .hsm import token as token_mod

    if token_mod._LIBS:
        raise DemoFailure("a PKCS#11 module is already loaded in this process; run `hsmtls demo` on its own")
    yield {"label": "hsmtls-demo", "pin": secrets.token_hex(8), "so_pin": secrets.token_hex(8)}


MACHINE_TEXT = {
    "unix64": "MicroPython unix port",
    "unix32": "MicroPython 1.28 unix port, 32-bit, firmware frozen",
    "rv32": "MicroPython 1.28 on QEMU's RISC-V virt MCU, rv32imac, firmware frozen",
}


def run_demo(echo: Callable[[str], None] = print, board: str = "emulator", port: str | None = None,
             trace_out: str | None = None, heap: str = "256k", key_type: str = "ec", machine: str | None = None) -> int:
    d = Demo(echo)
    try:
        with tempfile.TemporaryDirectory(prefix="hsmtls-demo-") as tmp:
            _run(d, Path(tmp), board, port, trace_out, heap, key_type, machine)
    except DemoFailure as e:
        echo(f"FAILED: {e}")
        d.failures += 1
    total = time.perf_counter() - d.t0
    echo(f"demo: {'all steps passed' if not d.failures else f'{d.failures} step(s) FAILED'} in {total:.1f} s")
    return 1 if d.failures else 0


def _run(d: Demo, tmp: Path, board: str, port: str | None, trace_out: str | None, heap: str, key_type: str,
         machine: str | None = None) -> None:
    from cryptography.hazmat.primitives import serialization

    from .board.boards import get_board
    from .board.bridge import BoardFailure, Bridge, format_result
    from .board.emulator import EmulatedBoard, can_precompile
    from .board.hostlink import HostLink, LinkError
    from .board.provisioning import ProvisionError, provision_board
    from .hsm.keyops import TokenKey
    from .hsm.provision import ca_init, init_token, issue_localhost_server, keygen
    from .hsm.token import TokenError
    from .server import BackgroundServer, TLSServer
    from .tlsconfig import server_config

    echo = d.echo
    bdef = get_board(board)
    if not bdef.emulated and not port:
        raise DemoFailure(f"--board {board} needs --port (the board's serial port; see `hsmtls board list`)")
    with ExitStack() as stack:
        # --- the token --------------------------------------------------------------
        t = time.perf_counter()
        tok = stack.enter_context(throwaway_token(tmp))
        try:
            token = init_token(tok["label"], tok["pin"], tok["so_pin"])
            d.stage("token", f"throwaway SoftHSM2 token {tok['label']!r} in {tmp / 'softhsm'}", t)
            for name in ("ca", "server"):
                t = time.perf_counter()
                keygen(token, tok["pin"], name, 2048)
                d.stage("token", f"RSA-2048 key {name!r} generated inside the token (not extractable)", t)
            uri = f"pkcs11:token={tok['label']};object=%s;type=private"
            t = time.perf_counter()
            ca_key = TokenKey(uri % "ca", pin=tok["pin"], pool_size=1, implicit_rejection=False)
            stack.callback(ca_key.close)
            ca_cert = ca_init(ca_key, "CN=hsmtls demo CA,O=hsmtls", days=1)
            ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
            (tmp / "ca.pem").write_bytes(ca_pem)
            d.stage("token", "CA certificate self-signed in the token", t)
            t = time.perf_counter()
            server_key = TokenKey(uri % "server", pin=tok["pin"], pool_size=2)
            stack.callback(server_key.close)
            cert = issue_localhost_server(ca_key, ca_cert, server_key.public_key(), 1)
            (tmp / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            d.stage("token", "server certificate CN=localhost signed by the CA key in the token", t)
        except TokenError as e:
            raise DemoFailure(f"token: {e}") from None

        # --- the server -------------------------------------------------------------
        t = time.perf_counter()
        live = LiveTrace(echo)
        config = server_config(str(tmp / "server.pem"), str(tmp / "ca.pem"), "require")
        config.trace = live.hook
        log: list[str] = []
        server = TLSServer(config, server_key, out=log.append)
        bg = stack.enter_context(BackgroundServer(server))
        d.stage("host", f"server on 127.0.0.1:{bg.port}, key: {server_key.description}, client certificate required", t)

        # --- the board --------------------------------------------------------------
        t = time.perf_counter()
        if bdef.emulated:
            try:
                emu = stack.enter_context(EmulatedBoard(tmp / "board-flash", heap=heap, mpy=can_precompile(),
                                                        machine=machine))
            except RuntimeError as e:  # no image for the machine, no QEMU: what to install
                raise DemoFailure(f"board: {e}") from None
            port = emu.tty
            what = MACHINE_TEXT.get(emu.machine, emu.machine)
            d.stage("board", f"emulated board ({what}, heap {heap}) on {port}", t)
        assert port is not None
        t = time.perf_counter()
        try:
            link = stack.enter_context(HostLink(port, bdef.baud))
            info = link.connect(10.0)
        except LinkError as e:
            raise DemoFailure(f"board: {e}") from None
        d.stage("board", f"link up: {info.get('board')} {info.get('impl')}, heap {info.get('heap')} bytes", t)
        t = time.perf_counter()
        if key_type == "ec":
            echo("[board] generating its ECDSA P-256 key pair on the board")
        else:
            echo("[board] generating its RSA-2048 key pair on the board (Miller-Rabin; seconds here, minutes on an ESP32)")
        try:
            prov = provision_board(link, ca_key, ca_pem, log=lambda s: echo(f"[board] {s}"), key_type=key_type)
        except (ProvisionError, LinkError) as e:
            raise DemoFailure(f"provisioning: {e}") from None
        for stage, secs in prov.timings.items():
            echo(f"        {stage}: {secs * 1000:.0f} ms")
        d.stage("board", f"provisioned: {prov.subject}, serial {prov.serial:x}, certificate signed by the token CA;"
                f" its private key stayed on the board", t)
        if bdef.emulated:
            # the board restarts with its new identity, as a real one would after
            # provisioning (and with a heap the key generation has not fragmented)
            t = time.perf_counter()
            emu.reset()
            try:
                link.connect(10.0)
            except LinkError as e:
                raise DemoFailure(f"board after restart: {e}") from None
            d.stage("board", "restarted with its new identity", t)

        # --- the handshake ----------------------------------------------------------
        echo("[board] mutually authenticated handshake, then a renegotiation from the board:")
        opts = {"server_name": "localhost", "client_auth": True, "renegotiate": True, "send": "hello from the board\n"}
        try:
            result = Bridge(link, ("127.0.0.1", bg.port)).run_handshake(opts, timeout=120)
        except (BoardFailure, LinkError) as e:
            raise DemoFailure(f"handshake: {e}") from None
        echo("[board] its own compute time per step (from its RESULT):")
        for line in board_step_lines(result):
            echo(line)
        for line in format_result(result):
            echo(f"        {line}")
        for line in log:
            echo(f"[host ] server: {line}")
        if trace_out:
            live.trace.write(trace_out)
            echo(f"[host ] trace written to {trace_out}")
        steps_seen = {e["step"] for e in live.trace.to_dict()["entries"]}
        missing = [s for s in range(1, 12) if s not in steps_seen]
        if not result.get("ok"):
            raise DemoFailure(f"the board's handshake failed: {result.get('reason')}")
        if result.get("renegotiations", 0) < 1 or not result.get("client_cert"):
            raise DemoFailure("no mutually authenticated renegotiation")
        if missing:
            raise DemoFailure(f"steps not seen: {missing}")
        echo("[host ] steps 1-11: " + "; ".join(f"{k} {v}" for k, v in STEPS.items()))
