"""`hsmtls bench board --boards N`: how the time of a test suite falls with the number of
boards, one a pytest-xdist worker (emulated boards here; each worker starts its own
board, and the run's one throwaway token and token-backed servers serve them all, as
the pytest plugin does).

The suite is docs/examples/hil copied `copies` times (its tests, `copies` times over),
run with `pytest -n 1`, `-n 2`, ... `-n N`; each figure is the wall time of the whole
`pytest` run: start-up, the token, each worker's board and its provisioning, the tests.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "hil"


def make_suite(directory: Path, copies: int, source: Path = EXAMPLE) -> int:
    """The example's test modules `copies` times in `directory`; the number of modules."""
    directory.mkdir(parents=True, exist_ok=True)
    for f in source.iterdir():
        if f.is_file() and not f.name.startswith("test_"):
            shutil.copy(f, directory / f.name)
    modules = sorted(source.glob("test_*.py"))
    for i in range(copies):
        for m in modules:
            shutil.copy(m, directory / f"{m.stem}_{i}.py")
    return copies * len(modules)


def run(boards: int, copies: int = 4, echo: Callable[[str], None] = print, suite: Path | None = None) -> list[dict]:
    try:
        import xdist  # noqa: F401
    except ImportError:
        raise RuntimeError("pytest-xdist is not installed: pip install pytest-xdist") from None
    rows = []
    with tempfile.TemporaryDirectory(prefix="hsmtls_bench_boards_") as tmp:
        work = Path(tmp) / "suite"
        make_suite(work, copies, suite or EXAMPLE)
        echo(f"suite: {EXAMPLE.name} x{copies}, emulated boards, one a pytest-xdist worker")
        echo(f"{'boards':>6}  {'tests':>5}  {'wall s':>7}  {'speed-up':>8}")
        for n in range(1, boards + 1):
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(n)],
                                 cwd=work, capture_output=True, text=True, timeout=1800)
            wall = time.perf_counter() - t
            m = re.search(r"(\d+) passed", out.stdout)
            if out.returncode != 0 or not m:
                tail = "\n".join(out.stdout.strip().splitlines()[-5:])
                raise RuntimeError(f"the suite failed with {n} boards:\n{tail}")
            row = {"boards": n, "tests": int(m.group(1)), "wall_s": round(wall, 2)}
            row["speedup"] = round(rows[0]["wall_s"] / wall, 2) if rows else 1.0
            rows.append(row)
            echo(f"{n:>6}  {row['tests']:>5}  {wall:>7.2f}  {row['speedup']:>7.2f}x")
    return rows
