"""After ``calls pause|resume`` (or the console) sent its mute: wait for the daemon's verdict.

Asterisk accepting ``MixMonitorMute`` says only that *a* MixMonitor of the channel was muted; on
an Asterisk that mutes only a channel's first one, the daemon decides from the PBX's mute event
whether that was the recorder's (core/mixmonitor_order.py) and writes the verdict into the call's
live snapshot (``mute_events``: how many mute events, how many of them were no sure pause).  The
command reads the snapshot again right before it sends (the one it decided on may be seconds
old) and after it, until its own event is counted:

* ``confirmed``: a new mute event, none of them in doubt, and every active recording of the call
  now in the state asked for (paused / recording);
* ``missed``: a new mute event the daemon did not take as a pause of its recording (a MixMonitor
  of the PBX's own started meanwhile, events were lost): the caller unmutes again and says so;
* ``unconfirmed``: nothing within ``pbx.pause_confirm_s`` (the daemon is down or slow, or the
  call ended): the mute stands, the answer says it was sent and not confirmed.

The verdict is pure (:func:`verdict`); :func:`await_verdict` polls with the clock it is given.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

CONFIRMED, MISSED, UNCONFIRMED = "confirmed", "missed", "unconfirmed"
POLL_S = 0.1


@dataclass(frozen=True)
class MuteMark:
    """Where the call's mute events stood before the action was sent."""

    n: int
    missed: int

    @classmethod
    def of(cls, snapshot: Mapping[str, Any] | None) -> MuteMark:
        seen = (snapshot or {}).get("mute_events") or {}
        if not isinstance(seen, Mapping):
            return cls(0, 0)
        return cls(_int(seen.get("n")), _int(seen.get("missed")))


def _int(value: object) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def verdict(snapshot: Mapping[str, Any] | None, mark: MuteMark, muted: bool) -> tuple[str, str] | None:
    """(``confirmed`` | ``missed``, the daemon's doubt) once the daemon counted a mute event after
    ``mark``; None while it has not."""
    if not snapshot:
        return None
    now = MuteMark.of(snapshot)
    if now.missed > mark.missed:
        seen = snapshot.get("mute_events") or {}
        return MISSED, str(seen.get("doubt", "")) if isinstance(seen, Mapping) else ""
    if now.n <= mark.n:
        return None
    want = "paused" if muted else "recording"
    active = [r for r in snapshot.get("recordings", []) if isinstance(r, Mapping)
              and r.get("state") in ("recording", "paused")]
    if active and all(r.get("state") == want for r in active):
        return CONFIRMED, ""
    return None  # one channel's event of several so far


async def await_verdict(reread: Callable[[], Mapping[str, Any] | None], mark: MuteMark, muted: bool,
                        timeout: float, *, clock: Callable[[], float] = time.monotonic,
                        sleep: Callable[[float], Awaitable[Any]] | None = None) -> tuple[str, str]:
    """Poll the call's snapshot until :func:`verdict` answers, or ``timeout`` seconds pass
    (``unconfirmed``)."""
    if sleep is None:
        import asyncio  # here: ``calls search`` imports the module that imports this one

        sleep = asyncio.sleep
    deadline = clock() + timeout
    while True:
        found = verdict(reread(), mark, muted)
        if found is not None:
            return found
        if clock() >= deadline:
            return UNCONFIRMED, ""
        await sleep(POLL_S)
