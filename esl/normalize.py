"""FreeSWITCH events -> the core's CallEvents (pure: no I/O, time passed in).

One visible dispatch table, :data:`HANDLERS` (``Event-Name`` -> handler; CUSTOM events by
``Event-Subclass`` in :data:`CUSTOM_HANDLERS`).  An event not in them returns ``[]`` with a
debug line saying why.

On FreeSWITCH the core's ``channel`` is the channel's uuid (``Unique-ID``): channel names
(``sofia/internal/1000@host``) repeat across concurrent calls, uuids do not, and every ESL
command addresses a channel by uuid.

Call identity (CONTRACT.md section 5): the root uuid of a leg is fixed at first sight from
``variable_PBXREC_CALL_ID``, else a known leg named by ``variable_cc_member_session_uuid`` /
``variable_originating_leg_uuid`` / ``Other-Leg-Unique-ID`` (originator) / ``Channel-Call-UUID``,
else the leg's own uuid.  ``call_id = make_call_id(node, root)``.

Every header value comes from the wire and some from the caller (names, numbers, SIP
headers): values are sanitized (control characters out, bounded) before they go anywhere.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from esl.frames import EslEvent, HeaderSet, pick
from esl.replaces import replaces_transfer
from pbx_recorder.core import events as ev
from pbx_recorder.core.masking import sanitize as _sanitize
from pbx_recorder.core.naming import make_call_id

log = logging.getLogger(__name__)

_UUID = re.compile(r"[0-9A-Za-z-]{1,64}")
MAX_LEGS = 100_000
ID_VAR = "variable_PBXREC_CALL_ID"
_LINK_HEADERS = ("variable_cc_member_session_uuid", "variable_originating_leg_uuid")
_HANGUP_STATES = ("CS_HANGUP", "CS_REPORTING", "CS_DESTROY")
TRANSFER_CAUSES = {"BLIND_TRANSFER": "blind", "ATTENDED_TRANSFER": "attended"}
NO_ANSWER_CAUSES = ("NO_ANSWER", "NO_USER_RESPONSE", "ORIGINATOR_CANCEL", "ALLOTTED_TIMEOUT")


def sanitize(value: object, limit: int = 64) -> str:
    """masking.sanitize, with a fast path for the common case (printable and short enough)."""
    if isinstance(value, str) and len(value) <= limit and value.isprintable():
        return value
    return _sanitize(value, limit)


def uuid_of(value: str) -> str:
    return value if _UUID.fullmatch(value) else ""


def epoch(value: str) -> float | None:
    """``Event-Date-Timestamp`` is microseconds; ``*_epoch`` variables are seconds."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number / 1e6 if number > 1e12 else number


