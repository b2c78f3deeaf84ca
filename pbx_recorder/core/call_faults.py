"""What the call state machine does when something outside the call failed.  Pure.

* **The PBX restarted** (:class:`events.PbxBooted` with a new boot tag): every call of the
  previous run is over; its recordings were cut (no normal close): flags ``pbx_restarted`` on
  the call and ``cut`` on each recording that was running.  ``core restart now`` hangs the
  calls up first (normal Hangup and Cdr events) and then drops the link: a call that ended
  within :data:`CUT_WINDOW_S` before the link went down (:class:`events.PbxLinkLost`) is
  flagged the same way (recordings already finalized through :class:`FlagRecordings`).  A
  call that began while the link was down (its consent request came over FastAGI, with the
  old run's boot tag) belongs to the new run: it is re-keyed, not ended.
* **The recorder restarted mid-dialogue**: a call restored in ``consent_pending`` has no
  dialogue any more (its FastAGI session died with the old process; the snippet took its fail
  direction and stopped the dialogue's recording in the dialplan).  It is settled as consent
  ``interrupted``: every recording stopped and discarded, the call not recorded.  A channel
  found on resync with a dialogue recording (``PBXREC_DIALOGUE_MMID``) and no
  ``PBXREC_RESULT`` is settled the same way.
* **A recording could not start** (:class:`events.RecordingFailed`, e.g. the AMI link is
  down): the recording is ``failed`` (never finalized into a "missing" row); a call left with
  nothing recorded says ``not_recorded`` and why (flags ``recording_failed`` + the reason).
* **A linkedid comes back** (a channel with a uniqueid the call already had, or a new channel
  or consent request for a call that has ended): it is a new call; it gets its own id
  ``<id>-r<n>`` so it never takes the old call's decision nor overwrites its row.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pbx_recorder.core import constants as C
from pbx_recorder.core import events as E
from pbx_recorder.core.call_model import Call, Recording, call_row
from pbx_recorder.core.commands import Command, FlagRecordings, StopRecording, UpsertCall
from pbx_recorder.core.mixmonitor_order import mutes_every_mixmonitor, survives_gap
from pbx_recorder.core.naming import make_call_id

if TYPE_CHECKING:
    from pbx_recorder.core.call_book_consent import ConsentSteps
    from pbx_recorder.core.call_book_core import CallBookCore
    from pbx_recorder.core.calls import CallBook

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"  # consent decision: the dialogue died with the recorder
START_FAILED = "recorder_failed"  # consent decision: the dialogue's recording could not start
MAX_GENERATIONS = 99
CUT_WINDOW_S = 5.0  # a call that ended this soon before the AMI link went down was hung up by it


def is_new_call(call: Call, channel_id: str, *, creating: bool) -> bool:
    """A fresh channel (or consent request) on an id whose call is over, or a channel created
    a second time (a PBX run never makes the same uniqueid twice): the linkedid came back.
    (A consent request or a resync may name a channel before its Newchannel is seen: only
    creations count.)"""
    if call.ended_at is not None or call.state in (C.STATE_ENDED, C.STATE_FINALIZED):
        return True
    return creating and bool(channel_id) and channel_id in call.created


def new_generation(book: CallBookCore, call: Call, at: float) -> Call:
    """Give the call that reuses ``call``'s id an id of its own and make it the current one."""
    base = call.call_id.rsplit("-r", 1)[0] if book.generation_of(call.call_id) > 1 else call.call_id
    n = book.generation_of(call.call_id) + 1
    while f"{base}-r{n}" in book.calls and n <= MAX_GENERATIONS:
        n += 1
    new_id = f"{base}-r{n}"
    log.warning("linkedid reused call=%s: the new call is %s (the PBX restarted?)", call.call_id, new_id)
    fresh = Call(call_id=new_id, node=call.node, linkedid=call.linkedid, created_at=at, updated_at=at,
                 boot=book.boot, mixmonitors_known=book.events_seen)
    fresh.flag("linkedid_reused")
    book.calls[new_id] = fresh
    book.aliases[base] = new_id
    return fresh


def on_link_lost(book: CallBook, ev: E.PbxLinkLost, now: float) -> list[Command]:
    if book.link_lost_at is None:
        book.link_lost_at = ev.at
    book.mute_all = None  # the PBX that answers next may be another one (a failover, a downgrade)
    # their MixMonitor events while the link is down are missed (from its last bytes read on)
    _events_missed(book, _gap_start(ev))
    return []


