"""PBX-neutral call events: what the core is told.

Adapters (``ami/``, ``esl/``, the consent AGI server) normalize vendor frames into
these frozen dataclasses.  The core never sees a vendor header name.

Identity:
  * ``call_id``   the call as a whole (Asterisk ``Linkedid``, FreeSWITCH ``variable_call_uuid``),
                  made globally unique with :func:`pbx_recorder.core.naming.make_call_id`.
  * ``channel_id`` one leg (Asterisk ``Uniqueid``, FreeSWITCH ``Unique-ID``).
  * ``at``        event time, epoch seconds (float).
Every string field here is attacker-influenced (caller ID, names, dialed digits): treat as data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CallEvent:
    at: float
    call_id: str
    channel_id: str


@dataclass(frozen=True, slots=True)
class ChannelCreated(CallEvent):
    channel: str
    caller_num: str = ""
    caller_name: str = ""
    exten: str = ""
    context: str = ""
    account_code: str = ""


@dataclass(frozen=True, slots=True)
class ChannelAnswered(CallEvent):
    channel: str


@dataclass(frozen=True, slots=True)
class ChannelHungUp(CallEvent):
    channel: str
    cause: int = 0
    cause_text: str = ""


@dataclass(frozen=True, slots=True)
class Bridged(CallEvent):
    """A channel entered a bridge (two legs talking)."""

    channel: str
    bridge_id: str
    bridge_channels: int = 0


@dataclass(frozen=True, slots=True)
class Unbridged(CallEvent):
    channel: str
    bridge_id: str


@dataclass(frozen=True, slots=True)
class QueueCallerJoined(CallEvent):
    channel: str
    queue: str


@dataclass(frozen=True, slots=True)
class AgentConnected(CallEvent):
    """A queue member answered: ``agent`` is the member name / interface."""

    channel: str
    queue: str
    agent: str
    agent_channel: str = ""


@dataclass(frozen=True, slots=True)
class Transferred(CallEvent):
    """Blind or attended transfer.  ``target_call_id`` is the call the recording follows into."""

    channel: str
    kind: str  # "blind" | "attended"
    target_call_id: str = ""
    target_channel: str = ""


@dataclass(frozen=True, slots=True)
class ConsentRequested(CallEvent):
    """The dialplan handed the call to the recorder (Gosub -> AGI)."""

    channel: str
    direction: str  # "inbound" | "outbound" | "internal"
    dialed: str  # DID for inbound, dialed number for outbound
    caller_num: str = ""
    caller_name: str = ""
    queue: str = ""
    agent: str = ""
    region: str = ""
    language: str = ""
    vip: bool = False  # looked up by the adapter (VIP file / Redis set) before the core sees it
    early: bool = False  # asked before answer: a call recording is started by the dialplan at answer


@dataclass(frozen=True, slots=True)
class ConsentResolved(CallEvent):
    """The consent dialogue ended; ``evidence`` is a ``ConsentEvidence`` as a plain dict."""

    channel: str
    decision: str  # see pbx_recorder.core.consent_policy.Decision values
    evidence: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConsentUnavailable(CallEvent):
    """The recorder could not run the consent session (``reason``: ``capacity`` = refused above
    ``max_sessions`` or by admission control, ``stopping``, ``unavailable``: the dialplan reported
    its fail direction without a reason): the snippet took its fail direction, the call goes on
    unrecorded, and the catalog says why -- never as the caller's hang-up."""

    channel: str
    reason: str


@dataclass(frozen=True, slots=True)
class ConsentAsked(CallEvent):
    """The consent dialogue's first prompt (the notice or the question) is about to be played:
    a hang-up before this is ``hangup_before_question``, not a caller who heard and left."""

    channel: str


@dataclass(frozen=True, slots=True)
class RecordingStarted(CallEvent):
    channel: str
    recording_id: str  # ours (naming.make_recording_id)
    pbx_ref: str = ""  # MixMonitorID / file path as the PBX knows it


