"""Progress that stays readable in a log: tqdm's bar in a terminal, one plain line every few seconds elsewhere.

In a CI log or a file tqdm writes thousands of carriage-return updates that show up as one huge line;
:class:`LineProgress` prints ``desc: step/total (pct), rate, postfix`` at most every ``interval`` seconds and once
at the end, with the same ``update`` / ``set_postfix`` / ``close`` calls as a tqdm bar.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any


class LineProgress:
    def __init__(self, total: int, initial: int = 0, desc: str = "", unit: str = "step", interval: float = 30.0,
                 file: IO[str] | None = None, clock: Callable[[], float] = time.monotonic, final: bool = True) -> None:
        self.final = final  # a last line at close (a caller that prints its own summary says False)
        self.total, self.n, self.desc, self.unit, self.interval = total, initial, desc, unit, interval
        self.file = file if file is not None else sys.stderr
        self.clock = clock
        self.start_n, self.t0 = initial, clock()
        self.last = self.t0
        self.postfix: dict[str, Any] = {}
        self.closed = False

    def line(self) -> str:
        elapsed = max(self.clock() - self.t0, 1e-9)
        pct = 100.0 * self.n / self.total if self.total else 100.0
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        return f"{self.desc}: {self.n}/{self.total} {self.unit}s ({pct:.1f} %), {(self.n - self.start_n) / elapsed:.1f} {self.unit}s/s{extra}"

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            print(self.line(), file=self.file, flush=True)

    def set_postfix(self, **kw: Any) -> None:
        self.postfix = kw

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.final:
                print(self.line(), file=self.file, flush=True)


def progress(total: int, initial: int = 0, desc: str = "", unit: str = "step", enabled: bool = True,  # type: ignore[no-untyped-def]
             final: bool = True):
    """A tqdm bar on an interactive terminal, :class:`LineProgress` otherwise, nothing when disabled."""
    from tqdm import tqdm

    if not enabled or sys.stderr.isatty():
        return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit=unit)
    return LineProgress(total, initial, desc, unit, final=final)
