"""The handshake trace (hsmtls.tracing.trace), its renderings, the key log and the pcapng writer,
on engines wired back to back in memory (no sockets, no external tools)."""

from __future__ import annotations

import io
import json
import struct
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from hsmtls.tracing.keylog import KeyLog, KeyLogError, keylog_from
from hsmtls.tracing.pcap import PcapWriter
from hsmtls.tracing.render import to_html, to_svg, visible_entries
from hsmtls.tracing.steps import STEPS
from hsmtls.tracing.trace import Trace, TraceHub, chain_hooks, check_trace_out

from support.engine_pair import Pair

RSA = "TLS_RSA_WITH_AES_128_GCM_SHA256"
ECDHE = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
SVG_NS = "{http://www.w3.org/2000/svg}"


def handshake(cc, sc, server_key, client_key, renegotiate=True) -> Pair:
    p = Pair(cc, sc, client_key, server_key)
    p.handshake()
    assert len(p.completed("c")) == 1, p.cev
    if renegotiate:
        p.c.renegotiate()
        p.run()
        assert len(p.completed("c")) == 2, p.cev
    return p


@pytest.fixture
def mutual(make_configs, epki):
    def make(suite=RSA, client_auth="require"):
        cc, sc = make_configs(suite, client_auth,
                              client_cert=epki.client_cert if client_auth != "none" else None)
        return cc, sc

    return make


def traced(mutual, server_key, client_key, suite=RSA, client_auth="require", sides="cs",
           renegotiate=True, extra_hooks=()):
    cc, sc = mutual(suite, client_auth)
    tr = Trace("test").performer("token", "server").performer("host", "client")
    hook = chain_hooks(tr.hook, *extra_hooks)
    if "c" in sides:
        cc.trace = hook
    if "s" in sides:
        sc.trace = hook
    p = handshake(cc, sc, server_key, client_key if client_auth != "none" else None, renegotiate)
    return tr, p


def test_two_sided_trace_has_every_step_in_both_rounds(mutual, server_key, client_key):
    tr, p = traced(mutual, server_key, client_key)
    data = tr.to_dict()
    entries = data["entries"]
    assert data["roles"] == ["client", "server"]
    for rnd in (1, 2):
        steps = {e["step"] for e in entries if e["round"] == rnd}
        assert set(range(1, 11)) <= steps, (rnd, sorted(steps))
        assert all(e["observed"] for e in entries if e["round"] == rnd)
    assert [e["round"] for e in entries if e["kind"] == "round"] == [2]
    assert max(e["round"] for e in entries) == 2
    # times relative to the first event, never going back
    ts = [e["t"] for e in entries]
    assert ts[0] == 0 and ts == sorted(ts)
    sent = [(e["side"], e["name"], e["step"]) for e in entries
            if e["kind"] == "message" and e["round"] == 1 and e["side"] == e["from"]]
    assert sent == [
        ("client", "ClientHello", 1), ("server", "ServerHello", 2), ("server", "Certificate", 2),
        ("server", "CertificateRequest", 2), ("server", "ServerHelloDone", 2),
        ("client", "Certificate", 5), ("client", "ClientKeyExchange", 4),
        ("client", "CertificateVerify", 5), ("client", "ChangeCipherSpec", 8),
        ("client", "Finished", 8), ("server", "ChangeCipherSpec", 9), ("server", "Finished", 9),
    ]