class EslNormalizer:
    def __init__(self, node: str, max_legs: int = MAX_LEGS) -> None:
        self.node = node
        self.max_legs = max_legs
        node_part = make_call_id(node, "x")[:-1]  # "<safe node>_", as make_call_id spells it
        self._prefix = node_part if node_part.endswith("_") else ""
        self._roots: OrderedDict[str, str] = OrderedDict()  # leg uuid -> root uuid
        # leg uuid -> its call id, for legs already seen by _ids: a known Unique-ID skips the
        # uuid check and the call id spelling (the root is fixed at first sight, so is the id)
        self._call_of: dict[str, str] = {}
        self.partners: dict[str, str] = {}  # leg -> the leg it was last bridged with
        self.transfers: dict[str, str] = {}  # leg -> the transfer_source already reported
        self.ignored = 0
        self.injections = 0  # caller fields that carried control characters (CR/LF ...): counted, cut

    # --- identity -------------------------------------------------------------------
    def root_of(self, h: Mapping[str, str], leg: str | None = None) -> str:
        """The root uuid of the event's leg (learned at first sight, never re-derived).
        ``leg``: the event's ``uuid_of(Unique-ID)`` when the caller has it already."""
        if leg is None:
            leg = uuid_of(h.get("Unique-ID", ""))
        root = self._roots.get(leg) if leg else None
        if root is not None:
            return root
        root = uuid_of(h.get(ID_VAR, ""))
        if not root:
            links = [h.get(k, "") for k in _LINK_HEADERS]
            if h.get("Other-Type") == "originator":
                links.append(h.get("Other-Leg-Unique-ID", ""))
            links.append(h.get("Channel-Call-UUID", ""))
            for link in map(uuid_of, links):
                if link and link != leg:
                    root = self._roots.get(link, link)
                    break
        root = root or leg
        if leg:
            self.learn(leg, root)
        return root

    def learn(self, leg: str, root: str) -> None:
        if leg in self._roots:
            return
        if len(self._roots) >= self.max_legs:
            oldest, _ = self._roots.popitem(last=False)
            self._call_of.pop(oldest, None)
        self._roots[leg] = root

    def forget(self, leg: str) -> None:
        self._roots.pop(leg, None)
        self._call_of.pop(leg, None)
        self.transfers.pop(leg, None)  # partners stay until the leg's partner is gone too
        partner = self.partners.pop(leg, "")
        if partner and partner not in self._roots:
            self.partners.pop(partner, None)

    def call_id(self, root: str) -> str:
        # a uuid (uuid_of) opening with a letter or digit and without "--" is already the
        # path-safe component make_call_id would keep: no regex and no hashing per event
        if root[:1].isalnum() and "--" not in root and self._prefix:
            return self._prefix + root
        return make_call_id(self.node, root)

    def uniqueid_of(self, channel: str) -> str:
        """The core's channel IS the uuid on FreeSWITCH (daemon.py asks the AMI way)."""
        return channel

    # --- dispatch -------------------------------------------------------------------
    def normalize(self, event: EslEvent, now: float) -> list[Any]:
        """Events no handler wants (RECORD_START, PLAYBACK_*, HEARTBEAT ...) are dropped after
        one look-up (``Event-Name``); a handler reads only the headers it uses, decoded then."""
        h = event.headers
        name = h.get("Event-Name", "")
        handler = HANDLERS.get(name)
        if handler is None and name == "CUSTOM":
            handler = CUSTOM_HANDLERS.get(h.get("Event-Subclass", ""))
        if handler is None:
            self.ignored += 1
            log.debug("ESL event %s ignored: not call state", sanitize(name, 40) or "(no Event-Name)")
            return []
        try:
            return handler(self, h, now)
        except (ValueError, KeyError) as exc:  # one bad event: logged, the stream goes on
            log.warning("ESL event %s not understood: %s", sanitize(name, 40), exc)
            return []

    def _ids(self, h: Mapping[str, str]) -> tuple[str, str] | None:
        """(call id, leg uuid) of the event's leg; None without a valid ``Unique-ID``."""
        raw = h.get("Unique-ID", "")
        call_id = self._call_of.get(raw)
        if call_id is not None:  # a leg seen before: validated then, its root fixed then
            return call_id, raw
        leg = uuid_of(raw)
        if not leg:
            return None
        call_id = self.call_id(self.root_of(h, leg))
        if leg in self._roots:  # learnt (not evicted at once): remember its id with it
            self._call_of[leg] = call_id
        return call_id, leg

    @staticmethod
    def at(h: Mapping[str, str], now: float) -> float:
        return epoch(h.get("Event-Date-Timestamp", "")) or now


Handler = Callable[[EslNormalizer, Mapping[str, str], float], list[Any]]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def on_create(n: EslNormalizer, h: Mapping[str, str], now: float) -> list[Any]:
    ids = n._ids(h)
    if ids is None:
        return []
    number = h.get("Caller-Caller-ID-Number", "")
    name = h.get("Caller-Caller-ID-Name", "")
    exten = h.get("Caller-Destination-Number", "")
    # isprintable() is False for every control character: the regex runs only on suspects
    if not (number.isprintable() and name.isprintable() and exten.isprintable()) and any(
        _CONTROL.search(v) for v in (number, name, exten)
    ):
        n.injections += 1
        log.warning("control characters in the caller data of channel %s: removed", ids[1])
    return [
        ev.ChannelCreated(
            at=n.at(h, now),
            call_id=ids[0],
            channel_id=ids[1],
            channel=ids[1],
            caller_num=sanitize(number, 40),
            caller_name=sanitize(name, 80),
            exten=sanitize(exten, 80),
            context=sanitize(h.get("Caller-Context", ""), 80),
            account_code=sanitize(h.get("variable_accountcode", ""), 40),
        )
    ]


