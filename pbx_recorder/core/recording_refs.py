"""Sans-IO: what a PBX client must remember about the recordings it started, bounded.

AMI needs a recording's ``MixMonitorID`` to stop exactly that MixMonitor; ESL needs its files
(FreeSWITCH addresses a recording by path, for ``stop`` and the PCI ``mask``).  The table used to
lose an entry only on ``StopRecording``, but most recordings end with the call's hang-up and never
get one, so a daemon that ran for months held every recording it ever started.

An entry goes as soon as its recording is over from the client's own point of view:

* :meth:`RecordingRefs.pop`: the StopRecording the client carried out;
* :meth:`RecordingRefs.end_channel`: the recorded channel hung up (a genuine Hangup; AMI confirms
  it first, see ``AmiClient._confirm_hangup``);
* :meth:`RecordingRefs.prune`: after a reconnect, the PBX's complete list of live channels no
  longer has the channel (its Hangup went with the link).

(The daemon routes ``FinalizeRecording``/``DiscardRecording`` to the pipeline, never to the PBX
client, so those are not seen here; every path to them goes through a stop or a hang-up.)
``limit`` bounds the table whatever is missed (a channel renamed before its Hangup): the oldest
entry goes first, with a warning.  :meth:`of_call` reads one call's entries through an index
instead of scanning the table.  Shared by ``ami/client.py`` and ``esl/client.py`` (in the core:
neither adapter imports the other).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

V = TypeVar("V")
#: far above the live recordings of any PBX this talks to (a few per live call)
LIMIT = 50_000


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    call_id: str
    channels: tuple[str, ...]  # every name the channel is known by (AMI: name and Uniqueid)
    value: V


class RecordingRefs(Generic[V]):
    def __init__(self, limit: int = LIMIT, what: str = "recording") -> None:
        self.limit = limit
        self.what = what
        self.evicted = 0
        self._entries: dict[str, _Entry[V]] = {}  # recording id -> entry, oldest first
        self._by_channel: dict[str, dict[str, None]] = {}
        self._by_call: dict[str, dict[str, None]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, recording_id: object) -> bool:
        return recording_id in self._entries

    def __getitem__(self, recording_id: str) -> V:
        return self._entries[recording_id].value

    def ids(self) -> set[str]:
        return set(self._entries)

    def get(self, recording_id: str) -> V | None:
        entry = self._entries.get(recording_id)
        return None if entry is None else entry.value

    def add(self, recording_id: str, call_id: str, channels: Iterable[str], value: V) -> None:
        self.pop(recording_id)
        names = tuple(dict.fromkeys(c for c in channels if c))
        self._entries[recording_id] = _Entry(call_id, names, value)
        for name in names:
            self._by_channel.setdefault(name, {})[recording_id] = None
        self._by_call.setdefault(call_id, {})[recording_id] = None
        while len(self._entries) > self.limit:
            oldest = next(iter(self._entries))
            self.evicted += 1
            if self.evicted == 1 or self.evicted % 1000 == 0:
                log.warning("%s table full (%d): forgot %s of call %s (%d forgotten so far); a stop "
                            "of it goes out by channel", self.what, self.limit, oldest,
                            self._entries[oldest].call_id, self.evicted)
            self.pop(oldest)

    def pop(self, recording_id: str) -> V | None:
        entry = self._entries.pop(recording_id, None)
        if entry is None:
            return None
        for name in entry.channels:
            _unindex(self._by_channel, name, recording_id)
        _unindex(self._by_call, entry.call_id, recording_id)
        return entry.value

    def of_call(self, call_id: str) -> list[V]:
        """The entries of one call, oldest first."""
        return [self._entries[rid].value for rid in self._by_call.get(call_id, ())]

    def end_channel(self, *names: str) -> list[str]:
        """The channel known by any of ``names`` is gone: forget its recordings (their ids)."""
        ended = [rid for name in names if name for rid in list(self._by_channel.get(name, ()))]
        ended = list(dict.fromkeys(ended))
        for rid in ended:
            self.pop(rid)
        return ended

    def prune(self, live_channels: set[str], among: Iterable[str]) -> list[str]:
        """Forget the recordings in ``among`` (ids known before the PBX listed its channels) whose
        channel is not in ``live_channels`` (every name of every live channel)."""
        gone = [rid for rid in among if rid in self._entries
                and live_channels.isdisjoint(self._entries[rid].channels)]
        for rid in gone:
            self.pop(rid)
        return gone


def _unindex(index: dict[str, dict[str, None]], key: str, recording_id: str) -> None:
    ids = index.get(key)
    if ids is not None:
        ids.pop(recording_id, None)
        if not ids:
            del index[key]