def test_decoded_fields(mutual, server_key, client_key, epki):
    tr, p = traced(mutual, server_key, client_key)
    entries = tr.to_dict()["entries"]

    def first(name, side, rnd=1):
        return next(e for e in entries if e["name"] == name and e["side"] == side and e["round"] == rnd)

    ch = first("ClientHello", "client")["fields"]
    assert ch["client_version"] == "TLS 1.2 (0x0303)"
    assert ch["random"] == p.c.client_random.hex() or len(ch["random"]) == 64
    assert ch["cipher_suites"] == [RSA]
    assert "extended_master_secret" in ch["extensions"] and "renegotiation_info" in ch["extensions"]
    assert ch["extension_details"]["server_name"] == "localhost"
    assert "rsa_pss_rsae_sha256" in ch["extension_details"]["signature_algorithms"]
    sh = first("ServerHello", "server")["fields"]
    assert sh["cipher_suite"] == RSA and len(sh["random"]) == 64
    cert = first("Certificate", "server")["fields"]["certificate_list"][0]
    assert cert["subject"] == "CN=localhost, O=hsmtls" and cert["key"] == "RSA-2048"
    assert cert["signature_algorithm"] == "sha256WithRSAEncryption"
    cv = first("CertificateVerify", "client")
    assert cv["fields"]["signature_algorithm"] == "rsa_pkcs1_sha256" and cv["size"] == 4 + 2 + 2 + 256
    cr = first("CertificateRequest", "server")["fields"]
    assert cr["certificate_authorities"] == ["CN=hsmtls demo CA, O=hsmtls"]
    # the renegotiation ClientHello carries the previous client verify_data
    ch2 = first("ClientHello", "client", 2)["fields"]
    assert len(ch2["extension_details"]["renegotiation_info"]) == 24
    fin = first("Finished", "client")
    assert fin["size"] == 16 and len(fin["fields"]["verify_data"]) == 24
    # nothing secret: no master secret anywhere in the trace
    text = tr.to_json()
    assert p.c.master_secret.hex() not in text


def test_key_operations_name_their_performer(mutual, server_key, client_key):
    tr, _ = traced(mutual, server_key, client_key, renegotiate=False)
    ops = [e for e in tr.to_dict()["entries"] if e["kind"] in ("key_op", "key_result")]
    assert [(e["from"], e["to"], e["step"], e["fields"]["performer"]) for e in ops] == [
        ("client", "client_key", 5, "host"), ("client_key", "client", 5, "host"),
        ("server", "server_key", 6, "token"), ("server_key", "server", 6, "token"),
    ]
    assert ops[2]["name"] == "decrypt premaster" and ops[2]["fields"]["duration_ms"] > 0


def test_ecdhe_server_trace_signs_in_step_2_and_infers_the_rest(mutual, server_key, client_key):
    tr, _ = traced(mutual, server_key, client_key, suite=ECDHE, client_auth="none", sides="s",
                   renegotiate=False)
    entries = tr.to_dict()["entries"]
    op = next(e for e in entries if e["kind"] == "key_op")
    assert (op["step"], op["name"], op["fields"]["performer"]) == (2, "sign ServerKeyExchange", "token")
    assert op["fields"]["scheme"] == "rsa_pss_rsae_sha256"
    ske = next(e for e in entries if e["name"] == "ServerKeyExchange")
    assert ske["fields"]["named_curve"] in ("x25519", "secp256r1")
    inferred = {e["step"]: e for e in entries if not e["observed"]}
    assert set(inferred) == {3, 5, 6}, inferred
    assert "not observed" in inferred[3]["summary"]
    assert "did not ask" in inferred[5]["summary"]
    assert "ECDHE" in inferred[6]["name"] + inferred[6]["summary"]
    assert {e["step"] for e in entries} >= set(range(1, 11))


def test_client_only_trace_infers_the_servers_premaster(mutual, server_key, client_key):
    tr, _ = traced(mutual, server_key, client_key, client_auth="none", sides="c", renegotiate=False)
    entries = tr.to_dict()["entries"]
    six = [e for e in entries if e["step"] == 6]
    assert len(six) == 1 and not six[0]["observed"] and six[0]["from"] == "server"
    assert "decrypts" in six[0]["summary"]


def test_failed_handshake_records_the_alert_and_guesses_nothing(make_configs, epki, server_key):
    cc, sc = make_configs(RSA, ca=epki.other_ca_cert)
    tr = Trace()
    cc.trace = tr.hook
    sc.trace = tr.hook
    p = Pair(cc, sc, None, server_key)
    p.handshake()
    entries = tr.to_dict()["entries"]
    alerts = [e for e in entries if e["kind"] == "alert"]
    assert alerts and alerts[0]["name"] == "alert unknown_ca" and alerts[0]["from"] == "client"
    assert alerts[0]["fields"]["reason"]
    assert all(e["observed"] for e in entries)
    assert "did not complete" in to_svg(tr.to_dict())


def test_json_round_trip(mutual, server_key, client_key, tmp_path):
    tr, _ = traced(mutual, server_key, client_key)
    path = tmp_path / "t.json"
    tr.write(str(path))
    data = Trace.from_json(path.read_text())
    assert data == json.loads(tr.to_json())
    assert data["steps"]["11"] == STEPS[11]
    assert to_svg(data) == tr.to_svg()
    with pytest.raises(ValueError):
        Trace.from_json('{"format": "other"}')


