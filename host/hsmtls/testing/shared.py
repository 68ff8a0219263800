"""What the processes of one pytest run share: the throwaway token and the token-backed
servers, made once and used by every pytest-xdist worker.

Under `pytest -n N` the controller (the process that runs no tests) makes a directory
for the run before it starts its workers and names it in $HSMTLS_PYTEST_SHARED (with its
own pid in $HSMTLS_PYTEST_OWNER); the workers inherit both. In the directory:

    softhsm/            the SoftHSM2 store: every worker's SOFTHSM2_CONF
    token/              the token's PEM files; token.json once the token is made
    servers/KEY.json    a server started for one set of options: process group, port, log

The first worker to need the token or a server makes it while it holds the directory's
lock (flock); the others wait for it, then use what it made. A server outlives the
worker that started it (another may still be using it) and stops when the run ends: the
controller stops every server listed there and removes the directory
(pytest_unconfigure), and a keeper beside each server (hsmtls.testing.keeper) stops it
if the controller dies without doing so.

Without xdist nothing is shared between processes: the token is the process's own and
a server is shared by the tests of that one process (hsmtls.testing.plugin).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENV_DIR = "HSMTLS_PYTEST_SHARED"
ENV_OWNER = "HSMTLS_PYTEST_OWNER"


def shared_dir() -> Path | None:
    """The run's shared directory, in a worker of a pytest-xdist run; else None."""
    d = os.environ.get(ENV_DIR)
    return Path(d) if d and Path(d).is_dir() else None


def owner_pid() -> int | None:
    pid = os.environ.get(ENV_OWNER, "")
    return int(pid) if pid.isdigit() else None


def begin_run() -> Path:
    """The controller, before its workers start: the run's directory, named in the
    environment the workers inherit."""
    d = Path(tempfile.mkdtemp(prefix="hsmtls-pytest-"))
    (d / "servers").mkdir()
    os.environ[ENV_DIR] = str(d)
    os.environ[ENV_OWNER] = str(os.getpid())
    return d


def end_run(d: Path) -> None:
    """The controller, after its workers have ended: every shared server stopped, the
    directory (the token's store with it) removed."""
    for record in sorted((d / "servers").glob("*.json")):
        try:
            pgid = json.loads(record.read_text())["pgid"]
        except (OSError, ValueError, KeyError):
            continue
        stop_group(pgid)
    shutil.rmtree(d, ignore_errors=True)
    for name in (ENV_DIR, ENV_OWNER):
        if os.environ.get(name) == (str(d) if name == ENV_DIR else str(os.getpid())):
            del os.environ[name]


@contextmanager
def locked(d: Path, name: str = "lock") -> Iterator[None]:
    """The directory's lock, held by one process of the run at a time."""
    with open(d / name, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def alive(pgid: int) -> bool:
    """Whether the process group's leader (a keeper) still runs: a zombie, which its
    parent has not reaped yet, does not."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pgid}/stat").read_text()
    except OSError:
        return True  # no /proc: what kill says
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def stop_group(pgid: int, wait: float = 5.0, leader: subprocess.Popen | None = None) -> None:
    """Terminate a process group (a keeper and its server), then kill what is left;
    `leader`: the keeper's Popen, when this process started it (and must reap it)."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if leader is not None and leader.poll() is not None or leader is None and not alive(pgid):
            return
        time.sleep(0.02)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if leader is not None:
        leader.wait()


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate (then kill) a helper process and close its output pipe."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout:
        proc.stdout.close()
