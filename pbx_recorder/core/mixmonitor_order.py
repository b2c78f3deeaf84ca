"""Whether a ``MixMonitorMute`` without an ID can be trusted to mute the recorder's MixMonitor.

Asterisk mutes the *first* MixMonitor on the channel (the oldest still running) when the action
names no ``MixMonitorID``, up to 18.17 and 20.2 (16.28 measured: tests/real/
test_asterisk_e2e_pci_pause.py); from 18.18, 20.3 and 21 on it mutes every MixMonitor of the
channel (ASTERISK-30464).  So on an older PBX a PCI pause on a channel that also carries a
MixMonitor of the PBX's own, started before the recorder's, silences that one and leaves the
card number in the recorder's file.  Before 16.17, in 17 and before 18.3 Asterisk sends no
MixMonitor events at all (ASTERISK-29244): nothing can be known there.

The core keeps, per channel of a call, the MixMonitors running on it (``Call.mixmonitors``: our
recording id, or ``""`` for one the recorder did not start), from the PBX's ``MixMonitorStart``
and ``MixMonitorStop`` events.  Which start is ours cannot be told on Asterisk 16 (no ID in the
event, and the AMI stream and the consent sessions are not ordered), so the rule counts, it does
not order: on a PBX that mutes only the first, a mute is trusted on a channel only when **no**
MixMonitor the recorder did not start runs there, every recording of ours there was seen to
start, and the call's events were all seen (``Call.mixmonitors_known``: not after a lost AMI
link, a restart's restore or a resync's adoption).  A stop without an ID removes a recording of
ours we stopped, never a foreign one (only the channel's hang-up clears those).  When in doubt a
pause is refused, never claimed.  No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pbx_recorder.core.call_model import Call

FOREIGN = ""  #: an entry for a MixMonitor the recorder did not start
_VERSION = re.compile(r"(?:certified[/-])?(\d+)\.(\d+)")

# why a mute on a channel is not a pause of the recorder's recording (None: it is)
PBX_OWN = "pbx_own_mixmonitor"  #: a MixMonitor the recorder did not start runs on the channel
UNKNOWN = "mixmonitors_unknown"  #: events were missed, or a start of ours was not seen yet
NO_EVENTS = "no_mixmonitor_events"  #: this Asterisk sends no MixMonitor events


def _major_minor(version: str) -> tuple[int, int] | None:
    match = _VERSION.match(version.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def _since(version: str, minors: Mapping[int, int], every_from: int) -> bool | None:
    """The version is ``every_from`` or later, or at least ``minors[major]`` in its major line;
    None when it cannot be read."""
    mm = _major_minor(version)
    if mm is None:
        return None
    major, minor = mm
    return major >= every_from or minor >= minors.get(major, 1_000)


def mutes_every_mixmonitor(version: str) -> bool | None:
    """Whether this Asterisk version's ``MixMonitorMute`` without an ID mutes every MixMonitor of
    the channel (True), only the first (False), or the version is unknown (None)."""
    return _since(version, {18: 18, 20: 3}, 21)


def reports_mixmonitor_events(version: str) -> bool:
    """Whether this Asterisk sends ``MixMonitorStart/Stop/Mute`` (16.17, 18.3, 19 and later).
    An unknown version is assumed to (its refusals then rest on what was seen)."""
    return _since(version, {16: 17, 18: 3}, 19) is not False


def short_version(version: str) -> str:
    """``major.minor`` only (the distribution's patch level is nobody's business)."""
    mm = _major_minor(version)
    return f"{mm[0]}.{mm[1]}" if mm else "(version unknown)"


def note_started(call: Call, channel: str, at: float | None = None) -> None:
    """A ``MixMonitorStart`` on ``channel``: taken as ours when a recording of ours on the channel
    waits for its start (one the core stopped already included: a short dialogue recording), else
    foreign.  (Mistaking the PBX's late start for ours leaves our own start counted as foreign:
    the count of foreign ones is right either way.)"""
    entries = call.mixmonitors.setdefault(channel, [])
    for rec in call.recordings:
        if rec.channel == channel and not rec.start_seen and rec.state != "failed":
            rec.start_seen, rec.start_seen_at = True, at
            entries.append(rec.recording_id)
            return
    entries.append(FOREIGN)


def note_stopped(call: Call, channel: str, recording_id: str = "") -> None:
    """A ``MixMonitorStop`` on ``channel``: ``recording_id`` when its MixMonitorID named one of
    ours; else (Asterisk 16 names none) a recording of ours the core stopped goes, never a foreign
    one: only the channel's hang-up clears those (on an Asterisk that mutes every MixMonitor the
    count is not used)."""
    entries = call.mixmonitors.get(channel)
    if not entries:
        return
    if recording_id and recording_id in entries:
        entries.remove(recording_id)
    else:
        active = {r.recording_id for r in call.recordings if r.active}
        stopped = next((e for e in entries if e and e not in active), None)
        if stopped is not None:
            entries.remove(stopped)
    if not entries:
        del call.mixmonitors[channel]


#: a MixMonitorStart of the PBX's own attached before the recorder's but published after it (two
#: threads) arrives within this many seconds of the recorder's: a loss later than that cannot hide it
GAP_MARGIN_S = 10.0


def survives_gap(call: Call, since: float) -> bool:
    """Whether the call's count stays trusted when events received from ``since`` on may have
    been lost.  A MixMonitorStart lost then is of a MixMonitor started after every one of ours
    that was counted well before it, and a ``MixMonitorMute`` without an ID mutes the first: ours.
    So: trusted until now, at least one recording of ours running, every one of them seen to start
    :data:`GAP_MARGIN_S` before ``since``, and no doubt on their channels.  (A recording of ours
    that starts later is not covered: ``Call.mixmonitors_gap``.)"""
    recs = [r for r in call.recordings if r.active]
    if not call.mixmonitors_known or not recs:
        return False
    if any(not r.start_seen or r.start_seen_at is None or r.start_seen_at > since - GAP_MARGIN_S
           for r in recs):
        return False
    for channel in {r.channel for r in recs}:
        ours = [(r.recording_id, r.start_seen) for r in recs if r.channel == channel]
        if mute_doubt(call.mixmonitors.get(channel, []), ours, True) is not None:
            return False
    return True


def note_mute(call: Call, doubt: str | None) -> None:
    """A mute event on a recording of ours, and whether it was a sure pause (``Call.mute_events``:
    what ``calls pause`` waits for after its action, cli/pause_confirm.py)."""
    seen = call.mute_events
    seen["n"] = int(seen.get("n", 0)) + 1
    if doubt is not None:
        seen["missed"] = int(seen.get("missed", 0)) + 1
        seen["doubt"] = doubt


def channel_gone(call: Call, channel: str) -> None:
    """The channel hung up: every MixMonitor on it ended with it."""
    call.mixmonitors.pop(channel, None)


def mute_doubt(entries: Sequence[str], ours: Iterable[tuple[str, bool]], known: bool) -> str | None:
    """Why a mute without an ID on a channel may have missed the recorder's MixMonitor there, on
    an Asterisk that mutes only the first; None when it cannot have.  ``entries``: the MixMonitors
    counted on the channel; ``ours``: (recording id, start seen) of our active recordings there.
    A recording of ours the core stopped but whose stop was not seen yet (or never went out) may
    still run, and be the first: a doubt too."""
    ours = list(ours)
    active = {rid for rid, _ in ours}
    if FOREIGN in entries:
        return PBX_OWN
    if not known or any(not seen for _, seen in ours) or any(e not in active for e in entries):
        return UNKNOWN
    return None


def pause_doubt(version: str, snapshot: Mapping[str, Any], channel: str) -> str | None:
    """Why pausing ``channel`` of a live call (its ``live_calls`` snapshot) would not be sure to
    silence the recorder's file on this Asterisk; None when it would."""
    if mutes_every_mixmonitor(version) is True:
        return None
    if not reports_mixmonitor_events(version):
        return NO_EVENTS
    table = snapshot.get("mixmonitors") or {}
    entries = table.get(channel) if isinstance(table, Mapping) else None
    ours = [(str(r.get("recording_id", "")), bool(r.get("start_seen")))
            for r in snapshot.get("recordings", [])
            if r.get("state") in ("recording", "paused") and r.get("channel") == channel]
    known = bool(snapshot.get("mixmonitors_known", False))
    return mute_doubt([str(e) for e in entries] if isinstance(entries, list) else [], ours, known)
