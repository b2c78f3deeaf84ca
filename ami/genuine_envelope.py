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
  stamped one between make the guard learn again (ERROR logged).  Every event dropped for a
  missing Timestamp asks for a resync (:attr:`AsteriskEnvelope.resync_wanted`; the client paces
  and coalesces them, :mod:`ami.resync_pacer`): until the guard has learned again, the events it
  drops may be Asterisk's own, and the resync reads back what they changed.

``SystemName`` is not required (an event without one is judged like any other), but when events
carry one, "stamped" is learned per SystemName value: an AMI proxy merging several PBXs may have
one that stamps and one that was reloaded without stamps, and the stamped one's events must not
keep the other's from being learned again.  A SystemName first seen without a Timestamp while
another one is stamped is judged with the old rule (:data:`RELEARN_AFTER` in a row, reset by any
stamped event), so a caller cannot escape the check by inventing a SystemName; at most
:data:`MAX_SYSTEMS` names are remembered.

The cost to the caller: ``Privilege`` (14+ bytes) and ``Timestamp`` (30 bytes) on top of the
event name and an identity; 79 decoded bytes (the PJSIP From user) no longer hold a forged block
with a timestamp.  Without ``timestampevents`` a caller with room for ``Privilege`` still passes
this check: keep ``timestampevents = yes``.
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
#: SystemName values whose stamping is remembered (each a PBX behind an AMI proxy)
MAX_SYSTEMS = 64
NO_TIMESTAMP = "no Timestamp although this connection's events carry one"


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
        self._stamped: dict[str, bool] = {}  # SystemName ("" without one) -> its events carry a Timestamp
        self._misses: dict[str, int] = {}  # per SystemName: stamped-name events in a row without one
        self._stray_misses = 0  # events of a never-stamped SystemName in a row (any stamped one resets)
        self.resync_wanted = False  # an event was dropped for a missing Timestamp: it may be Asterisk's

    @property
    def timestamped(self) -> bool:
        """Some of this connection's events carry a Timestamp."""
        return any(self._stamped.values())

    def take_resync(self) -> bool:
        wanted, self.resync_wanted = self.resync_wanted, False
        return wanted

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
        system = _first(keys.get("systemname"))
        if TIMESTAMP.fullmatch(_first(keys.get("timestamp"))):
            if system in self._stamped or len(self._stamped) < MAX_SYSTEMS:
                self._stamped[system] = True
            self._misses[system] = self._stray_misses = 0
            return ""
        if system in self._stamped:
            if not self._stamped[system]:
                return ""  # learned: this PBX does not stamp
            self._misses[system] = misses = self._misses.get(system, 0) + 1
        elif not self.timestamped:
            return ""
        else:  # a name never seen stamped while another one is: the connection-wide rule
            self._stray_misses = misses = self._stray_misses + 1
        if misses >= self.relearn_after:
            log.error("AMI: %d events in a row without the Timestamp this connection's events carried "
                      "(timestampevents turned off? SystemName %.40r); learning the envelope again",
                      misses, system)
            if system in self._stamped or len(self._stamped) < MAX_SYSTEMS:
                self._stamped[system] = False
            self._misses[system] = self._stray_misses = 0
            return ""
        self.resync_wanted = True
        return NO_TIMESTAMP