def test_svg_is_self_contained_with_a_row_per_step(mutual, server_key, client_key):
    tr, _ = traced(mutual, server_key, client_key)
    svg = tr.to_svg()
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag == SVG_NS + "svg"
    assert "<script" not in svg and "href=" not in svg.replace('url(#', '')
    rows = [g for g in root.iter(SVG_NS + "g") if "row" in g.get("class", "").split()]
    steps = {int(g.get("data-step")) for g in rows}
    assert steps >= set(range(1, 12))
    assert {g.get("data-round") for g in rows if g.get("data-step") == "1"} == {"1", "2"}
    lanes = {g.get("class") for g in root.iter(SVG_NS + "g") if g.get("class", "").startswith("lane ")}
    assert lanes == {"lane lane-client_key", "lane lane-client", "lane lane-server", "lane lane-server_key"}
    assert "server key: token (PKCS#11)" in svg
    # both sides traced: each message drawn once
    drawn = [e for e in visible_entries(tr.to_dict()) if e["kind"] == "message"]
    assert len([e for e in drawn if e["name"] == "ClientHello"]) == 2


def test_html_embeds_the_svg_and_a_table(mutual, server_key, client_key):
    tr, _ = traced(mutual, server_key, client_key)
    page = to_html(tr.to_dict())
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "<table>" in page
    assert "<script" not in page
    assert page.count('<tr class="message"') >= 24
    assert "TLS_RSA_WITH_AES_128_GCM_SHA256" in page


def test_terminal_rendering(mutual, server_key, client_key):
    from rich.console import Console

    tr, _ = traced(mutual, server_key, client_key)
    buf = io.StringIO()
    tr.render_terminal(Console(file=buf, width=160, color_system=None))
    out = buf.getvalue()
    for text in ("ClientHello", "ServerHelloDone", "decrypt premaster", "renegotiation — round 2",
                 "handshake complete", "C → S", "S → Skey"):
        assert text in out, text


def test_trace_hub_gives_each_server_connection_its_own_trace(mutual, server_key):
    done: list[Trace] = []
    hub = TraceHub(done.append, performer="board")
    for _ in range(2):
        cc, sc = mutual(RSA, "none")
        sc.trace = hub.hook
        p = handshake(cc, sc, server_key, None, renegotiate=False)
        hub.finish(p.s)
    assert len(done) == 2
    for tr in done:
        assert tr.roles == ["server"] and tr.performers["server"] == "board"
        assert [e["name"] for e in tr.entries].count("ClientHello") == 1


def test_a_broken_observer_never_breaks_the_handshake(mutual, server_key, client_key):
    tr = Trace()
    cc, sc = mutual(RSA, "none")
    tr._record = None  # type: ignore[assignment]  # every record now raises
    cc.trace = tr.hook
    handshake(cc, sc, server_key, None, renegotiate=False)
    assert tr.entries and all(e["name"] == "trace error" for e in tr.entries)


def test_keylog_one_line_per_handshake_same_on_both_sides(mutual, server_key, client_key, tmp_path):
    ck, sk = KeyLog(str(tmp_path / "c.log")), KeyLog(str(tmp_path / "s.log"))
    cc, sc = mutual(RSA, "none")
    cc.trace, sc.trace = ck.hook, sk.hook
    p = Pair(cc, sc, None, server_key)
    p.handshake()
    first = (p.c.client_random.hex(), p.c.master_secret.hex())
    p.c.renegotiate()
    p.run()
    lines = (tmp_path / "c.log").read_text().splitlines()
    assert lines == (tmp_path / "s.log").read_text().splitlines()
    assert len(lines) == 2
    assert lines[0] == "CLIENT_RANDOM %s %s" % first
    assert lines[1] == "CLIENT_RANDOM %s %s" % (p.c.client_random.hex(), p.c.master_secret.hex())
    assert (tmp_path / "c.log").stat().st_mode & 0o077 == 0


def test_keylog_errors_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(KeyLogError, match="cannot write key log .*give a writable file path"):
        KeyLog(str(tmp_path / "missing" / "k.log"))
    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)
    assert keylog_from(None) is None
    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "env.log"))
    kl = keylog_from(None)
    assert kl is not None and kl.path == str(tmp_path / "env.log")
    assert keylog_from(str(tmp_path / "opt.log")).path == str(tmp_path / "opt.log")


