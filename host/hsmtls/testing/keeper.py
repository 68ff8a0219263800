"""`python -m hsmtls.testing.keeper OWNER_PID -- ARGV...`: runs ARGV for as long as the
process OWNER_PID lives.

A server shared by the workers of a pytest-xdist run is started by one worker but used
by all of them, so it must outlive that worker; the run's controller stops it at the
end (hsmtls.testing.shared). If the controller is killed first, nobody would: the keeper
notices within half a second and stops the server. SIGTERM stops both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from hsmtls.testing.shared import stop_process


def main(args: list[str]) -> int:
    try:
        owner = int(args[0])
        command = args[args.index("--") + 1:]
    except (IndexError, ValueError):
        print("usage: python -m hsmtls.testing.keeper OWNER_PID -- ARGV...", file=sys.stderr)
        return 2
    child = subprocess.Popen(command)

    def stop(*_: object) -> None:
        stop_process(child)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    while child.poll() is None:
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            stop()
        except PermissionError:
            pass
        time.sleep(0.5)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
