"""`hsmtls demo` as a user runs it: a subprocess, nothing configured, steps 1..11 shown."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from hsmtls.demo import board_step_lines

from support.required_tools import requires_tool


def test_board_steps_split_into_rounds():
    r = {"steps": [["ClientHello", 1], ["ServerHello", 0], ["Certificate", 3], ["ServerHelloDone", 2],
                   ["sign CertificateVerify", 90], ["Finished", 0], ["ServerHello", 0], ["Certificate", 2]]}
    lines = board_step_lines(r)
    assert lines[0] == "  board, handshake:"
    assert "  board, renegotiation #1 (step 11):" in lines
    assert any("step  5  board  signs CertificateVerify" in x and x.endswith("90 ms") for x in lines)


def test_board_steps_what_comes_after_finished_opens_the_next_round():
    # the nonce the board makes while a renegotiation's server answers belongs to the
    # renegotiation, as a HelloRequest does; before the first ClientHello, to the first
    r = {"steps": [["prepare CertificateVerify", 1], ["ClientHello", 1], ["ServerHello", 0], ["Finished", 0],
                   ["prepare CertificateVerify", 4], ["ServerHello", 0], ["Finished", 0],
                   ["HelloRequest", 0], ["ServerHello", 0]]}
    lines = board_step_lines(r)
    heads = [i for i, x in enumerate(lines) if x.startswith("  board, ")]
    assert [lines[i] for i in heads] == ["  board, handshake:", "  board, renegotiation #1 (step 11):",
                                         "  board, renegotiation #2 (step 11):"]
    assert "step  5  board  makes its signature's nonce" in lines[1]
    assert "makes its signature's nonce" in lines[heads[1] + 1] and lines[heads[1] + 1].endswith("4 ms")
    assert "handles HelloRequest" in lines[heads[2] + 1]


@pytest.mark.micropython
@requires_tool("micropython")
@requires_tool("softhsm2")
@pytest.mark.parametrize("args,key", [([], "ECDSA P-256"), (["--key-type", "rsa"], "RSA-2048")], ids=["default", "rsa"])
def test_hsmtls_demo_end_to_end(tmp_path, args, key):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOFTHSM", "HSMTLS"))}
    env["HOME"] = str(tmp_path)  # nothing configured: no ~/.config, no token
    proc = subprocess.run([sys.executable, "-m", "hsmtls", "demo", *args], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    steps = {int(m) for m in re.findall(r"step +(\d+) ", out)}
    assert set(range(1, 12)) <= steps, (sorted(steps), out)
    for who in ("board", "host", "token"):
        assert re.search(rf"step +\d+ +{who}", out), who
    assert "decrypts the premaster (PKCS#11)" in out
    assert "renegotiation #1" in out
    assert f"generating its {key} key pair on the board" in out
    assert re.search(r"step +5 +board +signs CertificateVerify", out)
    assert "demo: all steps passed" in out
    assert list(tmp_path.iterdir()) == []  # cleaned up: nothing left behind


def test_demo_asks_before_replacing_a_real_boards_identity():
    from click.testing import CliRunner

    from hsmtls.cli import main

    # not a terminal (CliRunner's stdin): refused without --yes, nothing touched
    r = CliRunner().invoke(main, ["demo", "--board", "esp32-devkitc", "--port", "/dev/ttyNOPE9"])
    assert r.exit_code == 1
    assert "replaces esp32-devkitc's trust anchor, certificate and private key" in r.output
    assert "pass --yes" in r.output


def test_demo_machine_is_the_emulators():
    from click.testing import CliRunner

    from hsmtls.cli import main

    r = CliRunner().invoke(main, ["demo", "--board", "esp32-devkitc", "--port", "/dev/ttyNOPE9", "--yes",
                                  "--machine", "rv32"])
    assert r.exit_code == 2 and "--machine is the emulated board's" in r.output
