"""The time of an AMI event: Asterisk's own ``Timestamp`` header when manager.conf has
``timestampevents = yes``, else the time the frame arrived.

The header is the moment Asterisk raised the event, so a recorder that reads its socket late
(a busy host, a burst of calls) still stores when the call was answered, not when it heard of it.
It is trusted only while it is a finite number close to this host's clock: Asterisk runs on the
same host or a time-synchronized one, and a header far off (a skewed clock, a hostile value) must
not move a call's times, so the arrival time is used then, and each case is logged once.

A reply to one of our actions (the ``MixMonitor`` response that confirms a recording's start)
carries no ``Timestamp``.  It comes down the same stream as the events, so it is read exactly as
late as they are: :meth:`EventClock.reply_time` takes back the lag of the last stamped event,
while the stream is busy (and the client never puts it before the action was sent).  Without
that, a recording's span would run from a late-read start to an exactly timed stop, and a busy
host would flag sound recordings as too long.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

log = logging.getLogger(__name__)

MAX_AGE_S = 3600.0  # an event read more than an hour after Asterisk raised it: clock trouble
MAX_AHEAD_S = 5.0   # Asterisk's clock ahead of ours by more than this: not trusted
FRESH_S = 1.0       # a lag measured longer ago than this no longer describes the stream


class EventClock:
    """Chooses each event's time; remembers what it has already warned about."""

    def __init__(self) -> None:
        self.stamped = 0
        self.unstamped = 0
        self.rejected = 0
        self._warned_missing = False
        self._warned_skew = False
        self._lag = 0.0  # how late the last stamped event was read
        self._lag_read_at: float | None = None

    def reply_time(self, now: float) -> float:
        """The time Asterisk most likely sent a reply read at ``now``: ``now`` less the lag of
        the stream's last stamped event, if that event was read within :data:`FRESH_S`."""
        if self._lag_read_at is None or now - self._lag_read_at > FRESH_S:
            return now
        return now - self._lag

    def at(self, headers: Mapping[str, str], now: float) -> float:
        stamp = headers.get("timestamp")
        if not stamp:
            self.unstamped += 1
            if not self._warned_missing:
                self._warned_missing = True
                log.warning("AMI events carry no Timestamp: set timestampevents = yes in the [general] "
                            "section of manager.conf (etc/manager.conf.d/pbx-recorder.conf); until then "
                            "event times are taken when the recorder reads them")
            return now
        try:
            value = float(stamp)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not now - MAX_AGE_S <= value <= now + MAX_AHEAD_S:
            self.rejected += 1
            if not self._warned_skew:
                self._warned_skew = True
                log.warning("AMI event Timestamp %.64r is not within [-%.0f s, +%.0f s] of this host's "
                            "clock: using the arrival time (check NTP on the PBX and this host)",
                            stamp, MAX_AGE_S, MAX_AHEAD_S)
            return now
        self.stamped += 1
        self._lag, self._lag_read_at = max(now - value, 0.0), now
        return value
