"""The board under test, as a test sees it: a serial port (a device, an RFC 2217 or
socket URL, or an emulated board's pty) and the calls `hsmtls board` makes, each
returning what the board answered as data (RESULT, STATS, the provisioned certificate).

Each call opens the port, connects (SYNC/HELLO, the firmware's link version checked)
and closes it again, as the `hsmtls board` commands do, so a test can hand the port to
another program (the CLI, its own HostLink) between calls. Over a URL that costs 0.3 s
(pyserial's close) plus 0.5 s (RFC 2217's open) a call: `with board.held():` keeps the
connection for a block of calls (`Board(..., keep_open=True)`: until `close()`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hsmtls.board.bridge import BoardFailure, Bridge
from hsmtls.board.hostlink import HostLink, LinkError


class BoardError(Exception):
    """The board could not be reached or did not answer (one line: what and what to do)."""


class Board:
    """`port`: where the board is; `name`: its boards/*.toml name ("emulator" for an
    emulated one, whose EmulatedBoard is `emulated`: reset, faults, flash directory)."""

    def __init__(self, port: str, name: str = "emulator", baud: int = 115200, emulated: Any = None,
                 keep_open: bool = False) -> None:
        self.port = port
        self.name = name
        self.baud = baud
        self.emulated = emulated
        self.keep_open = bool(keep_open)
        self._link: HostLink | None = None
        self.provisioned = None  # the last provision()'s Provisioned
        self.results: list[dict] = []  # RESULTs not yet reported (the plugin adds them to the test's report)

    def __repr__(self) -> str:
        return f"Board({self.name!r} on {self.port})"

    def close(self) -> None:
        """Let go of the port (a kept URL connection); the next call opens it again."""
        if self._link is not None:
            self._link.close()
            self._link = None

    @contextmanager
    def held(self) -> Iterator[Board]:
        """The port kept open for the calls in the block (one connection: no reopening
        over a URL), closed at its end."""
        before, self.keep_open = self.keep_open, True
        try:
            yield self
        finally:
            self.keep_open = before
            self.close()

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, what: Callable[[HostLink], Any], connect_timeout: float = 10.0) -> Any:
        try:
            if self._link is None:
                self._link = HostLink(self.port, self.baud)
            self._link.connect(connect_timeout)
            return what(self._link)
        except (LinkError, BoardFailure) as e:
            self.close()
            raise BoardError(str(e)) from None
        except BaseException:
            self.close()
            raise
        finally:
            if not self.keep_open:
                self.close()

    def hello(self) -> dict:
        """The board's HELLO: firmware ("v", link version), board, impl, heap, features."""
        return self._run(lambda link: dict(link.hello))

    def status(self) -> dict:
        """STATS with the board's identity: heap, sessions, trust anchors, its certificate,
        autorun (what `hsmtls board status --json` prints under "stats")."""
        return self._run(lambda link: Bridge(link, ("127.0.0.1", 0)).stats(identity=True))

    def handshake(self, to: Any, server_name: str = "localhost", client_cert: bool = False,
                  renegotiate: bool = False, send: str | None = None, ciphers: list[str] | tuple[str, ...] = (),
                  ca: str | Path | None = None, mfl: int | None = None, timeout: float = 60.0, **opts: Any) -> dict:
        """One TLS session of the board to `to` (a Server, or (host, port)): the board's
        RESULT (ok, reason, suite, client_cert, renegotiations, received, steps, heap...).
        A failed handshake is a RESULT with ok False, not an exception."""
        target = to.address if hasattr(to, "address") else tuple(to)
        run: dict = {"server_name": server_name}
        if client_cert:
            run["client_auth"] = True
        if renegotiate:
            run["renegotiate"] = True
        if send is not None:
            run["send"] = send
        if ciphers:
            run["suites"] = list(ciphers)
        if mfl is not None:
            run["mfl"] = mfl
        if ca:
            from hsmtls.cli.board import _anchor_fingerprints

            run["anchor_sha256"] = _anchor_fingerprints(str(ca))[0]
        run.update(opts)
        result = self._run(lambda link: Bridge(link, target).run_handshake(run, timeout))
        self.results.append(result)
        return result

    def provision(self, token: Any, key_type: str = "ec", ca: str = "ca", subject: str | None = None,
                  days: int = 365, validity: Any = None) -> Any:
        """KEYGEN on the board, its CSR signed by the token's CA ("ca" or "rogue-ca"),
        certificate and trust anchor installed; the Provisioned (subject, serial,
        not_after, cert_pem). An emulated board is then reset, as a board is after it."""
        from hsmtls.board.provisioning import ProvisionError, provision_board

        pem = Path(token.ca_pem if ca == "ca" else token.rogue_ca_pem).read_bytes()
        try:
            prov = self._run(lambda link: provision_board(link, token.keys[ca], pem, subject=subject, days=days,
                                                          validity=validity, key_type=key_type))
        except ProvisionError as e:
            raise BoardError(f"provisioning the board on {self.port} failed: {e}") from None
        if self.emulated is not None:
            self.emulated.reset()
        self.provisioned = prov
        return prov

    def autorun(self, server_name: str | None = "localhost", every_s: int = 0, client_cert: bool = False,
                renegotiate: bool = False, send: str | None = None) -> dict | None:
        """Have the board start a session on its own whenever a host bridges it (None
        for server_name: no autorun); what the board now keeps."""
        opts = None
        if server_name is not None:
            opts = {"server_name": server_name, "every_s": every_s}
            if client_cert:
                opts["client_auth"] = True
            if renegotiate:
                opts["renegotiate"] = True
            if send is not None:
                opts["send"] = send
        return self._run(lambda link: Bridge(link, ("127.0.0.1", 0)).set_autorun(opts))

    def bridge(self, to: Any, sessions: int = 1, timeout: float = 60.0) -> list[dict]:
        """Carry the sessions the board starts on its own (autorun) to `to`; the RESULTs
        of the first `sessions` of them."""
        import time

        target = to.address if hasattr(to, "address") else tuple(to)
        results: list[dict] = []
        deadline = time.monotonic() + timeout

        def carry(link: HostLink) -> list[dict]:
            b = Bridge(link, target)
            b.serve(until=lambda: len(results) >= sessions or time.monotonic() > deadline,
                    on_result=results.append)
            return results

        self._run(carry)
        self.results += results
        if len(results) < sessions:
            raise BoardError(f"the board on {self.port} started {len(results)} of {sessions} sessions "
                             f"within {timeout:.0f} s")
        return results
