"""Event-loop lag: how late the daemon's loop runs a callback that was due.

A task sleeps ``interval_s`` and measures how much later than asked it woke up; that overshoot
is the time every other coroutine (a consent session waiting for its socket, an ESL reply) also
waited.  Every ``report_s`` one line is logged (max and p99 of the window) when the window saw
any lag above ``warn_ms``; the last window's figures and the worst lag since start are kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def window_stats(lags_ms: list[float]) -> tuple[float, float]:
    """(p99, max) of one window; (0, 0) for an empty one."""
    if not lags_ms:
        return 0.0, 0.0
    ordered = sorted(lags_ms)
    return ordered[min(len(ordered) - 1, int(0.99 * (len(ordered) - 1) + 0.5))], ordered[-1]


class LoopLagMonitor:
    def __init__(
        self,
        *,
        interval_s: float = 0.01,
        report_s: float = 5.0,
        warn_ms: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s, self.report_s, self.warn_ms = interval_s, report_s, warn_ms
        self.clock = clock
        self.last_p99_ms = 0.0
        self.last_max_ms = 0.0
        self.worst_ms = 0.0  # since start

    async def run(self, stop: asyncio.Event) -> None:
        window: list[float] = []
        started = self.clock()
        while not stop.is_set():
            asked = self.clock()
            await asyncio.sleep(self.interval_s)
            lag_ms = max(0.0, (self.clock() - asked - self.interval_s) * 1000)
            window.append(lag_ms)
            self.worst_ms = max(self.worst_ms, lag_ms)
            if self.clock() - started >= self.report_s:
                self.last_p99_ms, self.last_max_ms = window_stats(window)
                if self.last_max_ms > self.warn_ms:
                    log.info(
                        "event loop lag over %.0f s: p99 %.1f ms, max %.1f ms (%d samples)",
                        self.report_s, self.last_p99_ms, self.last_max_ms, len(window),
                    )
                window, started = [], self.clock()
