"""A small progress reporter for whole-catalog commands, on stderr.

Silent unless stderr is a terminal or ``--progress`` forced it (a cron job's mail or a
pipe gets no carriage-return noise); at most one line every ``every`` seconds, so a run
over millions of rows costs nothing here.  Standard output stays the command's result.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    def __init__(self, label: str, total: int | None = None, *, enabled: bool | None = None,
                 stream: TextIO | None = None, every: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.label, self.total, self.enabled = label, total, enabled
        self.done, self.every, self.clock = 0, every, clock
        self.extra = ""
        self._start = clock()
        self._shown = -every

    def advance(self, n: int = 1, extra: str = "") -> None:
        self.done += n
        if extra:
            self.extra = extra
        if self.enabled and self.clock() - self._shown >= self.every:
            self._show("\r")

    def _show(self, end: str) -> None:
        self._shown = self.clock()
        elapsed = max(self._shown - self._start, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        pct = f" {100.0 * self.done / self.total:5.1f}%" if self.total else ""
        rate = self.done / elapsed
        extra = f"  {self.extra}" if self.extra else ""
        self.stream.write(f"{end}{self.label}: {self.done}{of}{pct}  {rate:,.0f}/s  {elapsed:,.0f} s{extra}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._show("\r")
            self.stream.write("\n")
            self.stream.flush()


def reporter(label: str, total: int | None = None, force: bool = False) -> Progress:
    """Shown on a terminal; ``force`` (``--progress``) shows it on any stderr."""
    return Progress(label, total, enabled=True if force else None)
