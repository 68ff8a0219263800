"""Key log (--keylog / SSLKEYLOGFILE) and pcapng writer checked by tshark (Debian
`tshark`): Wireshark decrypts our own traffic with the key log our client and our
server write, for RSA and ECDHE key exchange, renegotiated sessions included.

Without tshark (or without permission to capture on loopback) the tests skip; with $CI
set they fail instead, so CI cannot silently lose them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hsmtls.backend import BACKEND
from hsmtls.keys import FileKey, run_key_operation
from hsmtls.tlsconfig import client_config, server_config
from hsmtls.tracing.keylog import KeyLog
from hsmtls.tracing.pcap import PcapWriter
from tlscore.client import ClientConnection
from tlscore.events import KeyOperationRequest
from tlscore.server import ServerConnection

RSA = "TLS_RSA_WITH_AES_128_GCM_SHA256"
ECDHE = "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path:
        return path
    msg = f"{tool} not installed: apt-get install -y {package}"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def follow_tls(tshark: str, capture: Path, keylog: Path, port: int) -> str:
    """The decrypted application data of the first TCP stream, as tshark shows it."""
    r = subprocess.run(
        [
            tshark,
            "-n",
            "-r",
            str(capture),
            "-o",
            f"tls.keylog_file:{keylog}",
            "-d",
            f"tcp.port=={port},tls",
            "-q",
            "-z",
            "follow,tls,ascii,0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def tls_summary(tshark: str, capture: Path, port: int, keylog: Path | None = None) -> str:
    argv = [tshark, "-n", "-r", str(capture), "-d", f"tcp.port=={port},tls"]
    if keylog is not None:
        argv += ["-o", f"tls.keylog_file:{keylog}"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


# -- a capture written by hsmtls.tracing.pcap (what `hsmtls bridge --pcap` will write) ------------


def _pump(client, server, server_key, cap: PcapWriter) -> None:
    for _ in range(20):
        a = client.data_to_send()
        if a:
            cap.tcp("c2s", a)
            _answer(server, server_key, server.receive_data(a))
        b = server.data_to_send()
        if b:
            cap.tcp("s2c", b)
            client.receive_data(b)
        if not a and not b:
            return


def _answer(conn, key, events) -> None:
    for ev in events:
        if isinstance(ev, KeyOperationRequest):
            _answer(conn, key, conn.key_operation_result(ev.op_id, run_key_operation(key, ev)))


@pytest.mark.parametrize("suite", [RSA, pytest.param(ECDHE, marks=pytest.mark.slow)])
def test_tshark_decrypts_a_pcapng_written_by_pcapwriter(pki, tmp_path, suite):
    tshark = need("tshark", "tshark")
    keylog = KeyLog(str(tmp_path / "keys.log"))
    cc = client_config(str(pki.ca_cert), "localhost", None, [suite])
    cc.trace = keylog.hook
    client = ClientConnection(cc, BACKEND)
    server = ServerConnection(server_config(str(pki.server_cert), None, None, [suite]), BACKEND)
    key = FileKey(str(pki.server_key))
    capture = tmp_path / "link.pcapng"
    with PcapWriter(str(capture), server_port=4433) as cap:
        client.initiate()
        _pump(client, server, key, cap)
        client.send_application_data(b"before renegotiation: first-secret")
        _pump(client, server, key, cap)
        client.renegotiate()
        _pump(client, server, key, cap)
        server.send_application_data(b"after renegotiation: second-secret")
        _pump(client, server, key, cap)
    assert client.renegotiation_count == 1
    summary = tls_summary(tshark, capture, 4433)
    assert "Client Hello" in summary and "Server Hello" in summary, summary
    assert "Malformed" not in summary, summary
    plain = follow_tls(tshark, capture, tmp_path / "keys.log", 4433)
    assert "first-secret" in plain and "second-secret" in plain, plain
    # and without the key log, nothing readable
    assert "secret" not in follow_tls(tshark, capture, tmp_path / "missing.log", 4433)


# -- a real capture on loopback of `hsmtls serve` and `hsmtls connect` --------------------


class Capture:
    """tshark capturing loopback traffic on one TCP port into a pcapng file."""

    def __init__(self, tshark: str, port: int, path: Path) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            [tshark, "-n", "-i", "lo", "-f", f"tcp port {port}", "-w", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("Capturing on"):
                return
        self.stop()
        msg = "tshark cannot capture on lo (needs root or dumpcap capabilities): " + "".join(seen)
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("suite", [RSA, ECDHE])
def test_tshark_decrypts_a_loopback_capture_with_our_key_logs(
    pki, hsmtls_server, hsmtls_cmd, tmp_path, suite
):
    tshark = need("tshark", "tshark")
    server_log, client_log = tmp_path / "server.keys", tmp_path / "client.keys"
    # default --workers (one per core): the key log reaches every worker process
    server = hsmtls_server(
        pki.server_cert,
        pki.server_key,
        app="http",
        ciphers=suite,
        extra=("--keylog", str(server_log)),
    )
    capture = Capture(tshark, server.port, tmp_path / "lo.pcapng")
    try:
        env = dict(os.environ, SSLKEYLOGFILE=str(client_log))
        r = subprocess.run(
            [
                *hsmtls_cmd,
                "connect",
                f"127.0.0.1:{server.port}",
                "--ca",
                str(pki.ca_cert),
                "--servername",
                "localhost",
                "--renegotiate",
                "--send",
                "GET /secret-path HTTP/1.0\\nHost: localhost\\n\\n",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"cipher: {suite}" in r.stdout and "renegotiations: 1" in r.stdout
        time.sleep(0.5)  # let dumpcap write the last packets
    finally:
        capture.stop()
    lines = client_log.read_text().splitlines()
    assert len(lines) == 2 and all(x.startswith("CLIENT_RANDOM ") for x in lines)
    assert sorted(server_log.read_text().splitlines()) == sorted(lines)
    plain = follow_tls(tshark, capture.path, server_log, server.port)
    assert "GET /secret-path HTTP/1.0" in plain, plain
    assert f"hsmtls: {suite}" in plain, plain  # the server's answer, decrypted too
    http = subprocess.run(
        [
            tshark,
            "-n",
            "-r",
            str(capture.path),
            "-o",
            f"tls.keylog_file:{client_log}",
            "-d",
            f"tcp.port=={server.port},tls",
            "-d",
            f"tls.port=={server.port},http",
            "-Y",
            "http.request",
            "-T",
            "fields",
            "-e",
            "http.request.uri",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert http.stdout.split() == ["/secret-path"], http.stdout + http.stderr


def test_serve_keylog_error_is_one_line(pki, hsmtls_cmd, tmp_path):
    r = subprocess.run(
        [
            *hsmtls_cmd,
            "serve",
            "--port",
            "0",
            "--cert",
            str(pki.server_cert),
            "--key",
            str(pki.server_key),
            "--keylog",
            str(tmp_path / "no" / "k.log"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"error: cannot write key log {tmp_path / 'no' / 'k.log'} (--keylog): "
        "No such file or directory; give a writable file path"
    ]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v", "--slow"]))
