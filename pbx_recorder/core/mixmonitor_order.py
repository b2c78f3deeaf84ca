"""Which MixMonitor a ``MixMonitorMute`` without an ID mutes, and whether it is the recorder's.

Asterisk mutes the *first* MixMonitor on the channel (the oldest still running) when the action
names no ``MixMonitorID``, up to 18.17 and 20.2 (16.28 measured: tests/real/
test_asterisk_e2e_pci_pause.py); from 18.18, 20.3 and 21 on it mutes every MixMonitor of the
channel (ASTERISK-30464).  So on an older PBX a PCI pause on a channel that also carries a
MixMonitor of the PBX's own, started before the recorder's, silences that one and leaves the
card number in the recorder's file.

The core keeps, per channel of a call, the MixMonitors running on it in start order
(``Call.mixmonitors``: our recording id, or ``""`` for one the recorder did not start), from the
PBX's ``MixMonitorStart`` / ``MixMonitorStop`` events.  A start is ours when a recording of ours on
that channel has not been matched to a start yet; a stop without an ID (Asterisk 16) is ours when
a recording of ours in the list has stopped, else the newest foreign one goes (when in doubt the
older foreign one stays: a pause is refused rather than lost).  No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pbx_recorder.core.call_model import Call

FOREIGN = ""  #: an entry for a MixMonitor the recorder did not start
_VERSION = re.compile(r"(?:certified[/-])?(\d+)\.(\d+)")


def mutes_every_mixmonitor(version: str) -> bool | None:
    """Whether this Asterisk version's ``MixMonitorMute`` without an ID mutes every MixMonitor of
    the channel (True), only the first (False), or the version is unknown (None)."""
    match = _VERSION.match(version.strip())
    if match is None:
        return None
    major, minor = int(match.group(1)), int(match.group(2))
    return major >= 21 or (major == 20 and minor >= 3) or (major == 18 and minor >= 18)


def note_started(call: Call, channel: str) -> None:
    """A ``MixMonitorStart`` on ``channel``: ours (the first recording of ours on the channel not
    yet matched to a start) or foreign."""
    entries = call.mixmonitors.setdefault(channel, [])
    for rec in call.recordings:
        if rec.channel == channel and not rec.start_seen and rec.state != "failed":
            rec.start_seen = True
            entries.append(rec.recording_id)
            return
    entries.append(FOREIGN)


def note_stopped(call: Call, channel: str, recording_id: str = "") -> None:
    """A ``MixMonitorStop`` on ``channel``; ``recording_id`` when its ID named one of ours."""
    entries = call.mixmonitors.get(channel)
    if not entries:
        return
    if recording_id in entries and recording_id:
        entries.remove(recording_id)
    else:
        active = {r.recording_id for r in call.recordings if r.active}
        stopped = next((e for e in entries if e and e not in active), None)  # one we stopped
        if stopped is not None:
            entries.remove(stopped)
        elif FOREIGN in entries:  # the newest foreign one: an older one keeps refusing pauses
            del entries[len(entries) - 1 - entries[::-1].index(FOREIGN)]
    if not entries:
        del call.mixmonitors[channel]


def channel_gone(call: Call, channel: str) -> None:
    """The channel hung up: every MixMonitor on it ended with it."""
    call.mixmonitors.pop(channel, None)


def foreign_first(entries: Sequence[str], ours: Sequence[str]) -> bool:
    """The channel's first running MixMonitor is not the recorder's while one of ``ours`` runs
    there: a ``MixMonitorMute`` without an ID on an older Asterisk would mute that one."""
    return bool(entries) and entries[0] == FOREIGN and any(e in ours for e in entries)


def foreign_first_channels(snapshot: Mapping[str, Any]) -> list[str]:
    """The channels of a live-call snapshot (``live_calls``) where a pause would mute the PBX's
    own MixMonitor instead of the recorder's, on an Asterisk that mutes only the first."""
    ours = [str(r.get("recording_id", "")) for r in snapshot.get("recordings", [])
            if r.get("state") in ("recording", "paused")]
    table = snapshot.get("mixmonitors") or {}
    return [str(ch) for ch, entries in table.items()
            if isinstance(entries, list) and foreign_first([str(e) for e in entries], ours)]
