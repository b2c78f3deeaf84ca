"""Know a recording file is closed before touching it.

Asterisk sends no MixMonitorStop on a plain hang-up and the Cdr event may come
before the file is closed (see asterisk-facts).  Two signals:

1. ``<path>.closed``: the marker MixMonitor's post-command writes once it closed the file.
2. Fallback: size and mtime unchanged for ``stable_ms`` across polls.

Both are bounded by ``closure_timeout_s``.  :class:`ClosureTracker` is the decision
logic fed with observations (no sleeping, no clock); :func:`wait_closed` drives it
with ``os.stat`` and ``asyncio.sleep`` (both injectable).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

MARKER_SUFFIX = ".closed"

# outcomes
CLOSED_MARKER = "marker"  # post-command marker seen
CLOSED_STABLE = "stable"  # size/mtime stable long enough
STILL_CHANGING = "timeout"  # still changing at the bound: used anyway, flagged "closure_timeout"
FILE_MISSING = "file_missing"  # no file at the bound (or marker without file)


def marker_path(path: str | Path) -> Path:
    return Path(f"{path}{MARKER_SUFFIX}")


@dataclass(frozen=True, slots=True)
class FileState:
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class Closure:
    path: str
    outcome: str
    size: int = 0
    waited_s: float = 0.0

    @property
    def usable(self) -> bool:
        return self.outcome != FILE_MISSING

    @property
    def flag(self) -> str:
        """Flag for the manifest, '' when cleanly closed."""
        return {STILL_CHANGING: "closure_timeout", FILE_MISSING: "file_missing"}.get(self.outcome, "")


class ClosureTracker:
    """Feed ``observe(now, state, marker)`` until it returns a :class:`Closure`."""

    def __init__(self, path: str, *, started: float, stable_ms: int = 2000,
                 closure_timeout_s: float = 30.0) -> None:
        self.path = path
        self.started = started
        self.stable_s = stable_ms / 1000.0
        self.timeout_s = closure_timeout_s
        self._last: FileState | None = None
        self._since = started

    def observe(self, now: float, state: FileState | None, marker: bool) -> Closure | None:
        waited = now - self.started
        if marker:
            if state is None:
                return Closure(self.path, FILE_MISSING, 0, waited)
            return Closure(self.path, CLOSED_MARKER, state.size, waited)
        if state != self._last:
            self._last, self._since = state, now
        elif state is not None and now - self._since >= self.stable_s:
            return Closure(self.path, CLOSED_STABLE, state.size, waited)
        if waited >= self.timeout_s:
            if state is None:
                return Closure(self.path, FILE_MISSING, 0, waited)
            return Closure(self.path, STILL_CHANGING, state.size, waited)
        return None


def stat_file(path: str | Path) -> FileState | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return FileState(st.st_size, st.st_mtime_ns)


async def wait_closed(path: str | Path, *, stable_ms: int = 2000, closure_timeout_s: float = 30.0,
                      poll_ms: int = 250, clock: Callable[[], float] = time.monotonic,
                      stat: Callable[[str | Path], FileState | None] = stat_file,
                      sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> Closure:
    """Poll until ``path`` is known closed, or the bound is reached."""
    tracker = ClosureTracker(str(path), started=clock(), stable_ms=stable_ms,
                             closure_timeout_s=closure_timeout_s)
    marker = marker_path(path)
    while True:
        result = tracker.observe(clock(), stat(path), stat(marker) is not None)
        if result is not None:
            return result
        await sleep(poll_ms / 1000.0)
