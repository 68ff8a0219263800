"""nginx as a yardstick for `hsmtls bench server`: the server a user would pick instead.

nginx runs from a config generated into a throwaway prefix (pid, logs and temp paths
all inside it, nothing in /etc or /var), in the foreground, with `worker_processes`
equal to our `--workers`, TLS 1.2 only and the one suite the cell measures. The key is
a PEM file, or the token key through libp11's OpenSSL engine, whose PIN comes from the
URI's pin-source file and never from a command line. A cell nginx cannot serve is
reported with the reason from its error log (`failure_reason`), not as a crash.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

MISSING = "nginx rows skipped: nginx is not installed (apt install nginx)"


def nginx_path() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def nginx_conf(prefix: Path, port: int, workers: int, cert: Path, key: str, cipher: str, *,
               engine: bool, root: bool, resume: bool = False) -> str:
    """The config text; `key` is a PEM path, or `engine:pkcs11:<pkcs11 URI>` with `engine`."""
    p = prefix.resolve()
    lines = [
        f"worker_processes {workers};",
        f"pid {p}/nginx.pid;",
        f"error_log {p}/error.log notice;",
        # workers start with an empty environment: SoftHSM2 finds its token store through this
        "env SOFTHSM2_CONF;",
    ]
    if root:
        # as root nginx would drop its workers to `nobody`, who cannot read the token's
        # files; our server keeps the caller's user, so nginx does too
        lines.append("user root;")
    if engine:
        # an `engine:` key is loaded through ENGINE_by_id, which does not initialise the
        # engine: ssl_engine does (and makes it the default for the token key's operations)
        lines.append("ssl_engine pkcs11;")
    lines += [
        "events { worker_connections 4096; }",
        "http {",
        f"    access_log {p}/access.log;",
        *(f"    {t}_temp_path {p}/{t}_temp;" for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")),
        "    server {",
        f"        listen 127.0.0.1:{port} ssl;",
        f'        ssl_certificate "{cert.resolve()}";',
        f'        ssl_certificate_key "{key}";',
        "        ssl_protocols TLSv1.2;",
        f"        ssl_ciphers {cipher};",
        # full handshakes: no session cache and no tickets to resume from; resumed ones:
        # the cache shared by the workers and tickets, as a tuned nginx runs
        *(["        ssl_session_cache shared:SSL:10m;", "        ssl_session_tickets on;"] if resume else
          ["        ssl_session_cache off;", "        ssl_session_tickets off;"]),
        '        return 200 "ok\\n";',
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def nginx_argv(nginx: str, prefix: Path) -> list[str]:
    p = prefix.resolve()
    # -e: the error log before the config is read (else the compiled-in /var/log/nginx)
    return [nginx, "-p", f"{p}/", "-e", f"{p}/error.log", "-c", f"{p}/nginx.conf", "-g", "daemon off;"]


_OPENSSL_ERROR = re.compile(r"error:[0-9A-Fa-f]{8}:[^:]*:[^:]*:([^:()]+?)(?=\s+error:|\)|:|$)")
_LEVEL = re.compile(r"\[(emerg|alert|crit|error)\]")
# a client hanging up (the readiness probe, the load generator stopping) is no server failure
_CLIENT_SIDE = {"unexpected eof while reading"}


def failure_reason(log_text: str) -> str | None:
    """The first error a server logged, as the OpenSSL/PKCS#11 reasons it gave
    ("illegal or unsupported padding mode; decryption failed"), else the line itself.
    Reads nginx's error log and `openssl s_server`'s output alike; client hang-ups
    are skipped."""
    for line in log_text.splitlines():
        if not (_LEVEL.search(line) or "error:" in line):
            continue
        found = [m.strip() for m in _OPENSSL_ERROR.findall(line)]
        reasons = [r for r in dict.fromkeys(found) if r not in _CLIENT_SIDE]
        if found and not reasons:
            continue
        if reasons:
            return "; ".join(reasons[:3])
        m = _LEVEL.search(line)
        if m:
            return re.sub(r"^\d+#\d+: (\*\d+ )?", "", line[m.end():].strip()).split(", client:")[0]
    return None
