"""Run a script under the MicroPython unix port with firmware/lib on its path.

    from support.mp_run import run_mp, requires_micropython

    @requires_micropython
    @pytest.mark.micropython
    def test_x():
        out = run_mp("from tlscore import suites\\nprint(len(suites.ALL))")
        assert out.strip() == "4"

run_mp(script_text, timeout=60, heapsize=None) -> the script's stdout (str).
    One interpreter per call (about 30 ms to start), so batch checks into one script
    and print results (hex for bytes) for the test to parse. heapsize ("64k", "1m" or an
    int of bytes) becomes `-X heapsize=`, to test a memory budget. Raises MPError, with
    the exit code, stdout and stderr, if the script fails: MicroPython prints uncaught
    tracebacks on stdout, so both are shown. The path is MICROPYPATH=".frozen:<repo>/
    firmware/lib": ".frozen" keeps the built-in frozen modules (asyncio) importable;
    ~/.micropython/lib is left out so that nothing installed locally leaks in.

The interpreter is $MICROPYTHON if set, else `micropython` on PATH.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from support.required_tools import require_tool, requires_tool, tool_path

REPO = Path(__file__).resolve().parents[2]
FIRMWARE_LIB = REPO / "firmware" / "lib"
MICROPYTHON = tool_path("micropython")  # $MICROPYTHON, else `micropython` on PATH

requires_micropython = requires_tool("micropython")  # skipped without it, failed under $CI


class MPError(AssertionError):
    pass


def run_mp(script_text: str, timeout: float = 60, heapsize: str | int | None = None) -> str:
    if MICROPYTHON is None:
        require_tool("micropython")
    env = dict(os.environ)
    env["MICROPYPATH"] = ".frozen:" + str(FIRMWARE_LIB)
    args = [MICROPYTHON]
    if heapsize is not None:
        args += ["-X", "heapsize=%s" % heapsize]
    # a file, not -c: no argv length limit, and tracebacks name real line numbers
    with tempfile.TemporaryDirectory(prefix="mp_run_") as tmp:
        script = Path(tmp) / "script.py"
        script.write_text(script_text)
        try:
            proc = subprocess.run(
                args + [str(script)],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                cwd=tmp,
            )
        except subprocess.TimeoutExpired as e:
            raise MPError(
                "micropython timed out after %ss\n--- stdout ---\n%s\n--- stderr ---\n%s"
                % (timeout, e.stdout, e.stderr)
            ) from None
    if proc.returncode != 0:
        raise MPError(
            "micropython exited with %d\n--- stdout ---\n%s\n--- stderr ---\n%s"
            % (proc.returncode, proc.stdout, proc.stderr)
        )
    return proc.stdout
