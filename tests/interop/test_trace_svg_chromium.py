"""The trace's sequence diagram (SVG, and the HTML page embedding it) in headless
Chromium (Debian `chromium`): it renders to a non-empty PNG, and the DOM Chromium built
holds a row for every step 1..10 of both rounds and the step 11 renegotiation band.

The trace is recorded from our own client and server over loopback: mutual
authentication, RSA key exchange, one renegotiation. Without chromium the tests skip;
with $CI set they fail, so CI cannot silently lose them.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from hsmtls.client import TLSClient
from hsmtls.keys import FileKey
from hsmtls.server import BackgroundServer, TLSServer
from hsmtls.tlsconfig import client_config, server_config
from hsmtls.tracing.trace import Trace

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    msg = "chromium not installed: apt-get install -y chromium"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    exe = chromium()
    profile = tmp_path / "chromium-profile"
    r = subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ, HOME=str(tmp_path)),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return r


@pytest.fixture(scope="module")
def trace_files(pki, tmp_path_factory) -> dict[str, Path]:
    chromium()  # skip (or fail in CI) before the handshake when there is nothing to render with
    d = tmp_path_factory.mktemp("trace")
    tr = Trace("loopback, mutual authentication, renegotiation")
    tr.performer("host", "server").performer("host", "client")
    sc = server_config(
        str(pki.server_cert), str(pki.ca_cert), "require", ["TLS_RSA_WITH_AES_128_GCM_SHA256"]
    )
    sc.trace = tr.hook
    cc = client_config(str(pki.ca_cert), "localhost", str(pki.client_cert))
    server = TLSServer(sc, FileKey(str(pki.server_key)), out=lambda s: None)
    with BackgroundServer(server) as bg:
        client = TLSClient("127.0.0.1", bg.port, cc, FileKey(str(pki.client_key)), trace=tr.hook)
        try:
            client.handshake()
            client.renegotiate()
            client.send(b"ping\n")
            assert client.read(until=b"ping") == b"ping\n"
        finally:
            client.close()
    files = {"svg": d / "handshake.svg", "html": d / "handshake.html", "json": d / "handshake.json"}
    for path in files.values():
        tr.write(str(path))
    return files


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_svg_renders_to_a_png(trace_files, tmp_path):
    svg = trace_files["svg"].read_text()
    w, h = (int(x) for x in re.search(r'<svg[^>]* width="(\d+)" height="(\d+)"', svg).groups())
    out = tmp_path / "handshake.png"
    run_chromium(
        tmp_path, f"--window-size={w},{h}", f"--screenshot={out}", trace_files["svg"].as_uri()
    )
    data = out.read_bytes()
    assert png_size(data) == (w, h)
    # a blank page of that size compresses to a few kB; the diagram is text and lines
    assert len(data) > 40_000, len(data)


def _rows(dom: str) -> set[tuple[str, str]]:
    # (step, round) of every diagram row Chromium parsed
    return set(re.findall(r'<g class="row[^"]*" data-step="(\d+)" data-round="(\d+)"', dom))


def test_svg_dom_has_every_step(trace_files, tmp_path):
    dom = run_chromium(tmp_path, "--dump-dom", trace_files["svg"].as_uri()).stdout
    rows = _rows(dom)
    for rnd in ("1", "2"):
        assert {str(n) for n in range(1, 11)} <= {s for s, r in rows if r == rnd}, (rnd, rows)
    assert ("11", "2") in rows
    assert "11 · renegotiation — round 2" in dom


def test_html_dom_has_every_step_and_the_table(trace_files, tmp_path):
    dom = run_chromium(tmp_path, "--dump-dom", trace_files["html"].as_uri()).stdout
    rows = _rows(dom)
    assert {str(n) for n in range(1, 12)} <= {s for s, _ in rows}
    table_steps = set(re.findall(r'<tr class="[a-z_]+" data-step="(\d+)"', dom))
    assert {str(n) for n in range(1, 12)} <= table_steps
    for text in (
        "ClientHello",
        "ServerHelloDone",
        "CertificateVerify",
        "decrypt premaster",
        "server key: host file key",
        "renegotiation",
    ):
        assert text in dom, text
