"""The time of an AMI event: Asterisk's own ``Timestamp`` header when manager.conf has
``timestampevents = yes``, else the time the frame arrived.

The header is the moment Asterisk raised the event, so a recorder that reads its socket late
(a busy host, a burst of calls) still stores when the call was answered, not when it heard of it.
It is trusted only while it is a finite number close to this host's clock: Asterisk runs on the
same host or a time-synchronized one, and a header far off (a skewed clock, a hostile value) must
not move a call's times, so the arrival time is used then, and each case is logged once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

log = logging.getLogger(__name__)

MAX_AGE_S = 3600.0  # an event read more than an hour after Asterisk raised it: clock trouble
MAX_AHEAD_S = 5.0   # Asterisk's clock ahead of ours by more than this: not trusted


class EventClock:
    """Chooses each event's time; remembers what it has already warned about."""

    def __init__(self) -> None:
        self.stamped = 0
        self.unstamped = 0
        self.rejected = 0
        self._warned_missing = False
        self._warned_skew = False

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
        return value
