"""Commands: what the core asks the edges to do.  Pure data; adapters carry them out.

The AMI adapter turns the PBX ones into actions (MixMonitor, StopMixMonitor,
MixMonitorMute, Setvar); the pipeline takes ``FinalizeRecording`` / ``DiscardRecording``;
the catalog writer takes ``UpsertCall``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Command:
    call_id: str


@dataclass(frozen=True, slots=True)
class StartRecording(Command):
    recording_id: str
    channel: str
    path: str  # absolute path on the PBX host, from naming.recording_paths()
    mode: str = "mixed"  # "mixed" | "dual" (r()/t() leg files) | "stereo"
    kind: str = "call"  # "call" | "consent" (the prompt-and-answer segment)
    leg_paths: tuple[str, ...] = ()  # for mode "dual": (read_path, write_path)
    dialogue: bool = False  # started before the consent dialogue: its id goes to PBXREC_DIALOGUE_MMID


@dataclass(frozen=True, slots=True)
class StopRecording(Command):
    """Stop exactly this recording, never "a" recording of the channel: an edge that cannot name
    it (AMI: no MixMonitorID known or found; ESL: no file) skips the stop and logs why."""

    recording_id: str
    channel: str
    pbx_ref: str = ""  # MixMonitorID (AMI) / file (ESL) when known
    paths: tuple[str, ...] = ()  # the files the core chose for it (ESL stops each by its path)
    pbx_started: bool = True  # the PBX confirmed the start; False: "no such recording" is expected
    handed_over: bool = False  # the dialplan was to start it itself (Recording.early)


@dataclass(frozen=True, slots=True)
class MuteRecording(Command):
    channel: str
    muted: bool
    direction: str = "both"
    # the files of the recordings meant (ESL masks each by its path; AMI mutes the channel): the
    # core names them, so a restarted ESL client that lost its table of files can still unmask
    paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SetChannelVar(Command):
    channel: str
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class FinalizeRecording(Command):
    """The recording is over from the PBX's point of view: wait until the file is
    closed, then spool it with ``metadata`` (the manifest's call part)."""

    recording_id: str
    paths: tuple[str, ...]
    metadata: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DiscardRecording(Command):
    """Delete whatever the PBX wrote for this recording (refused / unanswered)."""

    recording_id: str
    paths: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class UpsertCall(Command):
    """Write the call's summary row (CDR fields, rule, consent evidence, status)."""

    row: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FlagRecordings(Command):
    """Add flags to recordings already finalized (e.g. ``cut``: the PBX restarted as they ended);
    the daemon merges them into the catalog rows once the recordings are stored."""

    recording_ids: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
