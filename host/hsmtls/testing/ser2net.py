"""ser2net in front of a serial port: the port exported over RFC 2217 on 127.0.0.1.

What a board farm does (ser2net, labgrid's exporter) on one machine, for tests: a
config file of one connection (`accepter: telnet(rfc2217),tcp(nodelay),127.0.0.1,PORT`,
`connector: serialdev,DEVICE,115200n81,local`), ser2net in the foreground, and the
URL a client opens (`rfc2217://127.0.0.1:PORT`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class Ser2netError(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(device: str, port: int, baud: int = 115200, protocol: str = "telnet(rfc2217)") -> str:
    """ser2net 4's YAML for one connection; `protocol` "telnet(rfc2217)" or "raw"
    (socket://)."""
    accepter = f"{protocol},tcp(nodelay),127.0.0.1,{port}" if protocol != "raw" else f"tcp(nodelay),127.0.0.1,{port}"
    return (f"connection: &board\n"
            f"  accepter: {accepter}\n"
            f"  connector: serialdev,{device},{baud}n81,local\n"
            f"  options:\n"
            f"    kickolduser: false\n")


class Ser2net:
    """``with Ser2net("/dev/pts/5") as s: s.url`` (rfc2217://127.0.0.1:PORT)."""

    def __init__(self, device: str, baud: int = 115200, raw: bool = False, directory: str | Path | None = None) -> None:
        binary = shutil.which("ser2net")
        if binary is None:
            raise Ser2netError("ser2net is not installed (apt install ser2net)")
        self.binary = binary
        self.device = device
        self.port = _free_port()
        self.scheme = "socket" if raw else "rfc2217"
        self._tmp = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="hsmtls_ser2net_")
            directory = self._tmp.name
        self.config_path = Path(directory) / "ser2net.yaml"
        self.config_path.write_text(config(device, self.port, baud, "raw" if raw else "telnet(rfc2217)"))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 5.0) -> Ser2net:
        # -n: foreground, -d: no daemon logging to syslog only; -u: no UUCP locks (the
        # pty is ours), -P: no pid file
        self.proc = subprocess.Popen(
            [self.binary, "-n", "-d", "-u", "-P", str(self.config_path.with_suffix(".pid")), "-c", str(self.config_path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                said = self.proc.stdout.read().strip() if self.proc.stdout else ""
                raise Ser2netError(f"ser2net exited: {said}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise Ser2netError(f"ser2net did not listen on 127.0.0.1:{self.port} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is not None:
            from .shared import stop_process

            stop_process(self.proc)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Ser2net:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
