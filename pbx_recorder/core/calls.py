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
from collections.abc import Callable
from typing import Any

from pbx_recorder.core import call_consent_outcomes as CO
from pbx_recorder.core import call_faults as F
from pbx_recorder.core import constants as C
from pbx_recorder.core import events as E
from pbx_recorder.core import mixmonitor_order as MO
from pbx_recorder.core.call_book_recording import RecordingSteps
from pbx_recorder.core.call_model import (
    Call,
    call_from_dict,
    call_row,
    call_to_dict,
)
from pbx_recorder.core.commands import (
    Command,
    MuteRecording,
    UpsertCall,
)
from pbx_recorder.core.rules import RuleDecision

log = logging.getLogger(__name__)


class CallBook(RecordingSteps):
    """All calls this node tracks.  ``handle``/``tick`` return the commands to carry out.  The
    steps live in ``call_book_core`` (state, helpers), ``call_book_consent`` and
    ``call_book_recording``; the channel events and the public API are here."""

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
            if self.pause_max_s > 0:
                cmds += self._auto_resume(call, now)
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
        call.mixmonitors_known = False  # events while the recorder was down were missed
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

    def find(self, call_id: str) -> Call | None:
        return self._calls.get(self._cid(call_id))

    def end_call(self, call: Call, at: float) -> list[Command]:
        return self._end(call, at)

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
        MO.channel_gone(call, ev.channel)
        if not call.live:
            return self._end(call, ev.at)
        cmds: list[Command] = []
        for rec in call.active_recordings(C.KIND_CALL):
            if rec.channel != ev.channel:
                continue
            was_paused = rec.state == "paused"
            rec.stop(ev.at)  # the PBX stopped it with the channel
            if call.transferred:  # same call, same series: continue on a surviving channel (once)
                call.transferred = False
                live = call.live_channels()
                target = call.transfer_target if call.transfer_target in live else live[0]
                log.info("recording follows transfer call=%s rec=%s", call.call_id, rec.recording_id)
                started = self._start(call, C.KIND_CALL, target, ev.at)
                cmds += self._keep_paused(call, started, ev.at) if was_paused else started
            else:
                call.state = C.STATE_STOPPED
        return cmds

    def _keep_paused(self, call: Call, started: list[Command], at: float) -> list[Command]:
        """A PCI pause survives the transfer: the segment that follows it starts muted (the
        MuteRecording right after its start, before its channel variables), stays ``paused`` with
        its pause open from its first second, until an explicit resume.  Otherwise card data
        spoken after the transfer would be recorded while the operator believes the call paused.
        On an Asterisk that mutes only a channel's first MixMonitor (or one whose version is not
        known) the pause is claimed only when the PBX's mute event shows it was the segment's
        (``_on_muted``): a mute that reached a MixMonitor of the PBX's own, or whose event was
        lost with the link, then claims nothing."""
        rec = call.recordings[-1]
        if self.mute_all is True or self.exact_mutes:
            rec.state = "paused"
            rec.pauses.append([at, None])
            call.state = C.STATE_PAUSED
        else:  # (not "paused" before the PBX says so: the operator's view is the recording's)
            call.state = C.STATE_RECORDING
        log.info("transferred recording starts paused (PCI) call=%s rec=%s", call.call_id, rec.recording_id)
        return [started[0], MuteRecording(call.call_id, rec.channel, True), *started[1:]]

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
    E.RecordingMuteFailed: CallBook._on_mute_failed,
    E.MixMonitorStarted: CallBook._on_mixmonitor_started,
    E.CdrPosted: CallBook._on_cdr,
    E.LiveChannel: CallBook._on_live_channel,
    E.RecordingFailed: F.on_rec_failed,
    E.PbxBooted: F.on_pbx_booted,
    E.PbxLinkLost: F.on_link_lost,
    E.PbxEventsLost: F.on_events_lost,
    E.ResyncCompleted: CallBook._on_resync_completed,
}
