"""Reconnect delays: exponential, capped, with jitter (pure)."""

from __future__ import annotations

from collections.abc import Callable


def backoff_delay(attempt: int, minimum: float, maximum: float, rnd: Callable[[], float]) -> float:
    """Delay before reconnect attempt ``attempt`` (0-based): ``min * 2**attempt`` capped at
    ``maximum``, then "equal jitter" (a uniform pick in the upper half) so a fleet of
    recorders does not reconnect in lock-step after an Asterisk restart."""
    base = min(maximum, minimum * (2 ** min(attempt, 30)))
    return max(minimum / 2, base / 2 + base / 2 * rnd())
