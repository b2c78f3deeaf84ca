"""Sans-IO: AMI event headers -> PBX-neutral :mod:`pbx_recorder.core.events`.

One visible dispatch table (:data:`HANDLERS`) maps the AMI event name to a handler.
Input is a panoramisk ``Message`` (case-insensitive) or a dict from :mod:`ami.frames`
(lower-case keys); a dict with other key cases is folded once.  Output is a list of events
(usually 0 or 1).  Ignored events return ``[]`` with a debug line saying why; a malformed
frame is logged with what is known and never raises out of :meth:`Normalizer.normalize`.

State kept here (still sans-IO): Uniqueid -> call id (a ``Cdr`` without ``Linkedid``
is matched through it) and the channel registry (channel name -> Uniqueid -> Linkedid, from
``Newchannel``/``CoreShowChannel``), each bounded to ``max_channels`` entries.

Header injection (CRLF in a caller ID, see :mod:`ami.injection`): every frame is first
reduced to one trusted value per header.  A frame whose identity headers repeat is logged
once per channel as an "AMI header injection attempt"; a one-snapshot event keeps its
positional identity if the registry does not contradict it, any other event takes its
identity from the registry or is dropped.

Recording starts are not taken from ``MixMonitorStart``: the ``MixMonitor`` action
response (it carries the ``MixMonitorID``) is where the client reports them, so
there is exactly one ``RecordingStarted`` per recording we started.  ``MixMonitorStart`` becomes
``MixMonitorStarted``: the core counts every MixMonitor on a channel, the PBX's own included, to
know which one a pause would mute (pbx_recorder/core/mixmonitor_order.py).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ami.event_time import EventClock
from ami.injection import Resolved, resolve, snapshot_prefixes, values
from ami.unavailable_event import UNAVAILABLE_EVENT, on_unavailable
from pbx_recorder.core import events as ev
from pbx_recorder.core.masking import mask_number
from pbx_recorder.core.naming import make_call_id

log = logging.getLogger(__name__)

Headers = Mapping[str, Any]
VAR_PREFIX = "PBXREC_"
ANSWERED_STATE = "6"  # AST_STATE_UP

# CDR event header (lower-case) -> CdrPosted.fields key
CDR_FIELDS = {
    "starttime": "start",
    "answertime": "answer",
    "endtime": "end",
    "duration": "duration",
    "billableseconds": "billsec",
    "source": "src",
    "destination": "dst",
    "destinationcontext": "dcontext",
    "disposition": "disposition",
    "accountcode": "accountcode",
    "userfield": "userfield",
    "channel": "channel",
    "destinationchannel": "dstchannel",
    "lastapplication": "lastapp",
    "lastdata": "lastdata",
    "callerid": "clid",
    "uniqueid": "uniqueid",
    "linkedid": "linkedid",  # only when mapped in cdr_manager.conf
}


#: multi-snapshot events whose first snapshot (genuine channel name = first value) has this prefix
FIRST_SNAPSHOT = {"AgentConnect": "", "BlindTransfer": "transferer", "AttendedTransfer": "origtransferer"}


def fold(msg: Headers) -> Headers:
    """Lower-case keys unless the mapping is already lower-case or case-insensitive."""
    if "event" in msg or "response" in msg:
        return msg
    return {str(k).lower(): v for k, v in msg.items()}


def text(h: Headers, key: str) -> str:
    value = h.get(key)
    if value is None:
        return ""
    if isinstance(value, list):  # only legitimately repeated ones are left (ChanVariable ...)
        value = value[0] if value else ""
    return str(value)


class Normalizer:
    def __init__(self, node: str, *, max_channels: int = 200_000) -> None:
        self.node = node
        self.max_channels = max_channels
        self._call_of_channel: dict[str, str] = {}
        self._call_ids: dict[str, str] = {}
        self.boot = ""  # the PBX's start time (naming.boot_tag): part of every call id
        self._ids_lock = threading.Lock()  # call_id_for is also called from the AGI threads
        self._uniqueid_of_name: dict[str, str] = {}
        self._linkedid_of: dict[str, str] = {}  # Uniqueid -> Linkedid (registry)
        self._warned: dict[str, None] = {}  # channels already reported for header injection
        self.ignored = 0
        self.malformed = 0
        self.injections = 0  # frames with repeated identity headers
        self.injections_dropped = 0
        self.clock = EventClock()  # each event's time: Asterisk's Timestamp header, or arrival
        self.arrived_at = 0.0  # when the event being normalized was read (the client's clock)

    # -- identity -----------------------------------------------------------------
    def call_id_for(self, linkedid: str) -> str:
        with self._ids_lock:
            cid = self._call_ids.get(linkedid)
            if cid is None:
                cid = make_call_id(self.node, linkedid, self.boot)
                if len(self._call_ids) >= self.max_channels:
                    self._call_ids.pop(next(iter(self._call_ids)))
                self._call_ids[linkedid] = cid
            return cid

    def set_boot(self, boot: str) -> bool:
        """A PBX start time (from CoreStatus).  True when it changed: the PBX restarted, its
        linkedids start over, so every id cached for the previous run is forgotten."""
        with self._ids_lock:
            if boot == self.boot:
                return False
            changed = bool(self.boot)
            self.boot = boot
            self._call_ids.clear()
            self._call_of_channel.clear()
            return changed

    def remember(self, uniqueid: str, call_id: str) -> None:
        if uniqueid in self._call_of_channel:
            return
        if len(self._call_of_channel) >= self.max_channels:
            self._call_of_channel.pop(next(iter(self._call_of_channel)))
        self._call_of_channel[uniqueid] = call_id

    def call_of_channel(self, uniqueid: str) -> str | None:
        return self._call_of_channel.get(uniqueid)

    def uniqueid_of(self, channel: str) -> str:
        """Uniqueid of a channel name seen in a Newchannel ("" when unknown)."""
        return self._uniqueid_of_name.get(channel, "")

    def note_channel_name(self, channel: str, uniqueid: str, linkedid: str = "") -> None:
        if len(self._uniqueid_of_name) >= self.max_channels:
            self._uniqueid_of_name.pop(next(iter(self._uniqueid_of_name)))
        self._uniqueid_of_name[channel] = uniqueid
        if linkedid:
            if len(self._linkedid_of) >= self.max_channels:
                self._linkedid_of.pop(next(iter(self._linkedid_of)))
            self._linkedid_of[uniqueid] = linkedid

    # -- header injection ------------------------------------------------------------
    def _registry_identity(self, h: Headers, prefix: str,
                           first_is_genuine: bool) -> tuple[str, str, str] | None:
        """(channel, uniqueid, linkedid) of the one registered channel among the candidates.

        The event's first snapshot has its genuine channel name first (every injection follows
        it); for the others an unregistered candidate may be the genuine one, so any makes the
        identity unresolvable (an injected registered name must not win over it)."""
        uniqueids = set(values(h, prefix + "uniqueid"))
        candidates = values(h, prefix + "channel")
        if first_is_genuine:
            candidates = candidates[:1]
        elif any(c not in self._uniqueid_of_name for c in candidates):
            return None
        found: dict[str, str] = {}
        for channel in candidates:
            uniqueid = self._uniqueid_of_name.get(channel)
            if uniqueid and (not uniqueids or uniqueid in uniqueids):
                found[uniqueid] = channel
        if len(found) != 1:
            return None
        uniqueid, channel = next(iter(found.items()))
        return channel, uniqueid, self._linkedid_of.get(uniqueid, "")

    def _untaint(self, h: Headers, r: Resolved, name: str) -> Resolved | None:
        """Identity of a frame with repeated identity headers, or None (drop it)."""
        self.injections += 1
        why = ""
        if r.positional:
            known = self._uniqueid_of_name.get(text(r, "channel"))
            if known and text(r, "uniqueid") and known != text(r, "uniqueid"):
                why = "Uniqueid contradicts the channel registry"
            linked = self._linkedid_of.get(text(r, "uniqueid"))
            if not why and linked and text(r, "linkedid") and linked != text(r, "linkedid"):
                why = "Linkedid contradicts the channel registry"
        else:
            for prefix in snapshot_prefixes(r):
                found = self._registry_identity(h, prefix, FIRST_SNAPSHOT.get(name) == prefix)
                if found is None:
                    why = f"{prefix or 'caller '}identity not resolvable from the channel registry"
                    break
                r[prefix + "channel"], r[prefix + "uniqueid"] = found[0], found[1]
                if found[2]:
                    r[prefix + "linkedid"] = found[2]
        channel = text(r, "channel")[:80]
        caller = mask_number(values(h, "calleridnum")[0] if values(h, "calleridnum") else "")
        if why:
            self.injections_dropped += 1
        if channel not in self._warned:
            if len(self._warned) >= 10_000:
                self._warned.pop(next(iter(self._warned)))
            self._warned[channel] = None
            log.warning("AMI header injection attempt in %s on channel %s from caller %s (repeated %s): %s",
                        name, channel, caller, ",".join(r.repeated)[:120],
                        "event dropped, " + why if why else
                        "identity kept by position" if r.positional else "identity from the channel registry")
        else:
            log.debug("AMI header injection again in %s on channel %s: %s", name, channel,
                      "dropped, " + why if why else "identity resolved")
        return None if why else r

    def _identity(self, h: Headers, name: str, prefix: str = "") -> tuple[str, str] | None:
        """(call_id, channel_id) from ``<prefix>Linkedid`` / ``<prefix>Uniqueid``."""
        uniqueid = text(h, prefix + "uniqueid")
        linkedid = text(h, prefix + "linkedid")
        if linkedid:
            call_id = self.call_id_for(linkedid)
        elif uniqueid and uniqueid in self._call_of_channel:
            call_id = self._call_of_channel[uniqueid]
        else:
            self._malformed(h, name, "no %sLinkedid and no known %sUniqueid", prefix, prefix)
            return None
        if not uniqueid:
            self._malformed(h, name, "no %sUniqueid", prefix)
            return None
        self.remember(uniqueid, call_id)
        return call_id, uniqueid

    def _malformed(self, h: Headers, name: str, why: str, *args: object) -> None:
        self.malformed += 1
        log.warning("malformed AMI %s event (" + why + "): linkedid=%r uniqueid=%r channel=%r",
                    name or "?", *args, text(h, "linkedid")[:64], text(h, "uniqueid")[:64],
                    text(h, "channel")[:80])

    def _int(self, h: Headers, key: str, name: str, call_id: str) -> int:
        raw = text(h, key)
        if not raw:
            return 0
        try:
            return int(raw)
        except ValueError:
            self.malformed += 1
            log.warning("AMI %s: bad number %s=%r, using 0 (call %s)", name, key, raw[:32], call_id)
            return 0

    def _ignore(self, name: str, why: str, *args: object) -> list[ev.CallEvent]:
        """Count and log (lazily: this is the hot path for noise events) why ``name`` is dropped."""
        self.ignored += 1
        log.debug("ignored AMI %s: " + why, name, *args)
        return []

    # -- entry point ----------------------------------------------------------------
    def normalize(self, msg: Headers, now: float) -> list[Any]:
        h = fold(msg)
        name = text(h, "event")
        handler = HANDLERS.get(name)
        if handler is None:
            return self._ignore(name or "(no Event header)", "no handler (not needed by the recorder)")
        try:
            resolved: Resolved | None = resolve(h, name)
            if resolved.tainted:
                resolved = self._untaint(h, resolved, name)
                if resolved is None:
                    return []
            h = resolved
            self.arrived_at = now
            # a reply to our own action or a connection-level event (no Timestamp): arrival time
            at = now if name in ARRIVAL_TIMED else self.clock.at(h, now)
            return handler(self, h, name, at)
        except Exception:  # per-frame containment: a bad frame never stops the daemon
            self.malformed += 1
            log.exception("could not normalize AMI %s (linkedid=%r uniqueid=%r)", name,
                          text(h, "linkedid")[:64], text(h, "uniqueid")[:64])
            return []


# -- handlers: (normalizer, headers, event name, now) -> [events] ------------------------
def on_newchannel(n: Normalizer, h: Headers, name: str, now: float) -> list[Any]:
    ids = n._identity(h, name)
    if ids is None:
        return []
    n.note_channel_name(text(h, "channel"), ids[1], text(h, "linkedid"))
    return [ev.ChannelCreated(at=now, call_id=ids[0], channel_id=ids[1],
                              channel=text(h, "channel"), caller_num=text(h, "calleridnum"),
                              caller_name=text(h, "calleridname"), exten=text(h, "exten"),
                              context=text(h, "context"), account_code=text(h, "accountcode"))]


def on_newstate(n: Normalizer, h: Headers, name: str, now: float) -> list[Any]:
    if text(h, "channelstate") != ANSWERED_STATE:
        return n._ignore(name, "ChannelState %r is not Up (6)", text(h, "channelstate")[:8])
    ids = n._identity(h, name)
    if ids is None:
        return []
    return [ev.ChannelAnswered(at=now, call_id=ids[0], channel_id=ids[1],
                               channel=text(h, "channel"))]


def on_hangup(n: Normalizer, h: Headers, name: str, now: float) -> list[Any]:
    ids = n._identity(h, name)
    if ids is None:
        return []
    return [ev.ChannelHungUp(at=now, call_id=ids[0], channel_id=ids[1],
                             channel=text(h, "channel"), cause=n._int(h, "cause", name, ids[0]),
                             cause_text=text(h, "cause-txt"))]


def on_bridge_enter(n: Normalizer, h: Headers, name: str, now: float) -> list[Any]:
    ids = n._identity(h, name)
    if ids is None:
        return []
    return [ev.Bridged(at=now, call_id=ids[0], channel_id=ids[1], channel=text(h, "channel"),
                       bridge_id=text(h, "bridgeuniqueid"),
                       bridge_channels=n._int(h, "bridgenumchannels", name, ids[0]))]


def on_bridge_leave(n: Normalizer, h: Headers, name: str, now: float) -> list[Any]:
    ids = n._identity(h, name)
    if ids is None:
        return []
    return [ev.Unbridged(at=now, call_id=ids[0], channel_id=ids[1], channel=text(h, "channel"),
                         bridge_id=text(h, "bridgeuniqueid"))]


def on_cdr(n: Normalizer, h: Headers, name: str, now: float) -> list[Any]:
    uniqueid = text(h, "uniqueid")
    linkedid = text(h, "linkedid")
    if linkedid:
        call_id = n.call_id_for(linkedid)
    else:
        found = n.call_of_channel(uniqueid) if uniqueid else None
        if found is None:
            n._malformed(h, name, "no Linkedid and UniqueID %r is not a channel we saw", uniqueid[:64])
            return []
        call_id = found
    fields = {}
    for key in h:
        mapped = CDR_FIELDS.get(key.lower())
        if mapped is not None:
            fields[mapped] = text(h, key)
        elif key.lower() not in ("event", "privilege", "amaflags", "timestamp", "systemname"):
            fields[key.lower()] = text(h, key)  # extra cdr_manager.conf mappings
    return [ev.CdrPosted(at=now, call_id=call_id, channel_id=uniqueid, fields=fields)]


def on_mixmonitor_start(n: Normalizer, h: Headers, name: str, now: float) -> list[Any]:
    ids = n._identity(h, name)
    if ids is None:
        return []
    return [ev.MixMonitorStarted(at=now, call_id=ids[0], channel_id=ids[1], channel=text(h, "channel"),
                                 arrived_at=n.arrived_at)]


#: the snippet's report of a MixMonitor it started itself at answer (dialplan/asterisk/pbx-recorder.conf)
EARLY_START_EVENT = "PbxrecEarlyStart"
_EARLY_REF = re.compile(r"[A-Za-z0-9_]{1,40}")  # MixMonitorIDs ("0x55d0...")
_EARLY_REC = re.compile(r"[A-Za-z0-9_.:-]{1,120}")  # our recording ids (naming.make_recording_id)


def on_user_event(n: Normalizer, h: Headers, name: str, now: float) -> list[Any]:
    """``UserEvent(PbxrecEarlyStart,PbxrecRec: <recording id>,PbxrecMMID: <MixMonitorID>)`` ->
    RecordingStarted: the core adopts the recording the dialplan started (it finds the recording
    by id within the channel's own call, so a forged event can only confirm a start)."""
    if text(h, "userevent") == UNAVAILABLE_EVENT:  # the snippet's fail direction, with its reason
        return on_unavailable(n, h, name, now, text=text)
    if text(h, "userevent") != EARLY_START_EVENT:
        return n._ignore(name, "not a pbx-recorder user event")
    rec, ref = text(h, "pbxrecrec").strip(), text(h, "pbxrecmmid").strip()
    if not _EARLY_REC.fullmatch(rec):
        return n._ignore(name, "no usable recording id")
    ids = n._identity(h, name)
    if ids is None:
        return []
    return [ev.RecordingStarted(at=now, call_id=ids[0], channel_id=ids[1], channel=text(h, "channel"),
                                recording_id=rec, pbx_ref=ref if _EARLY_REF.fullmatch(ref) else "")]


def on_mixmonitor_stop(n: Normalizer, h: Headers, name: str, now: float) -> list[Any]:
    ids = n._identity(h, name)
    if ids is None:
        return []
    return [ev.RecordingStopped(at=now, call_id=ids[0], channel_id=ids[1],
                                channel=text(h, "channel"), pbx_ref=text(h, "mixmonitorid"))]


def on_mixmonitor_mute(n: Normalizer, h: Headers, name: str, now: float) -> list[Any]:
    ids = n._identity(h, name)
    if ids is None:
        return []
    state = text(h, "state").strip().lower()
    return [ev.RecordingMuted(at=now, call_id=ids[0], channel_id=ids[1],
                              channel=text(h, "channel"), muted=state in ("1", "yes", "true", "on"),
                              direction=text(h, "direction") or "both")]


def on_varset(n: Normalizer, h: Headers, name: str, now: float) -> list[Any]:
    var = text(h, "variable")
    if not var.startswith(VAR_PREFIX):
        return n._ignore(name, "variable is not ours (no %s prefix)", VAR_PREFIX)
    ids = n._identity(h, name)
    if ids is None:
        return []
    return [ev.VariableSet(at=now, call_id=ids[0], channel_id=ids[1], channel=text(h, "channel"),
                           name=var, value=text(h, "value"))]


def on_queue_caller_join(n: Normalizer, h: Headers, name: str, now: float) -> list[Any]:
    ids = n._identity(h, name)
    if ids is None:
        return []
    return [ev.QueueCallerJoined(at=now, call_id=ids[0], channel_id=ids[1],
                                 channel=text(h, "channel"), queue=text(h, "queue"))]


def on_agent_connect(n: Normalizer, h: Headers, name: str, now: float) -> list[Any]:
    ids = n._identity(h, name)  # Channel/Linkedid are the caller's; Dest* the member's
    if ids is None:
        return []
    return [ev.AgentConnected(at=now, call_id=ids[0], channel_id=ids[1], channel=text(h, "channel"),
                              queue=text(h, "queue"), agent=text(h, "membername") or text(h, "interface"),
                              agent_channel=text(h, "destchannel"))]


def on_blind_transfer(n: Normalizer, h: Headers, name: str, now: float) -> list[Any]:
    if text(h, "result") not in ("", "Success"):
        return n._ignore(name, "transfer result %r", text(h, "result")[:20])
    ids = n._identity(h, name, prefix="transferer")
    if ids is None:
        return []
    target_linkedid = text(h, "transfereelinkedid")
    return [ev.Transferred(at=now, call_id=ids[0], channel_id=ids[1],
                           channel=text(h, "transfererchannel"), kind="blind",
                           target_call_id=n.call_id_for(target_linkedid) if target_linkedid else "",
                           target_channel=text(h, "transfereechannel"))]


def on_attended_transfer(n: Normalizer, h: Headers, name: str, now: float) -> list[Any]:
    if text(h, "result") not in ("", "Success"):
        return n._ignore(name, "transfer result %r", text(h, "result")[:20])
    ids = n._identity(h, name, prefix="origtransferer")
    if ids is None:
        return []
    target_linkedid = text(h, "secondtransfererlinkedid") or text(h, "transfertargetlinkedid")
    return [ev.Transferred(at=now, call_id=ids[0], channel_id=ids[1],
                           channel=text(h, "origtransfererchannel"), kind="attended",
                           target_call_id=n.call_id_for(target_linkedid) if target_linkedid else "",
                           target_channel=text(h, "transfertargetchannel")
                           or text(h, "secondtransfererchannel"))]


def on_core_show_channel(n: Normalizer, h: Headers, name: str, now: float) -> list[Any]:
    ids = n._identity(h, name)
    if ids is None:
        return []
    n.note_channel_name(text(h, "channel"), ids[1], text(h, "linkedid"))
    return [ev.LiveChannel(at=now, call_id=ids[0], channel_id=ids[1], channel=text(h, "channel"),
                           state=(text(h, "channelstatedesc") or text(h, "channelstate")).lower(),
                           caller_num=text(h, "calleridnum"), bridged=bool(text(h, "bridgeid")))]


def on_connection_level(n: Normalizer, h: Headers, name: str, now: float) -> list[Any]:
    return n._ignore(name, "connection-level event, handled by the AMI client")


Handler = Callable[[Normalizer, Headers, str, float], list[Any]]


HANDLERS: dict[str, Handler] = {
    "Newchannel": on_newchannel,
    "Newstate": on_newstate,
    "Hangup": on_hangup,
    "BridgeEnter": on_bridge_enter,
    "BridgeLeave": on_bridge_leave,
    "Cdr": on_cdr,
    "MixMonitorStart": on_mixmonitor_start,
    "MixMonitorStop": on_mixmonitor_stop,
    "MixMonitorMute": on_mixmonitor_mute,
    "VarSet": on_varset,
    "UserEvent": on_user_event,
    "QueueCallerJoin": on_queue_caller_join,
    "AgentConnect": on_agent_connect,
    "BlindTransfer": on_blind_transfer,
    "AttendedTransfer": on_attended_transfer,
    "CoreShowChannel": on_core_show_channel,
    "FullyBooted": on_connection_level,
    "CoreShowChannelsComplete": on_connection_level,
}

#: replies to our own actions and what Asterisk sends a session at login: no ``Timestamp``
ARRIVAL_TIMED = frozenset({"CoreShowChannel", *(k for k, v in HANDLERS.items() if v is on_connection_level)})