def on_events_lost(book: CallBook, ev: E.PbxEventsLost, now: float) -> list[Command]:
    """Events may have been lost inside the AMI client while the link stayed up (a resync
    follows): a MixMonitorStart among them would leave a channel's count wrong, so every open
    call's count is no longer trusted, nor that of a call that begins before the resync."""
    was_whole, flipped = book.events_seen, len(book.count_untrusted)
    open_calls = _events_missed(book, _gap_start(ev))
    # (once per loss that changes something: a caller repeating a forgery must not flood the log)
    level = logging.WARNING if was_whole or len(book.count_untrusted) > flipped else logging.DEBUG
    log.log(level, "PBX events may have been lost (%s): on an Asterisk that mutes only a channel's first "
            "MixMonitor a pause is refused for %d of the %d open call(s) (those not recording since well "
            "before) and for calls that begin before a resync completes", ev.reason or "unknown",
            len(book.count_untrusted) - flipped, open_calls)
    return []


def _gap_start(ev: E.PbxLinkLost | E.PbxEventsLost) -> float:
    """The earliest moment an event lost with ``ev`` can have arrived (never after ``ev`` itself)."""
    return ev.at if ev.since is None else min(ev.since, ev.at)


def _events_missed(book: CallBook, since: float) -> int:
    """Events received from ``since`` on may be missing: every open call's count is untrusted
    unless it survives the gap (core/mixmonitor_order.py ``survives_gap``: every recording of ours
    seen to start well before; a recording of ours started later is not trusted).  Those whose
    count was trusted until now are noted in ``book.count_untrusted`` (their live snapshots
    change; a loss repeated changes none)."""
    book.events_seen = False
    missed = 0
    for call in book.calls.values():
        if call.state not in (C.STATE_FINALIZED, C.STATE_ENDED):
            missed += 1
            if survives_gap(call, since):
                call.mixmonitors_gap = True
                continue
            if call.mixmonitors_known:
                book.count_untrusted.append(call.call_id)
            call.mixmonitors_known = False
    return missed


def _learn_mute_all(book: CallBook, version: str) -> None:
    """Which MixMonitor a MixMonitorMute without an ID mutes on this PBX (core/mixmonitor_order.py)."""
    book.mute_all = mutes_every_mixmonitor(version)
    if book.mute_all is not True:
        log.info("PBX %s: a MixMonitorMute mutes a channel's first MixMonitor only; a pause on a channel "
                 "where another MixMonitor runs is refused", version or "(version unknown)")


def on_pbx_booted(book: CallBook, ev: E.PbxBooted, now: float) -> list[Command]:
    previous, lost_at = book.boot, book.link_lost_at
    book.boot, book.link_lost_at = ev.boot, None
    cmds: list[Command] = []
    for call in list(book.calls.values()):
        run = call.boot or previous
        if not run or run == ev.boot:
            continue
        if call.state not in (C.STATE_FINALIZED, C.STATE_ENDED):
            if lost_at is not None and call.created_at >= lost_at:
                _rekey(book, call, ev.boot)  # began while the link was down: the new run's call
                continue
            log.warning("PBX restarted under call=%s: ended, recordings flagged cut", call.call_id)
            call.flag("pbx_restarted")
            for rec in call.active_recordings():
                rec.flags.append("cut")
            cmds += book.end_call(call, ev.at)
        elif lost_at is not None and call.ended_at is not None and call.ended_at >= lost_at - CUT_WINDOW_S \
                and "pbx_restarted" not in call.flags:
            cmds += _cut_at_shutdown(call, now)
    _learn_mute_all(book, ev.version)
    # not book.events_seen: a call that began while the link was down and is first seen now (not
    # by its first channel's creation) missed its MixMonitor events; the resync that follows
    # every connect (ResyncCompleted) says when the core's view is whole again
    return cmds


def _cut_at_shutdown(call: Call, now: float) -> list[Command]:
    """The shutdown hung the call up (a normal-looking Hangup just before the link went down)."""
    log.warning("call=%s ended as the PBX went down: recordings flagged cut", call.call_id)
    call.flag("pbx_restarted")
    done: list[str] = []
    for rec in call.recordings:
        if rec.state in ("failed", "discarded"):
            continue
        rec.flags.append("cut")
        if rec.state == "finalized":
            done.append(rec.recording_id)
    if call.state != C.STATE_FINALIZED:
        return []
    return [FlagRecordings(call.call_id, tuple(done), ("cut", "pbx_restarted")),
            UpsertCall(call.call_id, call_row(call, now))]


