"""The per-call state machine: events in, commands out.  Pure: no I/O, time is passed in.

States (``Call.state``)::

    idle -> consent_pending -> recording <-> paused -> (ended) -> finalized
                 |      \\-> waiting_bridge -> recording
                 |-> refused            (consent not given: everything recorded is discarded)
    idle -> not_recorded                (no rule records it, or no consent path)
    ended: every channel gone, waiting up to ``cdr_wait_s`` for the CDR.

Spooled / stored / verified belong to the pipeline, not here.

Call ids: events may carry the raw Asterisk linkedid or an id already made with
:func:`naming.make_call_id`; both are normalized to ``<node>_<linkedid>``.

Dispatch is one visible table (``_HANDLERS``); an event type not in it returns no commands.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from pbx_recorder import call_consent_outcomes as CO
from pbx_recorder import call_faults as F
from pbx_recorder import constants as C
from pbx_recorder import events as E
from pbx_recorder.call_model import (
    Call,
    Recording,
    call_from_dict,
    call_row,
    call_to_dict,
    recording_metadata,
)
from pbx_recorder.commands import (
    Command,
    DiscardRecording,
    FinalizeRecording,
    MuteRecording,
    SetChannelVar,
    StartRecording,
    StopRecording,
    UpsertCall,
)
from pbx_recorder.consent_policy import allows_recording
from pbx_recorder.early_start import decision_at_entry
from pbx_recorder.naming import (
    boot_of_call_id,
    make_call_id,
    make_recording_id,
    mixed_path,
    recording_paths,
    safe_component,
    split_call_id,
)
from pbx_recorder.rule_memo import RuleMemo
from pbx_recorder.rules import CallContext, RuleDecision, RuleLike

log = logging.getLogger(__name__)

_OPEN = (C.STATE_IDLE, C.STATE_CONSENT_PENDING, C.STATE_WAITING_BRIDGE, C.STATE_RECORDING, C.STATE_PAUSED,
         C.STATE_STOPPED, C.STATE_REFUSED, C.STATE_NOT_RECORDED)


class CallBook:
    """All calls this node tracks.  ``handle``/``tick`` return the commands to carry out."""

    def __init__(self, node: str, monitor_dir: str, rules: Sequence[RuleLike], cdr_wait_s: float = 10.0,
                 stale_after_s: float = 4 * 3600.0, gosub_grace_s: float = 3.0,
                 keep_finished_s: float = 120.0) -> None:
        self.node = node
        self.monitor_dir = monitor_dir
        self.rules = tuple(rules)
        self._rules = RuleMemo(self.rules)  # evaluate once per distinct input the rules look at
        self.cdr_wait_s = cdr_wait_s
        self.stale_after_s = stale_after_s
        self.gosub_grace_s = gosub_grace_s
        self.keep_finished_s = keep_finished_s
        self._calls: dict[str, Call] = {}
        self._prefix = safe_component(node, 32, allow_underscore=False) + "_"
        self.boot = ""  # the PBX run we are connected to (events.PbxBooted)
        self.question_start_reported = False  # seen a ConsentAsked (call_consent_outcomes.py)
        self.aliases: dict[str, str] = {}  # call id -> id of the newer call that reused its linkedid
        self.link_lost_at: float | None = None  # the AMI link went down then (events.PbxLinkLost)

    # --- public API --------------------------------------------------------------------

    def handle(self, event: object, now: float) -> list[Command]:
        handler = _HANDLERS.get(type(event))
        if handler is None:
            log.debug("ignored event %s", type(event).__name__)
            return []
        try:
            return handler(self, event, now)
        except Exception:  # contain one bad event: log with the call id and go on
            log.exception("event %s failed call=%s", type(event).__name__,
                          getattr(event, "call_id", "-"))
            return []

    def tick(self, now: float) -> list[Command]:
        cmds: list[Command] = []
        for call in list(self._calls.values()):
            if call.state == C.STATE_FINALIZED:
                if call.finalized_at is not None and now >= call.finalized_at + self.keep_finished_s:
                    del self._calls[call.call_id]
                continue
            if call.state == C.STATE_ENDED:
                if call.cdr_deadline is not None and now >= call.cdr_deadline:
                    call.flag("cdr_missing")
                    cmds += self._finalize(call, now)
                continue
            if call.decide_at is not None and now >= call.decide_at:
                cmds += self._decide_without_gosub(call, now)
            if now >= call.updated_at + self.stale_after_s:
                log.warning("stale call=%s: no event for %.0f s, ending it", call.call_id,
                            now - call.updated_at)
                call.flag("stale")
                cmds += self._end(call, now)
        return cmds

    def decision(self, call_id: str) -> RuleDecision | None:
        call = self._calls.get(self._cid(call_id))
        return RuleDecision.from_dict(call.decision) if call and call.decision else None

    def snapshot(self, call_id: str) -> dict[str, Any]:
        return call_to_dict(self._calls[self._cid(call_id)])

    def restore(self, data: dict[str, Any]) -> None:
        call = call_from_dict(data)
        call.restored = True
        self._calls[call.call_id] = call
        if self.generation_of(call.call_id) > 1:
            base = call.call_id.rsplit("-r", 1)[0]
            if self.generation_of(self.aliases.get(base, base)) < self.generation_of(call.call_id):
                self.aliases[base] = call.call_id

    # --- used by call_faults -------------------------------------------------------------

    @property
    def node_prefix(self) -> str:
        """How this node's call ids begin (``<node>_``)."""
        return self._prefix

    @property
    def calls(self) -> dict[str, Call]:
        return self._calls

    @staticmethod
    def generation_of(call_id: str) -> int:
        base, sep, n = call_id.rpartition("-r")
        return int(n) if sep and base and n.isdigit() else 1

    def find(self, call_id: str) -> Call | None:
        return self._calls.get(self._cid(call_id))

    def end_call(self, call: Call, at: float) -> list[Command]:
        return self._end(call, at)

    def resolve_consent(self, call: Call, decision: str, evidence: dict[str, Any], at: float,
                        channel: str) -> list[Command]:
        return self._resolve(call, decision, evidence, at, channel)

    def live_call_ids(self) -> list[str]:
        return [c.call_id for c in self._calls.values() if c.state != C.STATE_FINALIZED]

    def recording_ids(self) -> set[str]:
        """Every recording of every call held here (live or kept after finalizing)."""
        return {r.recording_id for c in self._calls.values() for r in c.recordings}

    def state(self, call_id: str) -> str:
        call = self._calls.get(self._cid(call_id))
        return call.state if call else ""

    def request_pause(self, call_id: str, paused: bool, now: float) -> list[Command]:
        """Operator pause/resume (PCI): mute every active recording's channel."""
        call = self._calls.get(self._cid(call_id))
        if call is None:
            return []
        channels = dict.fromkeys(r.channel for r in call.active_recordings())
        return [MuteRecording(call.call_id, ch, paused) for ch in channels]

    # --- helpers -----------------------------------------------------------------------

    def _cid(self, raw: str) -> str:
        cid = raw if raw.startswith(self._prefix) else make_call_id(self.node, raw)
        return self.aliases.get(cid, cid)

    def _get(self, ev: E.CallEvent, now: float, create: bool = True) -> Call | None:
        cid = self._cid(ev.call_id)
        call = self._calls.get(cid)
        if call is None and create:
            boot = boot_of_call_id(cid)
            linked = ev.call_id if not ev.call_id.startswith(self._prefix) else split_call_id(cid)[1]
            linked = linked[len(boot) + 1:] if boot and linked.startswith(boot + "-") else linked
            call = Call(call_id=cid, node=self.node, linkedid=linked, created_at=ev.at, updated_at=now,
                        boot=boot)
            self._calls[cid] = call
        if call is not None and call.state != C.STATE_FINALIZED:
            call.updated_at = now
        return call

    @staticmethod
    def _add_leg(call: Call, uniqueid: str, channel: str) -> None:
        if not call.legs:
            call.first_channel_id, call.first_channel = uniqueid, channel
        if uniqueid and uniqueid not in call.legs:
            call.legs[uniqueid] = channel
        if uniqueid and uniqueid not in call.live:
            call.live.append(uniqueid)

    def _start(self, call: Call, kind: str, channel: str, at: float, dialogue: bool = False) -> list[Command]:
        decision = call.decision or {}
        mode = decision.get("mode", "mixed") if kind == C.KIND_CALL else "mixed"
        call.rec_seq += 1
        rid = make_recording_id(call.call_id, kind, call.rec_seq)
        legs: tuple[str, ...] = ()
        if mode == "dual":
            legs = recording_paths(self.monitor_dir, call.call_id, rid, at, "dual")
            path = mixed_path(self.monitor_dir, rid, at)
        else:
            path = recording_paths(self.monitor_dir, call.call_id, rid, at, mode)[0]
        call.recordings.append(Recording(recording_id=rid, kind=kind, seq=call.rec_seq, mode=mode,
                                         channel=channel, path=path, leg_paths=list(legs), started_at=at))
        log.info("start recording call=%s rec=%s kind=%s mode=%s", call.call_id, rid, kind, mode)
        cmds: list[Command] = [StartRecording(call.call_id, rid, channel, path, mode, kind, legs, dialogue)]
        if kind == C.KIND_CALL:
            cmds += [SetChannelVar(call.call_id, channel, C.VAR_CDR_RECORDINGFILE, posixpath.basename(path)),
                     SetChannelVar(call.call_id, channel, C.VAR_RECORDING_ID, rid),
                     SetChannelVar(call.call_id, channel, C.VAR_RECORDING_PATH, path)]
            call.state = C.STATE_RECORDING
        return cmds

    def _record_channel(self, call: Call) -> str:
        live = call.live_channels()
        for ch in (call.consent_channel, call.first_channel):
            if ch and ch in live:
                return ch
        return live[0] if live else (call.consent_channel or call.first_channel)

    def _start_main(self, call: Call, at: float) -> list[Command]:
        if call.active_recordings(C.KIND_CALL):
            return []
        decision = call.decision or {}
        if decision.get("start_on") == "bridge" and call.bridged_at is None:
            call.state = C.STATE_WAITING_BRIDGE
            return []
        return self._start(call, C.KIND_CALL, self._record_channel(call), at)

    def _set_decision(self, call: Call, decision: RuleDecision) -> None:
        call.decision = decision.to_dict()
        log.info("decision call=%s record=%s rule=%s reason=%s", call.call_id, decision.record,
                 decision.rule or "-", decision.reason)

    def _no_record(self, call: Call, channel: str) -> list[Command]:
        call.state, call.result = C.STATE_NOT_RECORDED, C.RESULT_NORECORD
        return [SetChannelVar(call.call_id, channel, C.VAR_RESULT, C.RESULT_NORECORD)] if channel else []

    # --- consent -----------------------------------------------------------------------

    def _on_consent_requested(self, ev: E.ConsentRequested, now: float) -> list[Command]:
        call = self._get(ev, now)
        assert call is not None
        if call.ended_at is not None:  # the linkedid came back: this is another call
            call = F.new_generation(self, call, ev.at)
        if call.state not in (C.STATE_IDLE, C.STATE_NOT_RECORDED) or call.recordings or call.ended_at:
            log.info("duplicate consent request ignored call=%s state=%s", call.call_id, call.state)
            return []
        self._add_leg(call, ev.channel_id, ev.channel)
        call.consent_requested, call.consent_channel, call.decide_at = True, ev.channel, None
        call.direction, call.dialed, call.queue, call.agent = ev.direction, ev.dialed, ev.queue, ev.agent
        call.region, call.language, call.vip = ev.region, ev.language, ev.vip
        call.caller_num = ev.caller_num or call.caller_num
        call.caller_name = ev.caller_name or call.caller_name
        call.flags = [f for f in call.flags if f != "no_consent_path"]
        ctx = CallContext(direction=ev.direction, dialed=ev.dialed, caller=call.caller_num, queue=ev.queue,
                          agent=ev.agent, vip=ev.vip, region=ev.region, at=ev.at)
        decision = self._rules.evaluate(ctx)
        self._set_decision(call, decision)
        if not decision.record:
            return self._no_record(call, ev.channel)
        call.state = C.STATE_CONSENT_PENDING
        cmds: list[Command] = []
        if decision.record_notice:  # the call recording runs before the notice is played
            cmds += self._start(call, C.KIND_CALL, ev.channel, ev.at, dialogue=decision.consent != "none")
            call.state = C.STATE_CONSENT_PENDING
        elif decision.consent == "explicit":
            cmds += self._start(call, C.KIND_CONSENT, ev.channel, ev.at, dialogue=True)
        if decision.consent == "none":
            cmds += self._resolve(call, "not_required", {}, ev.at, ev.channel)
        if ev.early:  # the snippet runs this MixMonitor itself at answer (consent/async_session.py)
            for rec in call.active_recordings(C.KIND_CALL):
                rec.early = True
        return cmds

    def decision_at_entry(self, ev: E.ConsentRequested) -> RuleDecision | None:
        """The rule decision for a call entering the snippet, when nothing learnt later can change
        it (pbx_recorder/early_start.py); no state changes."""
        call = self._calls.get(self._cid(ev.call_id))
        caller = ev.caller_num or (call.caller_num if call else "")
        ctx = CallContext(direction=ev.direction, dialed=ev.dialed, caller=caller, queue=ev.queue,
                          agent=ev.agent, vip=ev.vip, region=ev.region, at=ev.at)
        return decision_at_entry(self.rules, ctx)

    def _on_consent_resolved(self, ev: E.ConsentResolved, now: float) -> list[Command]:
        call = self._get(ev, now, create=False)
        if call is None or call.state != C.STATE_CONSENT_PENDING:
            log.debug("consent result ignored call=%s", ev.call_id)
            return []
        return self._resolve(call, ev.decision, dict(ev.evidence), ev.at, ev.channel)

    def _resolve(self, call: Call, decision: str, evidence: dict[str, Any], at: float,
                 channel: str) -> list[Command]:
        call.consent_decision = decision
        call.consent_evidence = evidence or {"decision": decision, "decided_at": at}
        cmds: list[Command] = []
        if allows_recording(decision):
            consent_segments = call.active_recordings(C.KIND_CONSENT)
            call.result = C.RESULT_RECORD
            if call.active_recordings(C.KIND_CALL):
                call.state = C.STATE_RECORDING
            else:  # the call recording starts first: no gap, and it never waits behind the stop
                cmds += self._start_main(call, at)
            for rec in consent_segments:
                rec.stop(at)  # finalized with the call, once its CDR is in (linked, not cdr_missing)
                cmds.append(StopRecording(call.call_id, rec.recording_id, rec.channel, rec.pbx_ref))
            cmds.append(SetChannelVar(call.call_id, channel, C.VAR_RESULT, C.RESULT_RECORD))
            return cmds
        log.info("consent not given call=%s decision=%s: discarding", call.call_id, decision[:32])
        call.state, call.result = C.STATE_REFUSED, C.RESULT_REFUSED
        if decision in C.SYSTEM_CONSENT_OUTCOMES:  # ours, not the caller's: "not recorded: <why>"
            call.state, call.result = C.STATE_NOT_RECORDED, C.RESULT_NORECORD
            call.flag(decision)
        for rec in call.active_recordings():
            rec.stop(at)
            cmds.append(StopRecording(call.call_id, rec.recording_id, rec.channel, rec.pbx_ref))
        if decision != "hangup" and decision not in C.SYSTEM_CONSENT_OUTCOMES and channel:
            cmds += self._refusal_vars(call, channel)
        cmds += self._discard_all(call, f"consent_{safe_component(decision, 24)}")
        return cmds

    @staticmethod
    def _refusal_vars(call: Call, channel: str) -> list[Command]:
        """As the dialplan snippet reads them: route "continue" -> norecord (the call goes on);
        "hangup" -> refused without a route; a goto target -> refused + PBXREC_ROUTE."""
        route = (call.decision or {}).get("refusal_route", C.ROUTE_CONTINUE)
        if route == C.ROUTE_CONTINUE:
            return [SetChannelVar(call.call_id, channel, C.VAR_RESULT, C.RESULT_NORECORD)]
        cmds: list[Command] = [SetChannelVar(call.call_id, channel, C.VAR_RESULT, C.RESULT_REFUSED)]
        if route != C.ROUTE_HANGUP:
            cmds.append(SetChannelVar(call.call_id, channel, C.VAR_ROUTE, route))
        return cmds

    def _discard_all(self, call: Call, reason: str) -> list[Command]:
        cmds: list[Command] = []
        for rec in call.recordings:  # a "failed" one too: a timed-out start may have left a file
            if rec.state in ("finalized", "discarded"):
                continue
            rec.stop(call.ended_at or rec.started_at)
            rec.state = "discarded"
            cmds.append(DiscardRecording(call.call_id, rec.recording_id, rec.paths, reason))
        return cmds

    def _on_consent_unavailable(self, ev: E.ConsentUnavailable, now: float) -> list[Command]:
        """The consent session could not run (refused for capacity, daemon stopping, failed): the
        snippet took its fail direction.  Settle the call as not recorded, with the reason."""
        call = self._get(ev, now)
        assert call is not None
        reason = ev.reason if ev.reason in C.SYSTEM_CONSENT_OUTCOMES else C.CONSENT_FAILED
        if call.state == C.STATE_CONSENT_PENDING:
            return self._resolve(call, reason, {"decision": reason, "decided_at": ev.at}, ev.at, "")
        if call.state not in (C.STATE_IDLE, C.STATE_NOT_RECORDED) or call.recordings or call.ended_at \
                or CO.already_settled(call):
            log.info("consent unavailable (%s) ignored call=%s state=%s", reason, call.call_id, call.state)
            return []
        CO.replace_no_consent_path(call, reason)
        self._add_leg(call, ev.channel_id, ev.channel)
        call.consent_requested, call.decide_at = True, None  # no decision without the Gosub later
        call.state, call.result = C.STATE_NOT_RECORDED, C.RESULT_NORECORD
        call.consent_decision = reason
        call.consent_evidence = {"decision": reason, "decided_at": ev.at}
        call.flag(reason)
        log.info("not recorded call=%s: consent session %s", call.call_id, reason)
        return []

    def _decide_without_gosub(self, call: Call, at: float) -> list[Command]:
        """Answered (or bridged) without passing the recorder's Gosub: decide with what is known."""
        call.decide_at = None
        if call.consent_requested or call.decision is not None:
            return []
        ctx = CallContext(direction="", dialed=call.exten, caller=call.caller_num, at=at)
        decision = self._rules.evaluate(ctx)
        if decision.record and decision.consent in ("notify", "explicit"):
            why = (f"rule {decision.rule!r} needs {decision.consent} consent but the call never passed "
                   "the consent Gosub: not recorded (fail closed)")
            decision = replace(decision, record=False, reason="no_consent_path",
                               explanation=[*decision.explanation, why])
            call.flag("no_consent_path")
        self._set_decision(call, decision)
        if not decision.record:
            return self._no_record(call, call.first_channel)
        call.consent_decision, call.result = "not_required", C.RESULT_RECORD
        return self._start_main(call, at)

    # --- channels ----------------------------------------------------------------------

    def _on_created(self, ev: E.ChannelCreated, now: float) -> list[Command]:
        call = self._get(ev, now)
        assert call is not None
        if F.is_new_call(call, ev.channel_id, creating=True):  # the linkedid came back
            call = F.new_generation(self, call, ev.at)
        if ev.channel_id and ev.channel_id not in call.created:
            call.created.append(ev.channel_id)
        first = not call.legs
        self._add_leg(call, ev.channel_id, ev.channel)
        if first:
            call.caller_num, call.caller_name, call.exten = ev.caller_num, ev.caller_name, ev.exten
            call.context, call.accountcode = ev.context, ev.account_code
        return []

    def _on_answered(self, ev: E.ChannelAnswered, now: float) -> list[Command]:
        call = self._get(ev, now)
        assert call is not None
        if call.state in (C.STATE_FINALIZED, C.STATE_ENDED):
            return []
        self._add_leg(call, ev.channel_id, ev.channel)
        if call.answered_at is None:
            call.answered_at = ev.at
        if call.consent_requested or call.decision is not None:
            return []
        if ev.channel_id != call.first_channel_id:  # the callee picked up: no Gosub is coming
            return self._decide_without_gosub(call, ev.at)
        call.decide_at = ev.at + self.gosub_grace_s  # the caller's own Answer(): the Gosub may follow
        return []

    def _on_bridged(self, ev: E.Bridged | E.AgentConnected, now: float) -> list[Command]:
        call = self._get(ev, now, create=False)
        if call is None or call.state in (C.STATE_FINALIZED, C.STATE_ENDED):
            return []
        if isinstance(ev, E.AgentConnected):
            call.agent = call.agent or ev.agent
            call.queue = call.queue or ev.queue
        if call.bridged_at is None:
            call.bridged_at = ev.at
        if not call.consent_requested and call.decision is None:
            return self._decide_without_gosub(call, ev.at)
        if call.state == C.STATE_WAITING_BRIDGE:
            return self._start(call, C.KIND_CALL, self._record_channel(call), ev.at)
        return []

    def _on_transferred(self, ev: E.Transferred, now: float) -> list[Command]:
        call = self._get(ev, now, create=False)
        if call is None:
            return []
        call.flag("transferred")
        if ev.target_call_id and ev.target_call_id != call.call_id \
                and all(link["call_id"] != ev.target_call_id for link in call.transfer_links):
            call.transfer_links.append({"kind": ev.kind, "call_id": ev.target_call_id, "at": ev.at})
        # Only the transferer leaves; a recording on another channel (e.g. the transferee, who stays
        # in the call) is not affected.  Arm "follow the transfer" only when the recorded channel is
        # the one leaving: otherwise that channel's own final hang-up would start a bogus segment.
        if any(r.channel == ev.channel for r in call.active_recordings(C.KIND_CALL)):
            call.transferred = True
            call.transfer_target = ev.target_channel or call.transfer_target
        return []

    def _on_hungup(self, ev: E.ChannelHungUp, now: float) -> list[Command]:
        call = self._get(ev, now, create=False)
        if call is None or call.state in (C.STATE_FINALIZED, C.STATE_ENDED):
            return []
        if ev.channel_id in call.live:
            call.live.remove(ev.channel_id)
        if not call.live:
            return self._end(call, ev.at)
        cmds: list[Command] = []
        for rec in call.active_recordings(C.KIND_CALL):
            if rec.channel != ev.channel:
                continue
            rec.stop(ev.at)  # the PBX stopped it with the channel
            if call.transferred:  # same call, same series: continue on a surviving channel (once)
                call.transferred = False
                live = call.live_channels()
                target = call.transfer_target if call.transfer_target in live else live[0]
                log.info("recording follows transfer call=%s rec=%s", call.call_id, rec.recording_id)
                cmds += self._start(call, C.KIND_CALL, target, ev.at)
            else:
                call.state = C.STATE_STOPPED
        return cmds

    def _end(self, call: Call, at: float) -> list[Command]:
        """Every channel is gone: stop the clocks, wait for the CDR (or finalize now)."""
        call.live.clear()
        call.ended_at = at
        cmds: list[Command] = F.settle_never_started(call, at)
        if call.state == C.STATE_CONSENT_PENDING and call.restored:  # its dialogue died with us
            cmds += F.settle_interrupted(self, call, at)
        elif call.state == C.STATE_CONSENT_PENDING:  # hung up before the dialogue ended
            evidence = CO.hangup_evidence(call, at, self.question_start_reported)
            cmds += self._resolve(call, "hangup", evidence, at, "")
        for rec in call.active_recordings():
            rec.stop(at)
        call.state = C.STATE_ENDED
        call.cdr_deadline = at + self.cdr_wait_s
        if call.cdrs:
            cmds += self._finalize(call, at)
        return cmds

    def _finalize(self, call: Call, now: float) -> list[Command]:
        status = call.status()
        cmds: list[Command] = []
        for rec in call.recordings:
            if not F.usable(rec):
                continue
            rec.stop(call.ended_at or now)
            if status not in ("answered", "unknown"):
                rec.state = "discarded"
                cmds.append(DiscardRecording(call.call_id, rec.recording_id, rec.paths, "unanswered"))
            else:
                rec.state = "finalized"
                cmds.append(FinalizeRecording(call.call_id, rec.recording_id, rec.paths,
                                              recording_metadata(call, rec)))
        call.state, call.finalized_at = C.STATE_FINALIZED, now
        cmds.append(UpsertCall(call.call_id, call_row(call, now)))
        log.info("finalized call=%s status=%s recordings=%d", call.call_id, status, len(call.recordings))
        return cmds

    def _on_cdr(self, ev: E.CdrPosted, now: float) -> list[Command]:
        call = self._get(ev, now, create=False)
        if call is None:
            log.debug("CDR for an unknown call ignored call=%s", ev.call_id)
            return []
        call.cdrs.append({str(k).lower(): str(v) for k, v in ev.fields.items()})
        if call.state == C.STATE_ENDED:
            return self._finalize(call, now)
        if call.state == C.STATE_FINALIZED:  # late or extra CDR: refresh the row only
            call.flag("cdr_late")
            return [UpsertCall(call.call_id, call_row(call, now))]
        return []

    # --- recordings --------------------------------------------------------------------

    def _on_muted(self, ev: E.RecordingMuted, now: float) -> list[Command]:
        call = self._get(ev, now, create=False)
        if call is None:
            return []
        recs = [r for r in call.active_recordings() if r.channel == ev.channel] or call.active_recordings()
        for rec in recs:
            if ev.muted and rec.state == "recording":
                rec.state = "paused"
                rec.pauses.append([ev.at, None])
            elif not ev.muted and rec.state == "paused":
                rec.state = "recording"
                rec.pauses[-1][1] = ev.at
        if call.state in (C.STATE_RECORDING, C.STATE_PAUSED) and recs:
            call.state = C.STATE_PAUSED if ev.muted else C.STATE_RECORDING
        return []

    def _find_rec(self, call: Call, rid: str, ref: str) -> Recording | None:
        for rec in call.recordings:
            if (rid and rec.recording_id == rid) or (ref and rec.pbx_ref == ref):
                return rec
        return None

    def _on_rec_started(self, ev: E.RecordingStarted, now: float) -> list[Command]:
        call = self._get(ev, now, create=False)
        rec = self._find_rec(call, ev.recording_id, "") if call else None
        if rec is not None:
            rec.pbx_ref = ev.pbx_ref or rec.pbx_ref
            if rec.early and rec.pbx_started_at is None:  # decided while ringing, started at answer
                rec.started_at = ev.at
            rec.pbx_started_at = ev.at
        return []

    def _on_rec_stopped(self, ev: E.RecordingStopped, now: float) -> list[Command]:
        call = self._get(ev, now, create=False)
        rec = self._find_rec(call, ev.recording_id, ev.pbx_ref) if call else None
        if rec is not None:
            rec.stop(ev.at)
        return []

    # --- resynchronization -------------------------------------------------------------

    def _on_live_channel(self, ev: E.LiveChannel, now: float) -> list[Command]:
        known = self._cid(ev.call_id) in self._calls
        call = self._get(ev, now)
        assert call is not None
        if known:
            if call.state not in (C.STATE_FINALIZED, C.STATE_ENDED):
                self._add_leg(call, ev.channel_id, ev.channel)
            if call.state == C.STATE_CONSENT_PENDING and call.restored:
                return F.settle_interrupted(self, call, ev.at)
            return []
        self._add_leg(call, ev.channel_id, ev.channel)
        call.caller_num = ev.caller_num
        call.flag("adopted_on_resync")
        result = ev.variables.get(C.VAR_RESULT, "")
        rid = ev.variables.get(C.VAR_RECORDING_ID, "")
        if ev.variables.get(C.VAR_DIALOGUE_MMID) and not result:
            return F.settle_orphan_dialogue(call, ev)
        if rid and result == C.RESULT_RECORD:  # already recording: adopt it, never start twice
            seq = int(rid[-3:]) if rid[-3:].isdigit() else 1
            call.recordings.append(Recording(rid, C.KIND_CALL, seq, "mixed", ev.channel,
                                             ev.variables.get(C.VAR_RECORDING_PATH, ""), started_at=ev.at))
            call.rec_seq, call.result, call.state = seq, C.RESULT_RECORD, C.STATE_RECORDING
            call.flag("partial_timeline")
            return []
        if result in (C.RESULT_REFUSED, C.RESULT_NORECORD):
            call.result = result
            call.state = C.STATE_REFUSED if result == C.RESULT_REFUSED else C.STATE_NOT_RECORDED
            return []
        if ev.state.lower() != "up":
            return []
        call.answered_at = ev.at
        if ev.bridged:
            call.bridged_at = ev.at
        if result == C.RESULT_RECORD:  # consent was given before we lost track; not started yet
            decision = self._rules.evaluate(CallContext(dialed=call.exten, caller=call.caller_num, at=ev.at))
            self._set_decision(call, decision)
            call.result, call.consent_decision = C.RESULT_RECORD, "granted_before_restart"
            call.flag("consent_from_channel_var")
            return self._start_main(call, ev.at) if decision.record else []
        return self._decide_without_gosub(call, ev.at)

    def _on_resync_completed(self, ev: E.ResyncCompleted, now: float) -> list[Command]:
        live = {self._cid(c) for c in ev.live_call_ids}
        cmds: list[Command] = []
        for call in list(self._calls.values()):
            if call.state in _OPEN and call.call_id not in live:
                log.info("call ended while we were away call=%s", call.call_id)
                call.flag("ended_while_disconnected")
                cmds += self._end(call, ev.at)
        return cmds


_HANDLERS: dict[type, Callable[[CallBook, Any, float], list[Command]]] = {
    E.ChannelCreated: CallBook._on_created,
    E.ChannelAnswered: CallBook._on_answered,
    E.ChannelHungUp: CallBook._on_hungup,
    E.Bridged: CallBook._on_bridged,
    E.AgentConnected: CallBook._on_bridged,
    E.Transferred: CallBook._on_transferred,
    E.ConsentRequested: CallBook._on_consent_requested,
    E.ConsentResolved: CallBook._on_consent_resolved,
    E.ConsentUnavailable: CallBook._on_consent_unavailable,
    E.ConsentAsked: CO.on_consent_asked,
    E.RecordingStarted: CallBook._on_rec_started,
    E.RecordingStopped: CallBook._on_rec_stopped,
    E.RecordingMuted: CallBook._on_muted,
    E.CdrPosted: CallBook._on_cdr,
    E.LiveChannel: CallBook._on_live_channel,
    E.RecordingFailed: F.on_rec_failed,
    E.PbxBooted: F.on_pbx_booted,
    E.PbxLinkLost: F.on_link_lost,
    E.ResyncCompleted: CallBook._on_resync_completed,
}