def on_answer(n: EslNormalizer, h: Mapping[str, str], now: float) -> list[Any]:
    ids = n._ids(h)
    if ids is None:
        return []
    return [ev.ChannelAnswered(at=n.at(h, now), call_id=ids[0], channel_id=ids[1], channel=ids[1])]


def blind_transfer(
    n: EslNormalizer, h: Mapping[str, str], ids: tuple[str, str], at: float, target: str = ""
) -> list[Any]:
    """Transferred, once per transfer, when the leg carries a new ``variable_transfer_source``
    ``<epoch>:<uuid>:bl_xfer:<ext>/<context>/<dialplan>`` (set from the CHANNEL_UNBRIDGE on): the
    transferer is the leg's previous bridge partner.  FreeSWITCH hangs that partner up with
    BLIND_TRANSFER only for signal bridges; after a media bridge its cause is NORMAL_CLEARING
    (tests/fixtures/esl/queue_bridge_blind_transfer.esl), so the cause alone is not enough."""
    previous = n.partners.get(ids[1], "")
    if not previous or previous == target:  # no partner to have transferred (no header scan then)
        return []
    source = h.get("variable_transfer_source", "")
    if ":bl_xfer:" not in source or n.transfers.get(ids[1]) == source:
        return []
    n.transfers[ids[1]] = source
    return [
        ev.Transferred(
            at=at, call_id=ids[0], channel_id=previous, channel=previous, kind="blind", target_channel=target
        )
    ]


def attended_transfer(n: EslNormalizer, ids: tuple[str, str], at: float, a_leg: str, b_leg: str) -> list[Any]:
    """Transferred(kind="attended") when a bridge joins two legs that were both last bridged to
    the same third leg: the transferer, who talked to each in turn (the held caller, then the
    colleague in the consultation) and leaves them together.  That is ``att_xfer`` completed by
    the agent hanging up (FreeSWITCH ``uuid_bridge``s the held caller with the colleague,
    ``variable_att_xfer_result: success``; tests/fixtures/esl/queue_attended_transfer.esl), and
    any ``uuid_bridge`` of the two far ends.  Reported once: the bridge makes them partners."""
    if not a_leg or not b_leg or a_leg == b_leg:
        return []
    transferer = n.partners.get(a_leg, "")
    if not transferer or transferer in (a_leg, b_leg) or n.partners.get(b_leg) != transferer:
        return []
    caller = n._roots.get(ids[1], "")  # the call's root leg stays; the other one is the new party
    target = a_leg if b_leg == caller else b_leg
    return [
        ev.Transferred(
            at=at, call_id=ids[0], channel_id=transferer, channel=transferer, kind="attended",
            target_channel=target,
        )
    ]


def on_bridge(n: EslNormalizer, h: Mapping[str, str], now: float) -> list[Any]:
    """CHANNEL_BRIDGE -> Bridged (after any blind or attended transfer it completes)."""
    ids = n._ids(h)
    if ids is None:
        return []
    at = n.at(h, now)
    a_leg = uuid_of(h.get("Bridge-A-Unique-ID", "")) or ids[1]
    b_leg = uuid_of(h.get("Bridge-B-Unique-ID", "")) or uuid_of(h.get("Other-Leg-Unique-ID", ""))
    out = (blind_transfer(n, h, ids, at, b_leg) or attended_transfer(n, ids, at, a_leg, b_leg)
           or replaces_transfer(n, h, ids, at, a_leg, b_leg))
    if b_leg:
        n.learn(b_leg, n.root_of(h, ids[1]))  # the other leg joins this call if it is new to us
        n.partners[ids[1]], n.partners[b_leg] = b_leg, ids[1]
    out.append(
        ev.Bridged(
            at=at, call_id=ids[0], channel_id=ids[1], channel=ids[1], bridge_id=a_leg, bridge_channels=2
        )
    )
    return out


def on_unbridge(n: EslNormalizer, h: Mapping[str, str], now: float) -> list[Any]:
    ids = n._ids(h)
    if ids is None:
        return []
    at = n.at(h, now)
    a_leg = uuid_of(h.get("Bridge-A-Unique-ID", "")) or ids[1]
    return [
        ev.Unbridged(at=at, call_id=ids[0], channel_id=ids[1], channel=ids[1], bridge_id=a_leg),
        *blind_transfer(n, h, ids, at),
    ]


