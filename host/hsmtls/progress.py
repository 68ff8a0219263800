"""Progress for long operations: a spinner (or a bar) on stderr when it is a terminal,
one plain line otherwise, so logs and pipes stay clean."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def _console() -> Console:
    return Console(stderr=True)


@contextmanager
def status(message: str) -> Iterator[None]:
    if sys.stderr.isatty():
        with _console().status(message):
            yield
    else:
        print(message, file=sys.stderr, flush=True)
        yield


@contextmanager
def steps(total: int, label: str) -> Iterator:
    """A bar over `total` steps; yields advance(description) to call after each."""
    if not sys.stderr.isatty():
        yield lambda description="": None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_console(), transient=True) as p:
        task = p.add_task(label, total=total)
        yield lambda description="": p.update(task, advance=1, description=f"{label} {description}".strip())
