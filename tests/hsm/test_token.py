"""Keys in a real (SoftHSM2) token: provisioning, token-backed handshakes, faults, and
the premaster countermeasure with implicit rejection in the token."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hsmtls.client import TLSClient, TLSFailure
from hsmtls.hsm.keyops import TokenKey
from hsmtls.hsm.uri import PKCS11URI, URIError
from hsmtls.server import BackgroundServer, TLSServer
from hsmtls.tlsconfig import client_config, server_config

from support.softhsm import PIN, requires_softhsm

pytestmark = requires_softhsm
REPO = Path(__file__).resolve().parents[2]


def openssl(*args: str, input: bytes | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=input, capture_output=True, timeout=timeout)


# --- transient failures ------------------------------------------------------------------


def test_open_tries_again_after_a_transient_failure(monkeypatch):
    """C_OpenSession failing for a moment (SoftHSM2 rewriting the token's file for another
    process) is tried again on a fresh listing of the tokens, not reported."""
    import threading

    from pkcs11 import exceptions as p11e

    from hsmtls.hsm import token as T

    class Listed:
        label = "t"
        tries = 0

        def open(self, rw=False, user_pin=None):
            Listed.tries += 1
            if Listed.tries == 1:
                raise p11e.GeneralError()
            return "session"

    class Lib:
        def get_tokens(self):
            return [Listed()]

    monkeypatch.setattr(T.time, "sleep", lambda s: None)
    tok = object.__new__(T.Token)
    tok.lib, tok.lock, tok.label, tok.token = Lib(), threading.Lock(), "t", Listed()
    assert tok.open("1234") == "session" and Listed.tries == 2


# --- URIs -------------------------------------------------------------------------------


def test_uri_round_trip_and_pin_value_refused():
    u = PKCS11URI.parse("pkcs11:token=my%20token;object=server;type=private?module-path=/x.so")
    assert (u.token, u.object, u.type, u.query["module-path"]) == ("my token", "server", "private", "/x.so")
    assert PKCS11URI.parse(str(u)).path == u.path
    with pytest.raises(URIError, match="pin-value"):
        PKCS11URI.parse("pkcs11:token=t;object=k?pin-value=1234")
    with pytest.raises(URIError):
        PKCS11URI.parse("file:///etc/passwd")


# --- provisioning -----------------------------------------------------------------------------


def test_list_shows_uris_and_key_protection(token_env):
    out = token_env.cli("token", "list").stdout
    for name in ("server", "client", "ca"):
        line = next(ln for ln in out.splitlines() if token_env.uri(name) in ln)
        assert "RSA-2048" in line and "sensitive=yes" in line and "extractable=no" in line
    assert token_env.uri("server-implicit-rejection", "secret-key") in out


def test_certificates_verify_with_openssl(token_env):
    d = token_env.dir
    for cert, purpose in (("server.pem", "sslserver"), ("client.pem", "sslclient")):
        proc = openssl("verify", "-CAfile", str(d / "ca.pem"), "-purpose", purpose, str(d / cert))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    text = openssl("x509", "-in", str(d / "server.pem"), "-noout", "-text").stdout.decode()
    assert "TLS Web Server Authentication" in text and "DNS:localhost" in text and "IP Address:127.0.0.1" in text
    text = openssl("x509", "-in", str(d / "client.pem"), "-noout", "-text").stdout.decode()
    assert "TLS Web Client Authentication" in text


def test_issue_from_csr_and_import(token_env, tmp_path):
    key = tmp_path / "k.pem"
    assert openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)).returncode == 0
    csr = tmp_path / "r.pem"
    assert openssl("req", "-new", "-key", str(key), "-subj", "/CN=from-csr", "-out", str(csr)).returncode == 0
    token_env.cli("ca", "issue", "--ca-key", token_env.uri("ca"), "--ca-cert", "ca.pem", "--profile", "client",
                  "--csr", str(csr), "--days", "5", "--out", str(tmp_path / "c.pem"))
    assert openssl("verify", "-CAfile", str(token_env.dir / "ca.pem"), str(tmp_path / "c.pem")).returncode == 0
    out = token_env.cli("token", "import", "--object", "migrated", str(key)).stdout
    assert token_env.uri("migrated") in out
    listing = token_env.cli("token", "list").stdout
    line = next(ln for ln in listing.splitlines() if token_env.uri("migrated") in ln)
    assert "sensitive=yes" in line and "extractable=no" in line


def test_private_keys_are_sensitive_and_never_read(token_env):
    from pkcs11 import Attribute, ObjectClass
    from pkcs11 import exceptions as p11e

    key = TokenKey(token_env.uri("server"), pin=PIN, pool_size=1)
    try:
        with key.pool.session() as w:
            priv = key._private(w)
            assert priv[Attribute.SENSITIVE] is True
            assert priv[Attribute.EXTRACTABLE] is False
            assert priv[Attribute.NEVER_EXTRACTABLE] is True
            with pytest.raises(p11e.AttributeSensitive):
                priv[Attribute.PRIVATE_EXPONENT]
            (ir,) = w.session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY,
                                           Attribute.LABEL: "server-implicit-rejection"})
            assert ir[Attribute.SENSITIVE] is True and ir[Attribute.EXTRACTABLE] is False
    finally:
        key.close()
    # and no code of ours reads a secret attribute (import only writes them)
    secret = r"(PRIVATE_EXPONENT|PRIME_1|PRIME_2|EXPONENT_1|EXPONENT_2|COEFFICIENT|Attribute\.VALUE\b)"
    read = re.compile(r"\[\s*(Attribute\.)?" + secret + r"\s*\]|get_attribute\w*\([^)]*" + secret)
    for path in list((REPO / "hsm").rglob("*.py")) + list((REPO / "host").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            assert not read.search(line), f"{path}:{n} reads a secret attribute: {line.strip()}"


# --- handshakes with token keys ------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_server(token_env):
    log: list[str] = []
    cfg = server_config(str(token_env.dir / "server.pem"), str(token_env.dir / "ca.pem"), "optional")
    key = TokenKey(token_env.uri("server"), pin=PIN, pool_size=4)
    srv = TLSServer(cfg, key, out=log.append)
    with BackgroundServer(srv) as bg:
        bg.log = log
        bg.key = key
        yield bg
    key.close()


def _s_client(port: int, d: Path, *extra: str) -> str:
    proc = openssl("s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2", "-CAfile", str(d / "ca.pem"),
                   "-servername", "localhost", *extra, input=b"", timeout=30)
    return proc.stdout.decode(errors="replace")


@pytest.mark.parametrize(
    "cipher",
    ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
     "AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA256", "AES128-SHA"],
)
def test_openssl_s_client_against_token_server(token_env, token_server, cipher):
    out = _s_client(token_server.port, token_env.dir, "-cipher", cipher)
    assert f"Cipher is {cipher}" in out and "Verify return code: 0 (ok)" in out


def test_mutual_auth_with_client_key_in_token(token_env, token_server):
    proc = token_env.cli("connect", f"127.0.0.1:{token_server.port}", "--ca", "ca.pem", "--cert", "client.pem",
                         "--key", token_env.uri("client"), "--send", "hi\\n", "--until", "hi")
    assert "peer: CN=localhost" in proc.stdout and "received: hi" in proc.stdout
    _wait_for_log(token_server, "client=CN=token client")


def test_openssl_client_certificate_against_token_server(token_env, token_server, tmp_path):
    # openssl cannot use the token's client key without an engine; a PEM client key
    # signed by the token CA shows the token CA's chain is accepted
    key = tmp_path / "k.pem"
    openssl("genpkey", "-algorithm", "RSA", "-out", str(key))
    csr = tmp_path / "r.pem"
    openssl("req", "-new", "-key", str(key), "-subj", "/CN=openssl client", "-out", str(csr))
    token_env.cli("ca", "issue", "--ca-key", token_env.uri("ca"), "--ca-cert", "ca.pem", "--profile", "client",
                  "--csr", str(csr), "--days", "5", "--out", str(tmp_path / "c.pem"))
    out = _s_client(token_server.port, token_env.dir, "-cert", str(tmp_path / "c.pem"), "-key", str(key))
    assert "Verify return code: 0 (ok)" in out
    _wait_for_log(token_server, "client=CN=openssl client")


def test_python_ssl_default_client(token_env, token_server):
    import socket
    import ssl

    ctx = ssl.create_default_context(cafile=str(token_env.dir / "ca.pem"))
    with socket.create_connection(("127.0.0.1", token_server.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.version() == "TLSv1.2"
            s.sendall(b"py")
            assert s.recv(10) == b"py"


# --- faults: error, then operate correctly ----------------------------------------------------


def _handshake(token_env, port: int) -> None:
    cc = client_config(str(token_env.dir / "ca.pem"), "localhost")
    c = TLSClient("127.0.0.1", port, cc, timeout=10)
    try:
        c.handshake()
    finally:
        c.close()


def _wait_for_log(server, text: str, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not any(text in line for line in server.log):
        assert time.monotonic() < deadline, f"{text!r} not in server log: {server.log}"
        time.sleep(0.02)


def test_session_invalidated_then_next_handshake_works(token_env, token_server):
    key = token_server.key
    _handshake(token_env, token_server.port)
    # kill every idle worker session behind the pool's back
    workers = []
    while not key.pool._idle.empty():
        workers.append(key.pool._idle.get_nowait())
    for w in workers:
        w.session.close()
        key.pool._idle.put(w)
    with pytest.raises(TLSFailure, match="internal_error"):
        _handshake(token_env, token_server.port)
    _wait_for_log(token_server, "SessionHandleInvalid")
    for _ in range(len(workers)):  # each broken worker fails once, then is replaced
        try:
            _handshake(token_env, token_server.port)
            break
        except TLSFailure:
            pass
    _handshake(token_env, token_server.port)
    assert key.pool.reopened >= 1


def test_token_logged_out_then_next_handshake_works(token_env, token_server):
    key = token_server.key
    _handshake(token_env, token_server.port)
    key.pool._login.close()  # C_Logout: every session of this process loses the login
    with pytest.raises(TLSFailure, match="internal_error"):
        _handshake(token_env, token_server.port)
    _handshake(token_env, token_server.port)


def _serve_cli(token_env, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hsmtls", "serve", "--port", "0", "--cert", "server.pem", *args],
        capture_output=True, text=True, env=env or token_env.env, cwd=token_env.dir, timeout=30,
    )


def test_wrong_pin_is_one_line_at_startup(token_env):
    proc = _serve_cli(token_env, "--key", token_env.uri("server"), env=dict(token_env.env, HSMTLS_PIN="0000"))
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "wrong PIN" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_module_is_one_line_at_startup(token_env):
    proc = _serve_cli(token_env, "--key", token_env.uri("server"), "--module", "/nonexistent/libp11.so")
    assert proc.returncode == 1 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    proc = _serve_cli(token_env, "--key", "pkcs11:token=nosuch;object=server;type=private")
    assert proc.returncode == 1 and "no token labelled 'nosuch'" in proc.stderr


def test_missing_pin_is_one_line(token_env):
    env = {k: v for k, v in token_env.env.items() if k != "HSMTLS_PIN"}
    proc = subprocess.run([sys.executable, "-m", "hsmtls", "serve", "--port", "0", "--cert", "server.pem",
                           "--key", token_env.uri("server")], capture_output=True, text=True, env=env,
                          cwd=token_env.dir, timeout=30, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1 and "HSMTLS_PIN" in proc.stderr


# --- the premaster countermeasure with the token key ------------------------------------------------


def test_same_bad_ciphertext_same_substitute(token_env):
    key = TokenKey(token_env.uri("server"), pin=PIN, pool_size=1)
    try:
        bad = (12345).to_bytes(key.k, "big")
        a, b = key.decrypt_premaster(bad), key.decrypt_premaster(bad)
        assert a == b and a[0] == 0 and len(a[1]) == 48 and len(a[2]) == 46
        other = key.decrypt_premaster((54321).to_bytes(key.k, "big"))
        assert other != a
    finally:
        key.close()


@pytest.mark.parametrize("kind", ["bad-padding", "short", "long", "wrong-version", "wrong-key", "zero", "above-n"])
def test_bad_premaster_fails_at_finished_like_a_wrong_key(token_env, kind, monkeypatch):
    from tlscore import constants as C

    from support.engine_pair import bad_premaster_alerts

    key = TokenKey(token_env.uri("server"), pin=PIN, pool_size=1)
    try:
        rsa_kx = ["TLS_RSA_WITH_AES_128_GCM_SHA256"]
        sc = server_config(str(token_env.dir / "server.pem"), ciphers=rsa_kx)
        cc = client_config(str(token_env.dir / "ca.pem"), "localhost", ciphers=rsa_kx)
        after_cke, closed, client_alerts = bad_premaster_alerts(cc, sc, key, kind, monkeypatch)
        assert after_cke == b""  # no alert at the key exchange
        assert closed is not None and closed.local and closed.alert == C.BAD_RECORD_MAC
        assert client_alerts == [C.BAD_RECORD_MAC]
    finally:
        key.close()


# --- CLI: token init, workers ----------------------------------------------------------------


def test_token_init_cli_writes_its_own_softhsm_conf(token_env, tmp_path):
    env = {k: v for k, v in token_env.env.items() if k != "SOFTHSM2_CONF"}
    proc = token_env.cli("token", "init", "--label", "fresh", "--softhsm-dir", str(tmp_path / "store"), env=env)
    conf = tmp_path / "store" / "softhsm2.conf"
    assert f"export SOFTHSM2_CONF={conf}" in proc.stdout and "export HSMTLS_TOKEN=fresh" in proc.stdout
    env2 = dict(env, SOFTHSM2_CONF=str(conf), HSMTLS_TOKEN="fresh")
    out = token_env.cli("token", "keygen", "--object", "k1", env=env2).stdout
    assert "pkcs11:token=fresh;object=k1;type=private" in out
    # a second token with the same label is refused, in one line
    again = token_env.cli("token", "init", "--label", "fresh", "--softhsm-dir", str(tmp_path / "store"),
                          env=env, check=False)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_token_init_writes_the_so_pin_file_0600_from_the_start(token_env, tmp_path):
    # under umask 0 a file written first and chmod'ed after would exist 0666 for a while
    env = {k: v for k, v in token_env.env.items() if k not in ("SOFTHSM2_CONF", "HSMTLS_SO_PIN")}
    store = tmp_path / "store"

    # chmod refused: the file must not need it
    no_chmod = ("import os, pathlib, sys\n"
                "def refuse(*a, **k): raise SystemExit('chmod called on ' + str(a[0]))\n"
                "os.chmod = pathlib.Path.chmod = refuse\n"
                "from hsmtls.cli import main\n"
                "sys.argv[0] = 'hsmtls'; main()\n")

    def init(label: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", no_chmod, "token", "init", "--label", label,
                               "--softhsm-dir", str(store)], capture_output=True, text=True, env=env,
                              timeout=60, preexec_fn=lambda: os.umask(0))

    proc = init("sopin")
    assert proc.returncode == 0, proc.stderr
    so_file = store / "sopin.so-pin"
    assert f"SO PIN written to {so_file}" in proc.stdout
    assert (so_file.stat().st_mode & 0o777) == 0o600 and len(so_file.read_text().strip()) == 16
    # an SO PIN kept before is never overwritten; a refused init leaves no file behind
    pin = so_file.read_text()
    again = init("sopin")
    assert again.returncode == 1 and "already exists" in again.stderr and so_file.read_text() == pin
    so_file.rename(store / "kept")
    (store / "sopin2.so-pin").write_text("someone else's\n")
    clash = init("sopin2")
    assert clash.returncode == 1 and "sopin2.so-pin exists" in clash.stderr
    assert (store / "sopin2.so-pin").read_text() == "someone else's\n"


def test_token_init_refuses_a_real_token_without_force(token_env, tmp_path):
    real = next((p for p in ("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
                             "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so") if Path(p).exists()), None)
    if real is None:
        pytest.skip("OpenSC not installed")
    proc = token_env.cli("token", "init", "--label", "x", "--module", real, "--softhsm-dir", str(tmp_path),
                         check=False)
    assert proc.returncode == 1 and "--force" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_serve_workers_share_the_port(token_env):
    proc = subprocess.Popen(
        [sys.executable, "-m", "hsmtls", "serve", "--port", "0", "--workers", "2", "--cert", "server.pem",
         "--key", token_env.uri("server")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=token_env.env, cwd=token_env.dir,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        for _ in range(6):
            _handshake(token_env, port)
    finally:
        proc.terminate()
        proc.wait(10)


# --- revocation: a CRL signed in the token --------------------------------------------------------


def test_revoked_client_certificate_is_refused(token_env, tmp_path):
    d = token_env.dir
    for name in ("revoked", "kept"):
        token_env.cli("ca", "issue", "--ca-key", token_env.uri("ca"), "--ca-cert", "ca.pem", "--profile", "client",
                      "--public-key", token_env.uri("client", "public"), "--subject", f"CN={name}",
                      "--days", "5", "--out", str(tmp_path / f"{name}.pem"))
    crl = tmp_path / "crl.pem"
    token_env.cli("ca", "crl", "--ca-key", token_env.uri("ca"), "--ca-cert", "ca.pem",
                  "--revoke", str(tmp_path / "revoked.pem"), "--out", str(crl))
    proc = openssl("crl", "-in", str(crl), "-CAfile", str(d / "ca.pem"), "-noout")
    assert proc.returncode == 0 and b"verify OK" in proc.stdout + proc.stderr
    server = subprocess.Popen(
        [sys.executable, "-m", "hsmtls", "serve", "--port", "0", "--workers", "1", "--cert", "server.pem",
         "--key", token_env.uri("server"), "--client-ca", "ca.pem", "--crl", str(crl)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=token_env.env, cwd=d,
    )
    try:
        line = server.stdout.readline()
        assert line.startswith("listening on"), line + server.stdout.read()
        port = line.strip().rsplit(":", 1)[1]
        bad = token_env.cli("connect", f"127.0.0.1:{port}", "--ca", "ca.pem", "--cert", str(tmp_path / "revoked.pem"),
                            "--key", token_env.uri("client"), check=False)
        assert bad.returncode == 1 and "certificate_revoked" in bad.stderr
        good = token_env.cli("connect", f"127.0.0.1:{port}", "--ca", "ca.pem", "--cert", str(tmp_path / "kept.pem"),
                             "--key", token_env.uri("client"))
        assert "peer: CN=localhost" in good.stdout
    finally:
        server.terminate()
        out = server.communicate(timeout=10)[0]
    assert "is revoked by its CA" in out


def test_crl_from_another_ca_is_refused_at_startup(token_env, tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    from hsmtls import devpki

    k = devpki.new_key()
    other = devpki.make_ca(k, "some other CA")
    now = datetime.datetime.now(datetime.timezone.utc)
    crl = (x509.CertificateRevocationListBuilder().issuer_name(other.subject).last_update(now)
           .next_update(now + datetime.timedelta(days=1)).sign(k, hashes.SHA256()))
    (tmp_path / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    proc = _serve_cli(token_env, "--key", token_env.uri("server"), "--client-ca", "ca.pem",
                      "--crl", str(tmp_path / "crl.pem"))
    assert proc.returncode == 1 and "not one of the CAs given" in proc.stderr and "Traceback" not in proc.stderr
