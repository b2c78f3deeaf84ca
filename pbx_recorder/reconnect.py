"""Staying connected to the PBX: the reconnect loop the AMI and ESL connections share.

:func:`backoff_delay` is pure (exponential, capped, with jitter); :func:`keep_connected` runs a
connection's session, and after it ends or fails waits that delay and runs it again, until the
owner closes.  The log lines go to the owner's logger (``ami.client``, ``esl.connection``), so an
admin filtering by adapter still sees them there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


def backoff_delay(attempt: int, minimum: float, maximum: float, rnd: Callable[[], float]) -> float:
    """Delay before reconnect attempt ``attempt`` (0-based): ``min * 2**attempt`` capped at
    ``maximum``, then "equal jitter" (a uniform pick in the upper half) so a fleet of
    recorders does not reconnect in lock-step after an Asterisk restart."""
    base = min(maximum, minimum * 2.0 ** min(attempt, 30))
    return max(minimum / 2, base / 2 + base / 2 * rnd())


async def keep_connected(session: Callable[[], Awaitable[None]], drop: Callable[[str], None],
                         closing: Callable[[], bool], *, protocol: str, endpoint: str,
                         errors: tuple[type[BaseException], ...], log: logging.Logger,
                         backoff_min: float, backoff_max: float, rnd: Callable[[], float]) -> None:
    """Run ``session()`` until ``closing()``: a session that fails with one of ``errors`` is
    logged (a warning naming ``protocol`` and ``endpoint``), every end of a session is followed
    by ``drop("connection closed")``, and the next attempt waits :func:`backoff_delay` (back to
    the shortest delay after a session that ended without an error)."""
    attempt = 0
    while not closing():
        try:
            await session()
            attempt = 0
        except errors as exc:
            log.warning("%s %s: %s", protocol, endpoint, exc or type(exc).__name__)
        finally:
            drop("connection closed")
        if closing():
            break
        delay = backoff_delay(attempt, backoff_min, backoff_max, rnd)
        attempt += 1
        log.info("%s reconnect in %.2fs (attempt %d)", protocol, delay, attempt)
        await asyncio.sleep(delay)