def test_check_trace_out(tmp_path):
    assert check_trace_out(str(tmp_path / "t.svg")) is None
    assert "ending in .json, .svg or .html" in check_trace_out(str(tmp_path / "t.png"))
    assert "does not exist" in check_trace_out(str(tmp_path / "no" / "t.json"))


def _pcapng_blocks(data: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(data):
        t, n = struct.unpack_from("<II", data, pos)
        assert n % 4 == 0 and struct.unpack_from("<I", data, pos + n - 4)[0] == n
        out.append((t, data[pos + 8 : pos + n - 4]))
        pos += n
    return out


def test_pcap_writer_makes_one_tcp_stream(tmp_path):
    path = tmp_path / "x.pcapng"
    with PcapWriter(str(path), server_port=4433) as cap:
        cap.tcp("c2s", b"\x16\x03\x01hello")
        cap.tcp("server", b"A" * 3000)  # split at the MSS
    blocks = _pcapng_blocks(path.read_bytes())
    assert blocks[0][0] == 0x0A0D0D0A and blocks[1][0] == 1
    packets = [b[20 : 20 + struct.unpack_from("<I", b, 12)[0]] for t, b in blocks if t == 6]
    assert len(packets) == 3 + 1 + 3 + 3  # handshake, data, 3 segments, FIN/FIN/ACK
    payloads = []
    for pkt in packets:
        ip = pkt[14:]
        ihl = (ip[0] & 15) * 4
        tcp = ip[ihl:]
        payloads.append((struct.unpack("!H", tcp[2:4])[0], struct.unpack("!I", tcp[4:8])[0], tcp[20:]))
    data = [(dport, seq, p) for dport, seq, p in payloads if p]
    assert data[0] == (4433, 1001, b"\x16\x03\x01hello")
    assert b"".join(p for d, _, p in data[1:]) == b"A" * 3000
    assert [s for _, s, _ in data[1:]] == [5001, 5001 + 1460, 5001 + 2920]
    with pytest.raises(ValueError):
        PcapWriter(str(tmp_path / "y.pcapng")).tcp("up", b"x")


def test_cli_connect_trace_keylog_and_output_contract(epki, server_key, tmp_path, monkeypatch):
    from hsmtls.cli import main
    from hsmtls.server import BackgroundServer, TLSServer
    from hsmtls.tlsconfig import server_config

    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)
    server = TLSServer(server_config(str(epki.server_cert)), server_key,
                       out=lambda s: None, keylog=str(tmp_path / "server.log"))
    with BackgroundServer(server) as bg:
        out_json = tmp_path / "t.json"
        result = CliRunner().invoke(main, [
            "connect", f"127.0.0.1:{bg.port}", "--ca", str(epki.ca_cert), "--servername", "localhost",
            "--cipher", RSA, "--renegotiate", "--send", "ping\\n", "--until", "ping", "--trace",
            "--trace-out", str(out_json), "--keylog", str(tmp_path / "client.log"),
        ])
        assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:7] == [
        "version: TLS 1.2", f"cipher: {RSA}", "extended_master_secret: yes",
        "secure_renegotiation: yes", "encrypt_then_mac: no", "peer: CN=localhost, O=hsmtls",
        "renegotiations: 1",
    ]
    assert "TLS handshake trace" in result.output and "ServerHelloDone" in result.output
    data = json.loads(out_json.read_text())
    assert {e["round"] for e in data["entries"]} == {1, 2}  # --renegotiate
    client_lines = (tmp_path / "client.log").read_text().splitlines()
    assert len(client_lines) == 2
    assert client_lines == (tmp_path / "server.log").read_text().splitlines()


def test_cli_connect_trace_errors_are_one_line(epki, tmp_path):
    from hsmtls.cli import main

    r = CliRunner().invoke(main, ["connect", "127.0.0.1:1", "--ca", str(epki.ca_cert),
                                  "--trace-out", str(tmp_path / "t.png")])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        f"error: --trace-out {tmp_path / 't.png'}: use a name ending in .json, .svg or .html"]
    r = CliRunner().invoke(main, ["connect", "127.0.0.1:1", "--ca", str(epki.ca_cert),
                                  "--keylog", str(tmp_path / "no" / "k.log")])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert "give a writable file path" in r.output
