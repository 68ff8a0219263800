"""What the plugin shares across a run: under pytest-xdist one throwaway token and one
token-backed `hsmtls serve` a set of options for all workers, stopped and removed when the
run ends (also when a worker that started a server ended long before); without xdist,
one server a set of options for the run's tests. Run in a subprocess as a user runs
pytest, with tests that write down what they were given."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.required_tools import requires_tool

pytestmark = requires_tool("softhsm2")

TESTS = '''
import json, os, socket, ssl, time
from pathlib import Path

OUT = Path(os.environ["SHARED_TEST_OUT"])


def record(name, token, server):
    ctx = ssl.create_default_context(cafile=str(token.ca_pem))
    with socket.create_connection(server.address, timeout=10) as raw, \\
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"hi")
        assert tls.recv(2) == b"hi"
    fact = {"name": name, "worker": os.environ.get("PYTEST_XDIST_WORKER", "-"), "pid": os.getpid(),
            "token_dir": str(token.dir), "ca": token.ca_pem.read_text(), "port": server.port,
            "shared": server.shared, "store": os.environ["SOFTHSM2_CONF"],
            "run": os.environ.get("HSMTLS_PYTEST_SHARED")}
    (OUT / f"{name}-{os.getpid()}.json").write_text(json.dumps(fact))


def test_a(hsmtls_token, hsmtls_serve):
    record("a", hsmtls_token, hsmtls_serve())
    time.sleep(1.0)  # both workers get a test before either is done


def test_b(hsmtls_token, hsmtls_serve):
    record("b", hsmtls_token, hsmtls_serve())
    time.sleep(1.0)


def test_c(hsmtls_token, hsmtls_serve):
    record("c", hsmtls_token, hsmtls_serve())


def test_d(hsmtls_token, hsmtls_serve):
    record("d", hsmtls_token, hsmtls_serve())


def test_private(hsmtls_token, hsmtls_serve):
    record("private", hsmtls_token, hsmtls_serve(private=True))


def test_other_options(hsmtls_token, hsmtls_serve):
    record("other", hsmtls_token, hsmtls_serve(ciphers=["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"]))
'''


def run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    work, out = tmp_path / "suite", tmp_path / "out"
    work.mkdir()
    out.mkdir()
    (work / "test_shared_facts.py").write_text(TESTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOFTHSM2_CONF", "HSMTLS_PYTEST_"))}
    env["SHARED_TEST_OUT"] = str(out)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                           "-q", *args], cwd=work, capture_output=True, text=True, timeout=300, env=env)
    facts = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    return proc, facts


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_xdist_workers_share_the_token_and_the_servers(tmp_path):
    pytest.importorskip("xdist")
    proc, facts = run(tmp_path, "-n", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(facts) == 6
    assert {f["worker"] for f in facts} == {"gw0", "gw1"}
    # one token: one store, one CA, one directory (the run's)
    assert len({f["store"] for f in facts}) == 1 and len({f["ca"] for f in facts}) == 1
    assert len({f["token_dir"] for f in facts}) == 1
    run_dir = facts[0]["run"]
    assert run_dir and facts[0]["token_dir"].startswith(run_dir)
    # one server for the four tests with the default options, whichever worker ran them
    named = {f["name"]: f for f in facts}
    assert len({named[n]["worker"] for n in "abcd"}) == 2
    assert len({named[n]["port"] for n in "abcd"}) == 1
    assert named["other"]["port"] != named["a"]["port"] and named["other"]["shared"]
    assert named["private"]["port"] != named["a"]["port"] and not named["private"]["shared"]
    # the run's end stopped every server and removed the directory, token store and all
    for f in facts:
        assert refused(f["port"]), f
    assert not Path(run_dir).exists()


def test_without_xdist_the_run_shares_its_servers(tmp_path):
    proc, facts = run(tmp_path, "-p", "no:xdist")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ports = {f["name"]: f["port"] for f in facts}
    assert len({ports[n] for n in "abcd"}) == 1
    assert len({ports["a"], ports["other"], ports["private"]}) == 3
    time.sleep(0.2)
    assert all(refused(p) for p in ports.values())


def test_keeper_stops_its_server_when_the_run_is_gone():
    """A controller killed before it could stop the run's servers: the keeper notices
    and stops the server it keeps."""
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    keeper = subprocess.Popen([sys.executable, "-m", "hsmtls.testing.keeper", str(owner.pid), "--",
                               sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        time.sleep(0.5)
        assert keeper.poll() is None
        owner.kill()
        owner.wait()
        keeper.wait(5)
        from hsmtls.testing import shared

        deadline = time.monotonic() + 5
        while shared.alive(keeper.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not shared.alive(keeper.pid)  # the server (same process group) went with it
    finally:
        for p in (owner, keeper):
            if p.poll() is None:
                p.kill()
                p.wait()
