"""The recording steps of the call state machine: a recording muted, started, stopped, and the
live-channel resync after a (re)connect.  Pure; part of :class:`pbx_recorder.core.calls.CallBook`."""

from __future__ import annotations

import logging

from pbx_recorder.core import call_faults as F
from pbx_recorder.core import constants as C
from pbx_recorder.core import events as E
from pbx_recorder.core import mixmonitor_order as MO
from pbx_recorder.core.call_book_consent import ConsentSteps
from pbx_recorder.core.call_model import (
    Call,
    Recording,
)
from pbx_recorder.core.commands import (
    Command,
    MuteRecording,
)
from pbx_recorder.core.masking import mask_channel
from pbx_recorder.core.rules import CallContext

log = logging.getLogger(__name__)

AUTO_RESUME_RETRY_S = 10.0  # an unmute for a pause over pause_max_s, again while it stays open

_OPEN = (C.STATE_IDLE, C.STATE_CONSENT_PENDING, C.STATE_WAITING_BRIDGE, C.STATE_RECORDING, C.STATE_PAUSED,
         C.STATE_STOPPED, C.STATE_REFUSED, C.STATE_NOT_RECORDED)


class RecordingSteps(ConsentSteps):
    """Recording events and the live-channel resync."""

    def _on_muted(self, ev: E.RecordingMuted, now: float) -> list[Command]:
        """A ``MixMonitorMute`` silences the MixMonitors of its channel only: a pause of our
        recordings on that channel (never of those on another one), unless the PBX mutes only a
        channel's first MixMonitor and that may not be ours (core/mixmonitor_order.py).  An exact
        mute (FreeSWITCH's mask of the recording's file) is a pause of the call's recordings."""
        call = self._get(ev, now, create=False)
        if call is None:
            return []
        names = {ev.channel, call.legs.get(ev.channel_id, "")} - {""}
        recs = [r for r in call.active_recordings() if r.channel in names]
        if not recs and ev.exact:  # FreeSWITCH names the leg of the call, not always the recording's
            recs = call.active_recordings()
        if not recs:
            return []
        doubt = None if self.mute_all is True or ev.exact else MO.mute_doubt(
            [e for n in names for e in call.mixmonitors.get(n, [])],
            [(r.recording_id, r.start_seen) for r in recs], call.mixmonitors_known)
        if doubt is None and ev.direction.lower() != "both":
            doubt = "one_direction"  # the other direction is still recorded: no pause
        MO.note_mute(call, doubt)
        if doubt is not None:
            return self._mute_missed(call, recs, ev, doubt, now)
        for rec in recs:
            if ev.muted and rec.state == "recording":
                rec.state = "paused"
                rec.pauses.append([ev.at, None])
            elif not ev.muted and rec.state == "paused":
                rec.state = "recording"
                rec.pauses[-1][1] = ev.at
                _note_auto_resumed(rec)
        if call.state in (C.STATE_RECORDING, C.STATE_PAUSED):
            call.state = C.STATE_PAUSED if ev.muted else C.STATE_RECORDING
        self._pause_clock(call, now)
        return []

    def _mute_missed(self, call: Call, recs: list[Recording], ev: E.RecordingMuted,
                     doubt: str, now: float) -> list[Command]:
        """A mute or unmute that may have reached another MixMonitor of the channel, not ours (or
        one direction only): no pause is claimed from it.  A mute flags our recordings
        ``pause_missed``; the pause the core opened itself for a transfer's next segment (started
        paused) is taken back.  An unmute closes an open pause of ours at its time (from then on
        its silence is not known), flagged too.  A pause of ours that was carried out stays."""
        for rec in recs:
            open_pause = rec.state == "paused" and bool(rec.pauses) and rec.pauses[-1][1] is None
            if ev.muted and open_pause and rec.pauses[-1][0] == rec.started_at:
                rec.pauses.pop()  # opened by _keep_paused with the segment's start: never carried out
                rec.state = "recording"
            elif not ev.muted and open_pause:
                rec.pauses[-1][1] = ev.at
                rec.state = "recording"
                _note_auto_resumed(rec)
        _flag_pause_missed(call, recs)
        log.error("ALERT: a %s on %s is no sure pause of the recording (%s) call=%s rec=%s: no pause "
                  "claimed from it, flagged pause_missed", "mute" if ev.muted else "unmute",
                  mask_channel(ev.channel), doubt, call.call_id, ",".join(r.recording_id for r in recs))
        self._pause_clock(call, now)
        return []

    def _pause_clock(self, call: Call, now: float) -> None:
        """Keep the call's pause time on the recorder's clock (``now``: the handler's, never the
        PBX's event time, whose host clock may be behind): the call counts as paused while any
        active recording of it is; a pause carried over a transfer stays one pause."""
        paused = any(r.state == "paused" for r in call.active_recordings())
        if paused and call.paused_since is None:
            call.paused_since = now
        elif not paused and call.paused_since is not None:
            call.pause_spent += max(0.0, now - call.paused_since)
            call.paused_since = None
            for rec in call.recordings:
                rec.auto_resume_at = None  # a later pause is asked to end (and ALERTed) afresh

    def _auto_resume(self, call: Call, now: float) -> list[Command]:
        """A call's pauses together may last ``pause_max_s``: past it the core ends the open one
        with an unmute of each channel (naming the recordings' files), again every
        :data:`AUTO_RESUME_RETRY_S` until the PBX's unmute event closes it; a pause opened once
        the time is spent is ended at the next tick.  A pause is for a card number; one left open
        (a ``calls pause`` killed before its verdict, an agent who forgot, one who pauses again
        and again) would leave the rest of the call unrecorded.  The recording is flagged
        ``pause_auto_resumed`` when the unmute closes its pause, ``pause_auto_resume_failed``
        when the PBX refuses it.  On an Asterisk that unmutes only a channel's first MixMonitor,
        a channel where that may not be ours is left alone (the PBX's own recording would get its
        sound back during its own pause) and ALERTed once: it needs ``calls resume``."""
        self._pause_clock(call, now)
        if call.paused_since is None or call.pause_spent + now - call.paused_since < self.pause_max_s:
            return []
        due = [r for r in call.active_recordings() if r.state == "paused"
               and (r.auto_resume_at is None or now - r.auto_resume_at >= AUTO_RESUME_RETRY_S)]
        groups: dict[str, list[Recording]] = {}
        for rec in due:
            groups.setdefault(rec.channel, []).append(rec)
        cmds: list[Command] = []
        for channel, recs in groups.items():
            first = all(r.auto_resume_at is None for r in recs)
            for rec in recs:
                rec.auto_resume_at = now
            doubt = None if self.mute_all is True or self.exact_mutes else MO.mute_doubt(
                call.mixmonitors.get(channel, []), [(r.recording_id, r.start_seen) for r in recs],
                call.mixmonitors_known)
            ids = ",".join(r.recording_id for r in recs)
            if doubt is not None:
                if first:
                    log.error("ALERT: the call's pauses passed pause_max_s (%g s) and the unmute of %s may "
                              "not reach the recorder's MixMonitor (%s): not sent; resume it (calls resume) "
                              "call=%s rec=%s", self.pause_max_s, mask_channel(channel), doubt,
                              call.call_id, ids)
                continue
            log.warning("the call's pauses passed pause_max_s (%g s): resuming the recording on %s call=%s "
                        "rec=%s", self.pause_max_s, mask_channel(channel), call.call_id, ids)
            cmds.append(MuteRecording(call.call_id, channel, False,
                                      paths=tuple(p for r in recs for p in r.paths)))
        return cmds

    def _on_mute_failed(self, ev: E.RecordingMuteFailed, now: float) -> list[Command]:
        """A mute the core asked for (a transfer's next segment starting paused) did not happen:
        the pause it opened with the segment's start is taken back, never claimed (on an Asterisk
        that mutes only the first none was opened); flagged ``pause_missed`` with an ALERT (the
        card may be in the audio from then on).  A pause the PBX's mute event showed is left as
        it is; a failed unmute leaves the recording silent: its open pause stays what the file
        holds."""
        call = self._get(ev, now, create=False)
        if call is None:
            return []
        if not ev.muted:
            return self._auto_resume_failed(call, ev)
        recs = [r for r in call.active_recordings() if r.channel == ev.channel and (
            r.state == "recording" or r.pauses[-1:] == [[r.started_at, None]])]  # opened by _keep_paused
        if not recs:
            return []
        for rec in recs:
            if rec.state == "paused":
                rec.pauses.pop()  # the segment was never silenced
            rec.state = "recording"
        _flag_pause_missed(call, recs)
        log.error("ALERT: the mute of %s failed: the recording is not paused, no pause claimed, flagged "
                  "pause_missed call=%s rec=%s", mask_channel(ev.channel), call.call_id,
                  ",".join(r.recording_id for r in recs))
        return []

    def _auto_resume_failed(self, call: Call, ev: E.RecordingMuteFailed) -> list[Command]:
        """The unmute the core sent for a pause over ``pause_max_s`` was not carried out: the
        recording stays silent (its open pause is what the file holds), flagged
        ``pause_auto_resume_failed``, ALERT; the next try follows :data:`AUTO_RESUME_RETRY_S` on."""
        recs = [r for r in call.active_recordings() if r.channel == ev.channel and r.state == "paused"
                and r.auto_resume_at is not None]
        for rec in recs:
            if "pause_auto_resume_failed" not in rec.flags:
                rec.flags.append("pause_auto_resume_failed")
        if recs:
            log.error("ALERT: the unmute of %s after pause_max_s failed: the recording is still paused "
                      "call=%s rec=%s", mask_channel(ev.channel), call.call_id,
                      ",".join(r.recording_id for r in recs))
        return []

    def _on_mixmonitor_started(self, ev: E.MixMonitorStarted, now: float) -> list[Command]:
        call = self._get(ev, now, create=False)
        if call is not None:
            MO.note_started(call, ev.channel, ev.at if ev.arrived_at is None else ev.arrived_at)
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
            # the first report names the PBX's recording for good: a later (or forged) report of
            # the same recording id never redirects its stop to another MixMonitor of the channel
            rec.pbx_ref = rec.pbx_ref or ev.pbx_ref
            if rec.early and rec.pbx_started_at is None:  # decided while ringing, started at answer
                rec.started_at = ev.at
            rec.pbx_started_at = ev.at
        return []

    def _on_rec_stopped(self, ev: E.RecordingStopped, now: float) -> list[Command]:
        call = self._get(ev, now, create=False)
        rec = self._find_rec(call, ev.recording_id, ev.pbx_ref) if call else None
        if rec is not None:
            rec.stop(ev.at)
        if call is not None and ev.channel:
            MO.note_stopped(call, ev.channel, rec.recording_id if rec is not None else "")
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
        call.mixmonitors_known = False  # its MixMonitors started before the recorder saw it
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
        # (also when the PBX's start time could not be read); not when events were lost while
        # the list was read: a call that began then may be in neither (another resync follows)
        self.events_seen = ev.complete
        live = {self._cid(c) for c in ev.live_call_ids}
        cmds: list[Command] = []
        for call in list(self._calls.values()):
            if call.state in _OPEN and call.call_id not in live:
                log.info("call ended while we were away call=%s", call.call_id)
                call.flag("ended_while_disconnected")
                cmds += self._end(call, ev.at)
        return cmds


def _note_auto_resumed(rec: Recording) -> None:
    """The pause just closed was one the core asked the PBX to end (``pause_max_s``)."""
    if rec.auto_resume_at is not None and "pause_auto_resumed" not in rec.flags:
        rec.flags.append("pause_auto_resumed")


def _flag_pause_missed(call: Call, recs: list[Recording]) -> None:
    """``recs`` flagged ``pause_missed``; the call no longer shows paused once none of its
    recordings is."""
    for rec in recs:
        if "pause_missed" not in rec.flags:
            rec.flags.append("pause_missed")
    if call.state == C.STATE_PAUSED and not any(r.state == "paused" for r in call.active_recordings()):
        call.state = C.STATE_RECORDING
