"""The call state machine's state and the helpers every step uses: call ids, the call an
event names, legs, starting a recording, the rule decision.  Pure, like the rest of the book:
:class:`pbx_recorder.core.calls.CallBook` is built on it (``call_book_consent``, ``call_book_recording``)."""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Sequence

from pbx_recorder.core import constants as C
from pbx_recorder.core import events as E
from pbx_recorder.core.call_model import (
    Call,
    Recording,
)
from pbx_recorder.core.commands import (
    Command,
    SetChannelVar,
    StartRecording,
)
from pbx_recorder.core.naming import (
    boot_of_call_id,
    make_call_id,
    make_recording_id,
    mixed_path,
    recording_paths,
    safe_component,
    split_call_id,
)
from pbx_recorder.core.rule_memo import RuleMemo
from pbx_recorder.core.rules import RuleDecision, RuleLike

log = logging.getLogger(__name__)

class CallBookCore:
    """The calls this node tracks and the settings of the state machine."""

    def __init__(self, node: str, monitor_dir: str, rules: Sequence[RuleLike], cdr_wait_s: float = 10.0,
                 stale_after_s: float = 4 * 3600.0, gosub_grace_s: float = 3.0,
                 keep_finished_s: float = 120.0, exact_mutes: bool = False, pause_max_s: float = 0.0) -> None:
        self.node = node
        # a pause (PCI) open this long is ended by the core itself (0: never); call_book_recording
        self.pause_max_s = pause_max_s
        # the PBX's mute names the recording's own file (FreeSWITCH's uuid_record mask): the
        # MixMonitor order never matters (core/mixmonitor_order.py concerns Asterisk only)
        self.exact_mutes = exact_mutes
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
        # a MixMonitorMute without an ID mutes every MixMonitor of the channel (events.PbxBooted;
        # None: not known, taken as "only the first", core/mixmonitor_order.py)
        self.mute_all: bool | None = None
        # the AMI link is up and its events reach the core (PbxBooted / ResyncCompleted after a
        # connect; not before the first, nor after a PbxLinkLost): a call created meanwhile may
        # have missed MixMonitor events (Call.mixmonitors_known)
        self.events_seen = False
        # calls whose MixMonitor count a lost link or lost events made untrusted since the caller
        # last took them (:meth:`take_count_untrusted`): their live snapshots must be written again
        self.count_untrusted: list[str] = []
        self.question_start_reported = False  # seen a ConsentAsked (call_consent_outcomes.py)
        self.aliases: dict[str, str] = {}  # call id -> id of the newer call that reused its linkedid
        self.link_lost_at: float | None = None  # the AMI link went down then (events.PbxLinkLost)

    @property
    def calls(self) -> dict[str, Call]:
        return self._calls

    def take_count_untrusted(self) -> list[str]:
        """The calls noted in :attr:`count_untrusted`, forgotten here."""
        taken, self.count_untrusted = self.count_untrusted, []
        return taken

    @staticmethod
    def generation_of(call_id: str) -> int:
        base, sep, n = call_id.rpartition("-r")
        return int(n) if sep and base and n.isdigit() else 1

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
                        boot=boot, mixmonitors_known=self.events_seen)
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
        if call.mixmonitors_gap:  # events were lost since the call's count was last whole
            call.mixmonitors_known = False
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