@dataclass(frozen=True, slots=True)
class RecordingStopped(CallEvent):
    channel: str
    recording_id: str = ""
    pbx_ref: str = ""


@dataclass(frozen=True, slots=True)
class MixMonitorStarted(CallEvent):
    """The PBX's ``MixMonitorStart``: any MixMonitor on the channel, ours or the PBX's own
    (core/mixmonitor_order.py).  Our recordings' starts come from the action's response.
    ``arrived_at``: when the recorder read it (by its own clock; ``at`` is Asterisk's Timestamp):
    what a later loss of events is compared with (``survives_gap``)."""

    channel: str
    arrived_at: float | None = None


@dataclass(frozen=True, slots=True)
class RecordingMuted(CallEvent):
    channel: str
    muted: bool
    direction: str = "both"
    # the PBX muted the recorder's own recording by name (FreeSWITCH's uuid_record mask of its
    # file), not "the channel's MixMonitor" (Asterisk's MixMonitorMute: core/mixmonitor_order.py)
    exact: bool = False


@dataclass(frozen=True, slots=True)
class CdrPosted(CallEvent):
    """The PBX's CDR for the call (fields normalized to lower-case keys:
    start, answer, end, duration, billsec, src, dst, dcontext, disposition,
    accountcode, userfield, channel, dstchannel, lastapp)."""

    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VariableSet(CallEvent):
    channel: str
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class LiveChannel(CallEvent):
    """A channel found live during resynchronization (CoreShowChannels + variables)."""

    channel: str
    state: str  # "up", "ring", ...
    caller_num: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    bridged: bool = False


@dataclass(frozen=True, slots=True)
class ResyncCompleted:
    """All live channels were reported; any call we track that is not among
    ``live_call_ids`` ended while we were away.  ``complete``: no event was lost inside the
    client while the list was read (:class:`PbxEventsLost`); when one was, calls that began
    meanwhile may be missing from both the list and the events, and another resync follows."""

    at: float
    live_call_ids: frozenset[str] = frozenset()
    complete: bool = True


@dataclass(frozen=True, slots=True)
class PbxBooted:
    """The PBX's start time (``naming.boot_tag``), learned after every (re)connect.  A change
    means the PBX restarted: every call of its previous run is over.  ``version``: Asterisk's
    (``CoreSettings``; "" when not known): which MixMonitor a ``MixMonitorMute`` without an ID
    mutes (core/mixmonitor_order.py)."""

    at: float
    boot: str
    version: str = ""


@dataclass(frozen=True, slots=True)
class RecordingFailed(CallEvent):
    """A recording we asked for never started (the action failed: AMI down, refused...)."""

    channel: str
    recording_id: str
    reason: str = ""  # e.g. "ami_unavailable", "pbx_refused"


@dataclass(frozen=True, slots=True)
class RecordingMuteFailed(CallEvent):
    """A ``MuteRecording`` the core asked for was not carried out (the action failed or was not
    sent): the channel's recordings were not muted (or not unmuted) by it."""

    channel: str
    muted: bool


@dataclass(frozen=True, slots=True)
class PbxEventsLost:
    """The PBX link stayed up but events may have been lost on the way to the core: blocks the
    framing guard dropped (a caller forged a cut), a block that failed to parse or normalize,
    events past the cap held while connecting.  ``reason`` names which (for the log).  A resync
    follows; until it completes, and for every call open now, the core no longer knows which
    MixMonitors run on a channel (core/mixmonitor_order.py)."""

    at: float
    reason: str = ""
    since: float | None = None  # the earliest any lost event can have arrived (None: ``at``)


@dataclass(frozen=True, slots=True)
class PbxLinkLost:
    """The AMI connection went away (the PBX may be restarting).  ``since``: when its last bytes
    were read (what was sent after is lost; None: ``at``)."""

    at: float
    since: float | None = None
