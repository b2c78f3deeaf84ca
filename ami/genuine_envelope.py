"""Sans-IO: does an event block carry the envelope Asterisk writes before every event?

A caller ID with a blank line in it (see :mod:`ami.framing_guard`) makes the caller's bytes a
block of their own.  When the line break sits in a value AFTER a complete channel snapshot (a
VarSet ``Value``, a UserEvent field, a BlindTransfer ``Extension`` the dialplan copied caller
data into), nothing is cut short and no remainder follows, so the framing guard cannot see it.
What the caller must still spell is the envelope: ``__manager_event_sessions_va`` (main/manager.c,
the same in 16.28 and 22) writes, before the body of EVERY event::

    Event: <name>
    Privilege: <classes>             always (e.g. ``call,all``)
    Timestamp: <secs>.<usecs>        with ``timestampevents = yes`` (the README asks for it)

An event without ``Privilege`` is Asterisk's only as an item of a list answering one of our
actions (``CoreShowChannel``, ``CoreShowChannelsComplete``: ``astman_append`` with our
``ActionID``), or as the ``FullyBooted`` written at login.  So:

* an event block with neither a ``Privilege`` of class names nor an ``ActionID`` of ours is not
  Asterisk's;
* once this connection's events carried a ``Timestamp`` in Asterisk's format, an event without
  one is not Asterisk's.  Learned per connection from the stream itself: the genuine event that
  carries the caller's bytes always comes first, so it teaches the guard before the caller's
  block is read.  Should Asterisk stop stamping (a
  ``manager reload`` that turned it off), :data:`RELEARN_AFTER` such events in a row with no
  stamped one between make the guard learn again (ERROR logged).

The cost to the caller: ``Privilege`` (14+ bytes) and ``Timestamp`` (30 bytes) on top of the
event name and an identity; 79 decoded bytes (the PJSIP From user) no longer hold a forged block
with a timestamp.  (``SystemName`` is not required: an AMI proxy merging several PBXs would mix
names, and the relearning below could not settle on one.)  Without ``timestampevents`` a caller with room for
``Privilege`` still passes this check: keep ``timestampevents = yes``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

PRIVILEGE = re.compile(r"[a-z]+(?:,[a-z]+)*")
TIMESTAMP = re.compile(r"[0-9]{9,11}\.[0-9]{6}")
#: events Asterisk writes without Privilege outside a list (action_login's FullyBooted)
UNPRIVILEGED = frozenset({"fullybooted"})
RELEARN_AFTER = 8


def _first(value: Any) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    return "" if value is None else str(value)


class AsteriskEnvelope:
    """:meth:`verdict` per event block in stream order; ``ours(action_id)`` tells whether an
    ActionID belongs to an action this client is waiting for."""

    def __init__(self, ours: Callable[[str], bool] = lambda action_id: False,
                 relearn_after: int = RELEARN_AFTER) -> None:
        self.ours = ours
        self.relearn_after = relearn_after
        self.timestamped = False  # this connection's events carry a Timestamp
        self._misses = 0  # privileged events in a row without one

    def verdict(self, keys: Mapping[str, Any]) -> str:
        """"" when ``keys`` (lower-case header -> first value) may be Asterisk's; else why not.
        Blocks that are not events (replies, strays) are not judged here."""
        event = _first(keys.get("event"))
        if not event:
            return ""
        action_id = _first(keys.get("actionid"))
        if action_id and self.ours(action_id):
            return ""  # an item of a list we asked for: written without Privilege
        if not PRIVILEGE.fullmatch(_first(keys.get("privilege"))):
            if event.lower() in UNPRIVILEGED and not self.timestamped:
                return ""  # the login's FullyBooted comes before any stamped event
            return "no Privilege (Asterisk writes one in every event)"
        if TIMESTAMP.fullmatch(_first(keys.get("timestamp"))):
            self.timestamped = True
            self._misses = 0
            return ""
        if not self.timestamped:
            return ""
        self._misses += 1
        if self._misses >= self.relearn_after:
            log.error("AMI: %d events in a row without the Timestamp this connection's events carried "
                      "(timestampevents turned off?); learning the envelope again", self._misses)
            self.timestamped, self._misses = False, 0
            return ""
        return "no Timestamp although this connection's events carry one"
