"""hsmtls.bench.nginx without running nginx: the generated config, the failure reasons
read from nginx's and openssl s_server's logs, and a missing nginx skipping its rows."""

from __future__ import annotations

from pathlib import Path

from hsmtls.bench import nginx as bench_nginx
from hsmtls.bench import server as bench
from hsmtls.bench.nginx import failure_reason, nginx_argv, nginx_conf


def test_conf_matches_our_workers_and_the_cells_suite(tmp_path):
    conf = nginx_conf(tmp_path, 4433, 3, tmp_path / "c.pem", str(tmp_path / "k.pem"), "AES128-GCM-SHA256",
                      engine=False, root=False)
    assert "worker_processes 3;" in conf
    assert "ssl_protocols TLSv1.2;" in conf and "ssl_ciphers AES128-GCM-SHA256;" in conf
    assert "listen 127.0.0.1:4433 ssl;" in conf
    assert "ssl_session_tickets off;" in conf and "ssl_engine" not in conf and "user " not in conf
    # nothing outside the prefix: pid, logs, temp paths
    for directive in ("pid ", "error_log ", "access_log ", "_temp_path "):
        lines = [ln for ln in conf.splitlines() if directive in ln]
        assert lines and all(str(tmp_path.resolve()) in ln for ln in lines), directive
    argv = nginx_argv("/usr/sbin/nginx", tmp_path)
    assert argv[-2:] == ["-g", "daemon off;"] and f"{tmp_path.resolve()}/nginx.conf" in argv


def test_engine_conf_initialises_the_engine_and_keeps_the_pin_off(tmp_path):
    key = "engine:pkcs11:pkcs11:token=bench;object=server;type=private?pin-source=file:/tmp/pin"
    conf = nginx_conf(tmp_path, 1, 2, tmp_path / "c.pem", key, "ECDHE-RSA-AES128-GCM-SHA256",
                      engine=True, root=True)
    assert "ssl_engine pkcs11;" in conf and f'ssl_certificate_key "{key}";' in conf
    assert "env SOFTHSM2_CONF;" in conf and "user root;" in conf and "pin-value" not in conf


def test_failure_reason_from_nginx_and_s_server_logs():
    nginx = ("2024/05/01 10:00:00 [notice] 7#7: start worker processes\n"
             "2024/05/01 10:00:01 [crit] 9#9: *3 SSL_do_handshake() failed (SSL: error:02000090:rsa routines::"
             "illegal or unsupported padding mode error:03000093:digital envelope routines::command not supported "
             "error:0A000093:SSL routines::decryption failed) while SSL handshaking, client: 127.0.0.1, server: x\n")
    assert failure_reason(nginx) == ("illegal or unsupported padding mode; command not supported; "
                                     "decryption failed")
    s_server = ("40A7:error:0A000126:SSL routines:ssl3_read_n:unexpected eof while reading:ssl/record/rec_layer_s3.c:1:\n"
                "40A7:error:02000090:rsa routines:pkey_rsa_ctrl:illegal or unsupported padding mode:crypto/rsa/x.c:4:\n")
    assert failure_reason(s_server) == "illegal or unsupported padding mode"  # the probe's hang-up skipped
    assert failure_reason("2024/05/01 10:00:01 [alert] 7#7: worker process 9 exited on signal 11\n") == \
        "worker process 9 exited on signal 11"
    assert failure_reason("2024/05/01 10:00:01 [notice] 7#7: exiting\n") is None


def test_missing_nginx_skips_its_rows_and_says_how_to_install(monkeypatch, tmp_path):
    class Setup:
        def __init__(self, d: Path) -> None:
            self.pem_cert = self.pem_key = self.token_cert = self.pin_file = self.ca_pem = d / "x"
            self.key_uri, self.env = "pkcs11:object=server", {}

    seen: list[str] = []
    monkeypatch.setattr(bench, "BenchSetup", Setup)
    monkeypatch.setattr(bench_nginx, "nginx_path", lambda: None)
    monkeypatch.setattr(bench, "_run_rows", lambda rows, *a: seen.extend(r.id for r in rows) or {})
    lines: list[str] = []
    data = bench.bench_server([1], 0.1, 2, lines.append)
    assert bench_nginx.MISSING in lines and bench_nginx.MISSING in data["notes"]
    assert "apt install nginx" in bench_nginx.MISSING
    assert seen and not any(r.startswith("nginx-") for r in seen)
    assert {"hsmtls-pem-rsa", "hsmtls-token-ecdhe", "s_server-pem-rsa"} <= set(seen)