def on_hangup_complete(n: EslNormalizer, h: Mapping[str, str], now: float) -> list[Any]:
    ids = n._ids(h)
    if ids is None:
        return []
    root = n.root_of(h, ids[1])
    at = n.at(h, now)
    cause_text = sanitize(h.get("Hangup-Cause", "") or h.get("variable_hangup_cause", ""), 40)
    q850 = h.get("variable_hangup_cause_q850", "")
    out: list[Any] = []
    kind = TRANSFER_CAUSES.get(cause_text)
    if kind:  # the leg was hung up BECAUSE its partner was transferred away (switch_ivr_session_transfer)
        out.append(ev.Transferred(at=at, call_id=ids[0], channel_id=ids[1], channel=ids[1], kind=kind))
    cause = int(q850) if q850.isdigit() else 0
    out.append(
        ev.ChannelHungUp(
            at=at, call_id=ids[0], channel_id=ids[1], channel=ids[1], cause=cause, cause_text=cause_text
        )
    )
    if ids[1] == root:  # the call's CDR is the originating leg's
        out.append(ev.CdrPosted(at=at, call_id=ids[0], channel_id=ids[1], fields=cdr_fields(h)))
    n.forget(ids[1])
    return out


CDR_VARIABLES = HeaderSet(
    "variable_" + name
    for name in (
        "start_stamp", "answer_stamp", "end_stamp", "start_epoch", "answer_epoch", "end_epoch",
        "duration", "billsec", "hangup_cause", "accountcode", "last_bridge_to", "last_app",
        "sip_call_id", "PBXREC_DIALED", "cc_queue", "cc_agent", "PBXREC_UNAVAILABLE",
    )
)


def cdr_fields(h: Mapping[str, str]) -> dict[str, str]:
    """CHANNEL_HANGUP_COMPLETE ``variable_*`` -> the core's CDR keys (Asterisk spelling where one
    exists, so the catalog and manifests are the same on both PBXs) plus FreeSWITCH extras."""

    found = pick(h, CDR_VARIABLES)  # one pass over the block for all of them

    def var(name: str, limit: int = 64) -> str:
        return sanitize(found.get("variable_" + name, ""), limit)

    answer_epoch = var("answer_epoch")
    cause = sanitize(h.get("Hangup-Cause", "") or var("hangup_cause"), 40)
    if answer_epoch not in ("", "0"):
        disposition = "ANSWERED"
    elif cause in NO_ANSWER_CAUSES:
        disposition = "NO ANSWER"
    elif cause == "USER_BUSY":
        disposition = "BUSY"
    else:
        disposition = "FAILED"
    fields = {
        "start": var("start_stamp"),
        "answer": var("answer_stamp"),
        "end": var("end_stamp"),
        "start_epoch": var("start_epoch"),
        "answer_epoch": answer_epoch,
        "end_epoch": var("end_epoch"),
        "duration": var("duration"),
        "billsec": var("billsec"),
        "disposition": disposition,
        "hangup_cause": cause,
        "src": sanitize(h.get("Caller-Caller-ID-Number", ""), 40),
        "dst": sanitize(h.get("Caller-Destination-Number", ""), 80),
        "dcontext": sanitize(h.get("Caller-Context", ""), 80),
        "accountcode": var("accountcode", 40),
        "channel": sanitize(h.get("Channel-Name", ""), 120),
        "dstchannel": var("last_bridge_to", 64),
        "lastapp": var("last_app", 40),
        "sip_call_id": var("sip_call_id", 200),
        "pbxrec_dnid": var("PBXREC_DIALED", 80),
        "queue": var("cc_queue", 80),
        "agent": var("cc_agent", 80),
        "userfield": var("PBXREC_UNAVAILABLE", 80),
    }
    return {k: v for k, v in fields.items() if v}


