"""The consent steps of the call state machine: the dialogue's request, its outcome or its
failure, the decision without a Gosub, and the end of a call (every channel gone, the CDR awaited,
the call finalized).  Pure; part of :class:`pbx_recorder.core.calls.CallBook`."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from pbx_recorder.core import call_consent_outcomes as CO
from pbx_recorder.core import call_faults as F
from pbx_recorder.core import constants as C
from pbx_recorder.core import events as E
from pbx_recorder.core.call_book_core import CallBookCore
from pbx_recorder.core.call_model import (
    Call,
    Recording,
    call_row,
    recording_metadata,
)
from pbx_recorder.core.commands import (
    Command,
    DiscardRecording,
    FinalizeRecording,
    SetChannelVar,
    StopRecording,
    UpsertCall,
)
from pbx_recorder.core.consent_policy import allows_recording
from pbx_recorder.core.early_start import decision_at_entry
from pbx_recorder.core.naming import (
    safe_component,
)
from pbx_recorder.core.rules import CallContext, RuleDecision

log = logging.getLogger(__name__)

#: a call back in a consent session after the core settled it: the result the dialplan hears
_SETTLED_RESULT = {
    C.STATE_RECORDING: C.RESULT_RECORD,
    C.STATE_PAUSED: C.RESULT_RECORD,
    C.STATE_WAITING_BRIDGE: C.RESULT_RECORD,
    C.STATE_STOPPED: C.RESULT_RECORD,
    C.STATE_REFUSED: C.RESULT_NORECORD,  # the refusal was carried out on the first pass
    C.STATE_NOT_RECORDED: C.RESULT_NORECORD,  # failed, capacity, ...: a recording was withdrawn
}


def takes_request(call: Call) -> bool:
    """A consent request decides this call (again): nothing was decided yet, or it was not
    recorded and nothing was ever started for it (e.g. ``no_consent_path`` after the grace)."""
    return call.state in (C.STATE_IDLE, C.STATE_NOT_RECORDED) and not call.recordings and not call.ended_at


def settled_result(call: Call | None, channel: str = "") -> str:
    """What a consent request for ``call`` from ``channel`` answers when the core ignores it (it
    was settled): the settled result, never "record" for a call that is not recorded, and no
    dialogue played again (its outcome would be ignored).  "" when the request is the core's to
    decide: an unknown or ended call (a reused linkedid is a new call), a call it takes, or one
    whose dialogue is still pending on the same channel.

    A pending dialogue belongs to the caller's channel (``consent_channel``): another channel of
    the same call (an agent's ``Local/...;2`` leg running the snippet too) gets "norecord" and no
    dialogue of its own, so nobody but the caller answers the caller's question."""
    if call is None or call.ended_at is not None or takes_request(call):
        return ""
    if call.state == C.STATE_CONSENT_PENDING:
        return C.RESULT_NORECORD if not owns_consent(call, channel) else ""
    return _SETTLED_RESULT.get(call.state, "")


def owns_consent(call: Call, channel: str) -> bool:
    """``channel`` is the one whose dialogue decides ``call``'s consent (or none was named)."""
    return not channel or not call.consent_channel or channel == call.consent_channel


def stop_command(call: Call, rec: Recording) -> StopRecording:
    """The stop of exactly ``rec``: its MixMonitorID / file as the PBX reported it, the files the
    core chose (FreeSWITCH stops by path), and whether the PBX ever confirmed its start."""
    return StopRecording(call.call_id, rec.recording_id, rec.channel, rec.pbx_ref, paths=rec.paths,
                         pbx_started=rec.pbx_started_at is not None or not rec.early,
                         handed_over=rec.early)


class ConsentSteps(CallBookCore):
    """Consent and the end of a call."""

    def resolve_consent(self, call: Call, decision: str, evidence: dict[str, Any], at: float,
                        channel: str) -> list[Command]:
        return self._resolve(call, decision, evidence, at, channel)


    def _on_consent_requested(self, ev: E.ConsentRequested, now: float) -> list[Command]:
        call = self._get(ev, now)
        assert call is not None
        if call.ended_at is not None:  # the linkedid came back: this is another call
            call = F.new_generation(self, call, ev.at)
        if not takes_request(call):
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

    def settled_result(self, call_id: str, channel: str = "") -> str:
        """The ``PBXREC_RESULT`` a consent request for this call from ``channel`` must get without
        a new decision, or "" when the core takes the request (see :func:`settled_result`)."""
        return settled_result(self._calls.get(self._cid(call_id)), channel)

    def owns_consent(self, call_id: str, channel: str) -> bool:
        """False when another channel's dialogue decides this call's consent: a request from
        ``channel`` gets no decision (and so no dialogue) of its own."""
        call = self._calls.get(self._cid(call_id))
        return call is None or owns_consent(call, channel)

    def decision_at_entry(self, ev: E.ConsentRequested) -> RuleDecision | None:
        """The rule decision for a call entering the snippet, when nothing learnt later can change
        it (pbx_recorder/core/early_start.py); no state changes."""
        call = self._calls.get(self._cid(ev.call_id))
        caller = ev.caller_num or (call.caller_num if call else "")
        ctx = CallContext(direction=ev.direction, dialed=ev.dialed, caller=caller, queue=ev.queue,
                          agent=ev.agent, vip=ev.vip, region=ev.region, at=ev.at)
        return decision_at_entry(self.rules, ctx)

    def _on_consent_resolved(self, ev: E.ConsentResolved, now: float) -> list[Command]:
        call = self._get(ev, now, create=False)
        if call is not None and ev.decision == C.CONSENT_FAILED and self._none_start_withdrawn(call, ev):
            log.warning("consent session failed before the dialplan heard 'record' call=%s: the consent-none "
                        "recording is stopped and discarded", call.call_id)
            return self._resolve(call, ev.decision, dict(ev.evidence), ev.at, "")
        if call is None or call.state != C.STATE_CONSENT_PENDING:
            log.debug("consent result ignored call=%s", ev.call_id)
            return []
        if not owns_consent(call, ev.channel):  # only the caller's own dialogue answers the caller
            log.warning("consent result %s from another channel of the call ignored call=%s: the "
                        "dialogue runs on the caller's channel", ev.decision[:32], call.call_id)
            return []
        return self._resolve(call, ev.decision, dict(ev.evidence), ev.at, ev.channel)

    @staticmethod
    def _none_start_withdrawn(call: Call, ev: E.ConsentResolved) -> bool:
        """A consent session that decided ``consent: none`` (the core started, or waits at the
        bridge to start, the call recording) and then failed before ``PBXREC_RESULT=record``
        reached the channel sends ``failed``: the dialplan takes its fail direction ("unrecorded"),
        so the recording must not go on (consent/async_session.py, esl/consent_session.py)."""
        return (call.consent_decision == "not_required" and call.consent_channel == ev.channel != ""
                and call.ended_at is None
                and call.state in (C.STATE_RECORDING, C.STATE_PAUSED, C.STATE_WAITING_BRIDGE))

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
                cmds.append(stop_command(call, rec))
            cmds.append(SetChannelVar(call.call_id, channel, C.VAR_RESULT, C.RESULT_RECORD))
            return cmds
        log.info("consent not given call=%s decision=%s: discarding", call.call_id, decision[:32])
        call.state, call.result = C.STATE_REFUSED, C.RESULT_REFUSED
        if decision in C.SYSTEM_CONSENT_OUTCOMES:  # ours, not the caller's: "not recorded: <why>"
            call.state, call.result = C.STATE_NOT_RECORDED, C.RESULT_NORECORD
            call.flag(decision)
        for rec in call.active_recordings():
            rec.stop(at)
            cmds.append(stop_command(call, rec))
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
        if call.state == C.STATE_CONSENT_PENDING and not owns_consent(call, ev.channel):
            log.info("consent unavailable (%s) on another channel ignored call=%s: the caller's "
                     "dialogue is pending", reason, call.call_id)
            return []
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