def _rekey(book: CallBook, call: Call, boot: str) -> None:
    new_id = make_call_id(call.node, call.linkedid, boot)
    log.info("call=%s began while the AMI link was down: it belongs to the PBX run %s, id %s",
             call.call_id, boot, new_id)
    book.calls.pop(call.call_id, None)
    book.aliases[call.call_id] = new_id
    call.call_id, call.boot = new_id, boot
    book.calls[new_id] = call


def settle_interrupted(book: ConsentSteps, call: Call, at: float) -> list[Command]:
    """A restored call still waiting for its consent dialogue: the dialogue is gone."""
    log.warning("consent dialogue interrupted by a recorder restart call=%s: not recorded", call.call_id)
    call.flag("consent_interrupted")
    evidence = {**call.consent_evidence, "decision": INTERRUPTED, "decided_at": at,
                "why": "the recorder restarted during the consent dialogue"}
    return book.resolve_consent(call, INTERRUPTED, evidence, at, "")


def settle_orphan_dialogue(call: Call, ev: E.LiveChannel) -> list[Command]:
    """Resync found a channel with a dialogue recording and no decision, unknown to us."""
    mmid = ev.variables.get(C.VAR_DIALOGUE_MMID, "")
    call.flag("consent_interrupted")
    call.state, call.result, call.consent_decision = C.STATE_NOT_RECORDED, C.RESULT_NORECORD, INTERRUPTED
    call.consent_evidence = {"decision": INTERRUPTED, "decided_at": ev.at,
                             "why": "dialogue recording found without a decision after a restart"}
    log.warning("resync: dialogue recording without a decision call=%s: stopping it", call.call_id)
    return [StopRecording(call.call_id, "", ev.channel, mmid)]


def on_rec_failed(book: CallBook, ev: E.RecordingFailed, now: float) -> list[Command]:
    call = book.find(ev.call_id)
    if call is None:
        return []
    rec = next((r for r in call.recordings if r.recording_id == ev.recording_id), None)
    if rec is None:
        return []
    rec.stop(ev.at)
    rec.state = "failed"
    reason = ev.reason or "start_failed"
    rec.flags += ["recording_failed", reason]
    log.error("recording could not start call=%s rec=%s: %s", call.call_id, rec.recording_id, reason)
    if call.state == C.STATE_CONSENT_PENDING:  # the dialogue cannot run: the call is not recorded
        call.flag(reason)
        call.flag("recording_failed")
        cmds = book.resolve_consent(call, START_FAILED, {"decision": START_FAILED, "decided_at": ev.at,
                                                         "why": reason}, ev.at, "")
        call.state, call.result = C.STATE_NOT_RECORDED, "failed"  # nobody refused: we could not record
        return cmds
    if rec.kind == C.KIND_CALL and not _recording_call(call):
        call.result = "failed"
        call.flag("recording_failed")
        call.flag(reason)
        if call.state in (C.STATE_RECORDING, C.STATE_PAUSED, C.STATE_WAITING_BRIDGE):
            call.state = C.STATE_NOT_RECORDED
    return []


def _recording_call(call: Call) -> bool:
    return any(r.kind == C.KIND_CALL and r.state not in ("failed", "discarded") for r in call.recordings)


def usable(rec: Recording) -> bool:
    return rec.state not in ("failed", "finalized", "discarded")


def settle_never_started(call: Call, at: float) -> list[Command]:
    """A recording the dialplan was to start at answer (``Recording.early``) on a call that was
    never answered: the caller left while it rang, the snippet never reached ``MixMonitor``, no
    file exists.  Not recorded, and the catalog says why (not a "missing" recording).  A call
    that was answered keeps its recording even if the start report was missed: the file decides."""
    if call.answered_at is not None:
        return []
    for rec in call.recordings:
        if rec.early and rec.pbx_started_at is None and rec.active:
            rec.stop(at)
            rec.state = "failed"
            rec.flags += ["not_started"]
            call.result = C.RESULT_NORECORD
            call.flag("not_answered")
            log.info("call=%s left before answer: rec=%s never started", call.call_id, rec.recording_id)
    return []