def on_record_stop(n: EslNormalizer, h: Mapping[str, str], now: float) -> list[Any]:
    """A recording stopped while its channel lives (limit, file error): tell the core.  A stop
    caused by the hang-up is not reported: ChannelHungUp ends it (and may follow a transfer)."""
    ids = n._ids(h)
    if ids is None or h.get("Channel-State", "") in _HANGUP_STATES or h.get("Answer-State") == "hangup":
        return []
    path = h.get("Record-File-Path", "")
    return [
        ev.RecordingStopped(
            at=n.at(h, now), call_id=ids[0], channel_id=ids[1], channel=ids[1], pbx_ref=sanitize(path, 1000)
        )
    ]


def on_callcenter(n: EslNormalizer, h: Mapping[str, str], now: float) -> list[Any]:
    action = h.get("CC-Action", "")
    member = uuid_of(h.get("CC-Member-Session-UUID", ""))
    if not member:
        return []
    root = n.root_of({"Unique-ID": member})
    call_id = n.call_id(root)
    queue = sanitize(h.get("CC-Queue", ""), 80)
    if action in ("member-queue-start", "member-queue-resume"):
        return [
            ev.QueueCallerJoined(
                at=n.at(h, now), call_id=call_id, channel_id=member, channel=member, queue=queue
            )
        ]
    if action == "bridge-agent-start":
        agent_leg = uuid_of(h.get("CC-Agent-UUID", ""))
        if agent_leg:
            n.learn(agent_leg, root)
        return [
            ev.AgentConnected(
                at=n.at(h, now),
                call_id=call_id,
                channel_id=member,
                channel=member,
                queue=queue,
                agent=sanitize(h.get("CC-Agent", ""), 80),
                agent_channel=agent_leg,
            )
        ]
    log.debug("callcenter action %s ignored", sanitize(action, 40))
    return []


def on_mask(n: EslNormalizer, h: Mapping[str, str], now: float) -> list[Any]:
    """``pbxrec::mask`` (esl.commands.mask_event, from ``calls pause|resume``) -> RecordingMuted."""
    leg = uuid_of(h.get("PBXREC-Channel", ""))
    muted = h.get("PBXREC-Muted", "")
    if not leg or muted not in ("true", "false"):
        return []
    root = n.root_of({"Unique-ID": leg})
    return [
        ev.RecordingMuted(
            at=n.at(h, now), call_id=n.call_id(root), channel_id=leg, channel=leg, muted=muted == "true",
            exact=True,  # uuid_record mask names the file: no other recording is touched
        )
    ]


def live_channel(
    n: EslNormalizer, row: Mapping[str, Any], variables: Mapping[str, str], now: float
) -> ev.LiveChannel | None:
    """One row of ``show channels as json`` (+ the PBXREC_* variables read by uuid_getvar)."""
    leg = uuid_of(str(row.get("uuid", "")))
    if not leg:
        return None
    h = {
        "Unique-ID": leg,
        ID_VAR: variables.get("PBXREC_CALL_ID", ""),
        "Channel-Call-UUID": str(row.get("call_uuid", "")),
    }
    root = n.root_of(h)
    callstate = str(row.get("callstate", "")).upper()
    up = callstate in ("ACTIVE", "HELD", "BRIDGED") or str(row.get("state", "")) == "CS_EXCHANGE_MEDIA"
    bridged = callstate == "BRIDGED" or bool(uuid_of(str(row.get("b_uuid", "") or "")))
    return ev.LiveChannel(
        at=now,
        call_id=n.call_id(root),
        channel_id=leg,
        channel=leg,
        state="up" if up else "ring",
        caller_num=sanitize(row.get("cid_num", ""), 40),
        variables=dict(variables),
        bridged=bridged,
    )


HANDLERS: dict[str, Handler] = {
    "CHANNEL_CREATE": on_create,
    "CHANNEL_ANSWER": on_answer,
    "CHANNEL_BRIDGE": on_bridge,
    "CHANNEL_UNBRIDGE": on_unbridge,
    "CHANNEL_HANGUP_COMPLETE": on_hangup_complete,
    "RECORD_STOP": on_record_stop,
    # RECORD_START: the client reports RecordingStarted when uuid_record answers +OK.
    # PLAYBACK_START/STOP, DTMF: the consent session reads them on its own socket.
    # HEARTBEAT, BACKGROUND_JOB: handled by the client (liveness, bgapi results).
}

CUSTOM_HANDLERS: dict[str, Handler] = {
    "callcenter::info": on_callcenter,
    "pbxrec::mask": on_mask,
}
