"""How far a long run over a file has got: a bar on a terminal, lines (done, rate, ETA) in a
log. The total is estimated from the file's size and the length of its first lines, so the
file is not read twice.

>>> clock = iter([0.0, 10.0, 20.0, 20.5, 30.0])
>>> with Lines("replayed", "transactions", 400, every_s=10, clock=lambda: next(clock)) as p:
...     p.update(100)
...     p.update(300)
...     p.update(310)  # half a second later: no line
...     p.update(600)  # more than estimated
replayed 100 of ~400 transactions (25%), 10/s, ETA 30s
replayed 300 of ~400 transactions (75%), 15/s, ETA 7s
replayed 600 of ~400 transactions (100%), 20/s, ETA 0s
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import typer

SAMPLE_BYTES = 1 << 20


def estimate_rows(path: Path) -> int:
    """Rows after the header, from the file's size and the length of its first megabyte's lines."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(SAMPLE_BYTES)
    lines = head.count(b"\n")
    if len(head) == size:
        return max(0, lines - 1 + (not head.endswith(b"\n") and bool(head)))
    return max(1, round(size * lines / len(head)) - 1)


def duration(seconds: float) -> str:
    """
    >>> duration(42.4), duration(125), duration(7322)
    ('42s', '2m05s', '2h02m')
    """
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Lines(AbstractContextManager):
    """A line at most every ``every_s``: what is done, its rate and the time left."""

    def __init__(self, verb: str, unit: str, total: int, every_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, emit: Callable[[str], Any] = typer.echo):
        self.verb, self.unit, self.total, self.every_s = verb, unit, max(1, total), every_s
        self.clock, self.emit = clock, emit
        self.began = clock()
        self.shown = -float("inf")

    def update(self, done: int) -> None:
        now = self.clock()
        if now - self.shown < self.every_s:
            return
        self.shown = now
        elapsed = now - self.began
        rate = done / elapsed if elapsed else 0.0
        eta = duration(max(0, self.total - done) / rate) if rate else "unknown"
        self.emit(f"{self.verb} {done:,} of ~{self.total:,} {self.unit} ({min(1.0, done / self.total):.0%}), "
                  f"{rate:,.0f}/s, ETA {eta}")

    def __exit__(self, *exc) -> None:
        return None


class Bar(AbstractContextManager):
    """click's progress bar (count, share, ETA) over the estimated total."""

    def __init__(self, verb: str, unit: str, total: int):
        self.bar: Any = typer.progressbar(length=max(1, total), label=f"{verb} ({unit})", show_pos=True)

    def __enter__(self) -> Bar:
        self.bar.__enter__()
        return self

    def update(self, done: int) -> None:
        self.bar.update(max(0, min(done, self.bar.length) - self.bar.pos))

    def __exit__(self, *exc) -> None:
        if exc[0] is None:  # done: the whole file, whatever the estimate said
            self.bar.update(self.bar.length - self.bar.pos)
        self.bar.__exit__(*exc)


def progress(verb: str, unit: str, path: Path) -> Bar | Lines:
    """The bar when stdout is a terminal, else lines (a log, a pipe, CI)."""
    total = estimate_rows(path)
    return Bar(verb, unit, total) if sys.stdout.isatty() else Lines(verb, unit, total)
