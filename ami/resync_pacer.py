"""Pace the resyncs the framing guard asks for: coalesced, at most one per interval.

A resync (``CoreShowChannels``, then one ``Getvar`` per PBXREC_* variable and live channel) costs
the PBX thousands of actions on a busy system.  The framing guard asks for one whenever it may
have dropped genuine events, and a caller decides when that happens (a blank line in a caller ID
cuts every event of its channel; a forged block without a Timestamp is dropped).  So asks are
never run one per ask: the first runs at once, the ones after it within :data:`MIN_INTERVAL`
seconds are coalesced into ONE run when the interval is over.  An ask is never lost: it stays
wanted until a resync starts after it (the paced one, or a (re)connect's own resync, which also
covers it), and a resync that fails is asked again (at the same pace).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("ami.client")

#: seconds between two resyncs asked by the framing guard (per connection)
MIN_INTERVAL = 30.0


class ResyncPacer:
    """``ask()`` from the read path; ``covered()`` when any resync starts (under its lock)."""

    def __init__(self, run: Callable[[], Awaitable[None]], ready: Callable[[], bool],
                 interval: float = MIN_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.run, self.ready, self.interval, self.clock = run, ready, interval, clock
        self.wanted = False  # asked and no resync started since
        self.runs = 0  # paced resyncs started
        self.coalesced = 0  # asks folded into a pending one
        self._last: float | None = None
        self._task: asyncio.Task[None] | None = None

    def delay(self) -> float:
        """Seconds until a paced resync may start (0: now)."""
        return 0.0 if self._last is None else max(0.0, self._last + self.interval - self.clock())

    def ask(self) -> None:
        if self.wanted:
            self.coalesced += 1
        self.wanted = True
        if not self.ready():
            return  # the (re)connect's own resync follows and covers it
        if self._task is None or self._task.done():
            try:
                self._task = asyncio.get_running_loop().create_task(self._loop())
            except RuntimeError:  # no loop running (a sans-IO caller): still wanted, started by the next ask
                return

    def covered(self) -> None:
        """A resync is starting: every ask before this moment is served by it."""
        self.wanted = False

    async def _loop(self) -> None:
        while self.wanted:
            delay = self.delay()
            if delay > 0:
                log.info("AMI: resync after a framing injection in %.1fs (asks coalesced)", delay)
                await asyncio.sleep(delay)
            if not self.ready():
                return  # the reconnect's resync covers it
            if not self.wanted:
                return  # a resync started meanwhile (e.g. a reconnect's) served it
            self._last, self.wanted = self.clock(), False
            self.runs += 1
            log.warning("AMI: resynchronizing the live channels after a framing injection")
            try:
                await self.run()
            except Exception:  # a failed resync must not end the session: asked again, paced
                log.exception("AMI resync after a framing injection failed")
                self.wanted = True
