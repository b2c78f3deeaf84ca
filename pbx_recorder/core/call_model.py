"""The per-call record kept by :class:`pbx_recorder.core.calls.CallBook`, and what it turns into.

Plain mutable dataclasses, JSON-safe through :func:`call_to_dict` / :func:`call_from_dict`
(the ``live_calls`` table keeps them across daemon restarts).  The builders at the end
make the ``calls`` table row and the FinalizeRecording metadata.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

from pbx_recorder.core.constants import STATE_IDLE

CDR_STATUS = {"ANSWERED": "answered", "NO ANSWER": "no_answer", "BUSY": "busy", "FAILED": "failed",
              "CONGESTION": "failed"}


@dataclass
class Recording:
    recording_id: str
    kind: str  # call | consent
    seq: int
    mode: str
    channel: str
    path: str
    leg_paths: list[str] = field(default_factory=list)
    started_at: float = 0.0
    stopped_at: float | None = None
    pauses: list[list[float | None]] = field(default_factory=list)  # [start, end|None]
    state: str = "recording"  # recording | paused | stopped | finalized | discarded | failed
    pbx_ref: str = ""
    pbx_started_at: float | None = None  # when the PBX confirmed the start (MixMonitor response)
    flags: list[str] = field(default_factory=list)  # this recording only, e.g. "cut"
    early: bool = False  # the dialplan starts it at answer (pbx_started_at once the PBX says so)
    start_seen: bool = False  # matched to the PBX's MixMonitorStart (core/mixmonitor_order.py)
    start_seen_at: float | None = None  # when that MixMonitorStart was read (the recorder's clock)
    auto_resume_at: float | None = None  # the core last asked the PBX to end this pause (pause_max_s)

    @property
    def active(self) -> bool:
        return self.state in ("recording", "paused")

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.path, *self.leg_paths) if self.path else tuple(self.leg_paths)

    def stop(self, at: float) -> None:
        if self.active:
            if self.pauses and self.pauses[-1][1] is None:
                self.pauses[-1][1] = at
            self.stopped_at = at
            self.state = "stopped"


@dataclass
class Call:
    call_id: str
    node: str
    linkedid: str
    created_at: float
    updated_at: float
    state: str = STATE_IDLE
    legs: dict[str, str] = field(default_factory=dict)  # uniqueid -> channel name, creation order
    live: list[str] = field(default_factory=list)  # uniqueids still up
    created: list[str] = field(default_factory=list)  # uniqueids seen in a ChannelCreated
    first_channel_id: str = ""
    first_channel: str = ""
    caller_num: str = ""
    caller_name: str = ""
    exten: str = ""
    context: str = ""
    accountcode: str = ""
    direction: str = ""
    dialed: str = ""
    queue: str = ""
    agent: str = ""
    region: str = ""
    language: str = ""
    vip: bool = False
    consent_requested: bool = False
    consent_channel: str = ""
    decision: dict[str, Any] | None = None  # RuleDecision.to_dict()
    consent_decision: str = ""
    consent_evidence: dict[str, Any] = field(default_factory=dict)
    result: str = ""  # record | refused | norecord
    recordings: list[Recording] = field(default_factory=list)
    rec_seq: int = 0
    answered_at: float | None = None
    bridged_at: float | None = None
    ended_at: float | None = None
    decide_at: float | None = None  # answered without the Gosub: decide at this time (tick)
    transferred: bool = False
    transfer_target: str = ""
    transfer_links: list[dict[str, Any]] = field(default_factory=list)  # other calls a transfer joined
    cdrs: list[dict[str, str]] = field(default_factory=list)
    cdr_deadline: float | None = None
    finalized_at: float | None = None
    flags: list[str] = field(default_factory=list)
    boot: str = ""  # the PBX run the call belongs to (naming.boot_tag); "" when unknown
    restored: bool = False  # restored from a snapshot by a restarted recorder
    # channel -> the MixMonitors running on it, in start order: our recording id, or "" for one
    # the recorder did not start (core/mixmonitor_order.py)
    mixmonitors: dict[str, list[str]] = field(default_factory=dict)
    mixmonitors_known: bool = True  # every MixMonitor event of the call seen (not after a gap)
    # events were lost after every recording of ours had started (their count stays trusted): a
    # recording of ours that starts from now on is not (core/mixmonitor_order.py survives_gap)
    mixmonitors_gap: bool = False
    # the PBX's mute events on recordings of ours: how many ("n"), how many were no sure pause
    # ("missed", with the last "doubt"); ``calls pause`` waits for its own (cli/pause_confirm.py)
    mute_events: dict[str, Any] = field(default_factory=dict)
    # the call's PCI pauses on the recorder's own clock (pbx.pause_max_s is a budget for all of
    # them together): seconds paused and over, and since when it is paused now (None: it is not)
    pause_spent: float = 0.0
    paused_since: float | None = None

    def flag(self, name: str) -> None:
        if name not in self.flags:
            self.flags.append(name)

    def active_recordings(self, kind: str | None = None) -> list[Recording]:
        return [r for r in self.recordings if r.active and (kind is None or r.kind == kind)]

    def channel_of(self, uniqueid: str) -> str:
        return self.legs.get(uniqueid, "")

    def live_channels(self) -> list[str]:
        return [self.legs[u] for u in self.live if u in self.legs]

    @property
    def cdr(self) -> dict[str, str] | None:
        """The CDR that describes the call: the first ANSWERED one, else the first."""
        for cdr in self.cdrs:
            if cdr.get("disposition", "").upper() == "ANSWERED":
                return cdr
        return self.cdrs[0] if self.cdrs else None

    def status(self) -> str:
        cdr = self.cdr
        if cdr is not None:
            return CDR_STATUS.get(cdr.get("disposition", "").upper(), "failed")
        if self.ended_at is None:
            return "live"
        if self.answered_at is not None or self.consent_requested:  # the snippet answers before AGI
            return "answered"
        # no CDR and no answer seen: "no_answer" only if we saw the whole call; events missed
        # while the AMI link was down (or before a restart) leave it unknown, never no_answer
        missed = {"ended_while_disconnected", "adopted_on_resync", "pbx_restarted"} & set(self.flags)
        return "unknown" if missed else "no_answer"


def _plain(value: Any) -> Any:
    """A deep copy of JSON-like data (what ``asdict`` makes of a Call's fields), without
    ``asdict``'s per-value ``deepcopy``: the daemon snapshots a call after every event."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, Recording):
        return {name: _plain(getattr(value, name)) for name in _RECORDING_FIELDS}
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return value
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else copy.deepcopy(value)


_RECORDING_FIELDS = tuple(Recording.__dataclass_fields__)
_CALL_FIELDS = tuple(Call.__dataclass_fields__)


def call_to_dict(call: Call) -> dict[str, Any]:
    """Equal to ``dataclasses.asdict(call)`` (tests/unit/test_call_model_dict.py), ~10x faster."""
    return {name: _plain(getattr(call, name)) for name in _CALL_FIELDS}


def call_from_dict(data: dict[str, Any]) -> Call:
    fields = {k: v for k, v in data.items() if k in Call.__dataclass_fields__}
    fields["recordings"] = [Recording(**{k: v for k, v in r.items() if k in Recording.__dataclass_fields__})
                            for r in fields.get("recordings", [])]
    for rec in fields["recordings"]:
        rec.pauses = [list(p) for p in rec.pauses]
        rec.leg_paths = list(rec.leg_paths)
        rec.flags = list(rec.flags)
    return Call(**fields)


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


# CDR keys that may carry the dialplan's CDR(pbxrec_dnid) (cdr_manager.conf mapping
# ``pbxrec_dnid => PbxrecDnid`` arrives lower-cased as ``pbxrecdnid``).
DNID_CDR_KEYS = ("pbxrec_dnid", "pbxrecdnid")


def dialed_number(call: Call) -> str:
    """The number the call was placed to.

    The consent request's ``dialed`` (AGI ``dialed=``) first, then the CDR's ``pbxrec_dnid``
    (set by the dialplan snippet before any Goto), and only then the CDR's ``dst`` -- which a
    dialplan ``Goto`` rewrites (e.g. to "1") -- or the channel's first extension.
    """
    if call.dialed:
        return call.dialed
    cdrs = [c for c in (call.cdr,) if c] + call.cdrs
    for cdr in cdrs:
        for key in DNID_CDR_KEYS:
            if cdr.get(key):
                return cdr[key]
    return (call.cdr or {}).get("dst", "") or call.exten


def callee_and_did(call: Call) -> tuple[str, str]:
    """``(callee_num, did)``: the callee is the dialed number; the DID only for inbound calls."""
    number = dialed_number(call)
    return number, number if call.direction == "inbound" else ""


def evidence_with_links(call: Call) -> dict[str, Any]:
    """The consent evidence as stored, plus ``transfer``: the calls a transfer joined this one with
    (``[{"kind", "call_id", "at"}]``, e.g. the consultation a phone placed before its REFER with
    Replaces, and in that call, the customer's call), so each row names the other."""
    evidence = dict(call.consent_evidence)
    if call.transfer_links:
        evidence["transfer"] = [dict(link) for link in call.transfer_links]
    return evidence


def recording_metadata(call: Call, rec: Recording) -> dict[str, Any]:
    """The manifest's call part for one recording (JSON-safe)."""
    decision = call.decision or {}
    callee, did = callee_and_did(call)
    return {
        "call_id": call.call_id, "pbx_node": call.node, "linkedid": call.linkedid,
        "uniqueids": list(call.legs), "recording_id": rec.recording_id, "kind": rec.kind, "seq": rec.seq,
        "mode": rec.mode, "channel": rec.channel, "direction": call.direction, "region": call.region,
        "callee_num": callee, "did": did,
        "rule": decision.get("rule", ""), "tags": list(decision.get("tags", [])),
        "retention_class": decision.get("retention_class", ""),
        "consent_decision": call.consent_decision, "consent": evidence_with_links(call),
        "started_at": rec.started_at, "stopped_at": rec.stopped_at,
        # Manifest field names (pipeline.manifest_from_metadata keeps only those): the recorded
        # span (from the PBX's confirmation of the start) and the CDR as received (its dst
        # unchanged), when it is already in.
        "recorded_from": rec.pbx_started_at or rec.started_at, "recorded_to": rec.stopped_at,
        "cdr": dict(call.cdr or {}),
        "pauses": [list(p) for p in rec.pauses], "flags": list(dict.fromkeys([*call.flags, *rec.flags])),
    }


# json.dumps(x, sort_keys=True) builds a new encoder per call; this is the same encoder, made once
_dumps_sorted = json.JSONEncoder(sort_keys=True).encode


def call_row(call: Call, now: float) -> dict[str, Any]:
    """The ``calls`` table row; JSON columns are JSON text, as the schema stores them."""
    decision = call.decision or {}
    cdr = call.cdr or {}
    record_decision = {"record": "record", "refused": "refused", "norecord": "no_record",
                       "failed": "not_recorded"}.get(call.result, "")
    duration = _int(cdr.get("duration"))
    if duration is None and call.ended_at is not None:
        duration = int(call.ended_at - call.created_at)
    billsec = _int(cdr.get("billsec"))
    callee, did = callee_and_did(call)  # the CDR's own dst stays as received in "cdr"
    if billsec is None and call.ended_at is not None and call.answered_at is not None:
        billsec = int(call.ended_at - call.answered_at)
    return {
        "call_id": call.call_id, "pbx_node": call.node, "linkedid": call.linkedid,
        "uniqueids": json.dumps(list(call.legs)), "direction": call.direction,
        "caller_num": call.caller_num, "caller_name": call.caller_name,
        "callee_num": callee, "did": did,
        "queue": call.queue, "agent": call.agent, "region": call.region,
        "accountcode": cdr.get("accountcode", "") or call.accountcode,
        "started_at": call.created_at, "answered_at": call.answered_at, "ended_at": call.ended_at,
        "duration": duration, "billsec": billsec, "disposition": cdr.get("disposition", ""),
        "status": call.status(), "rule": decision.get("rule", ""), "record_decision": record_decision,
        "consent_decision": call.consent_decision,
        "consent": _dumps_sorted(evidence_with_links(call)),
        "tags": json.dumps(list(decision.get("tags", []))),
        # the rule's tags again, sealed (``calls.tags`` is edited by the tag API): four-eyes reads
        # these, not the rule as configured today (``service.four_eyes.set_by_rule``)
        "rule_tags": json.dumps(list(decision.get("tags", []))),
        "retention_class": decision.get("retention_class", ""),
        "cdr": _dumps_sorted(dict(cdr)), "flags": json.dumps(call.flags), "updated_at": now,
    }
