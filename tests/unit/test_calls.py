import json

from calls_transcript import MONITOR, new_book, play

from pbx_recorder.core import events as E
from pbx_recorder.core.commands import (
    DiscardRecording,
    FinalizeRecording,
    MuteRecording,
    SetChannelVar,
    StartRecording,
    StopRecording,
    UpsertCall,
)


def vars_set(run):
    return {(c.name, c.value) for c in run.of(SetChannelVar)}


def only_row(run):
    (upsert,) = run.of(UpsertCall)
    return upsert.row


def test_notify_call_records_from_before_the_notice():
    run = play("notify")
    starts = run.of(StartRecording)
    assert [s.recording_id for s in starts] == ["pbx1_L1_call001"]
    # started on ConsentRequested (step 3), i.e. before the notice was played
    assert run.per_step[2][1][0] == starts[0]
    assert starts[0].path.startswith(MONITOR + "/") and starts[0].kind == "call"
    assert ("PBXREC_RESULT", "record") in vars_set(run)
    assert ("CDR(recordingfile)", starts[0].path.rsplit("/", 1)[1]) in vars_set(run)
    (fin,) = run.of(FinalizeRecording)
    md = fin.metadata
    assert md["call_id"] == "pbx1_L1" and md["linkedid"] == "L1" and md["uniqueids"] == ["L1", "L2"]
    assert md["rule"] == "sales-notify" and md["tags"] == ["sales"] and md["consent_decision"] == "notified"
    assert (md["started_at"], md["stopped_at"]) == (1, 60.1)
    json.dumps(md)
    row = only_row(run)
    assert row["status"] == "answered" and row["record_decision"] == "record" and row["billsec"] == 51
    assert json.loads(row["uniqueids"]) == ["L1", "L2"] and row["did"] == "800100"
    assert run.book.state("L1") == "finalized" and not run.of(DiscardRecording)
    # the finalize happens only once the CDR is in (step 10), not at the hangup
    assert not run.per_step[8][1] and run.per_step[9][1]


def test_explicit_yes_consent_segment_then_call():
    run = play("explicit_yes")
    starts = run.of(StartRecording)
    assert [(s.recording_id, s.kind, s.mode) for s in starts] == [
        ("pbx1_L1_consent001", "consent", "mixed"), ("pbx1_L1_call002", "call", "dual")]
    assert len(starts[1].leg_paths) == 2
    (stop,) = run.of(StopRecording)
    assert stop.recording_id == "pbx1_L1_consent001" and stop.pbx_ref == "MIX-7"
    fins = run.of(FinalizeRecording)
    assert [f.recording_id for f in fins] == ["pbx1_L1_consent001", "pbx1_L1_call002"]
    assert fins[1].paths == (starts[1].path, *starts[1].leg_paths)
    assert fins[1].metadata["retention_class"] == "long" and fins[1].metadata["consent"]["digits"] == ["1"]
    assert only_row(run)["consent_decision"] == "granted"


def _assert_refused(run, decision):
    assert ("PBXREC_RESULT", "refused") in vars_set(run)
    assert ("PBXREC_ROUTE", "refused,s,1") in vars_set(run)
    (discard,) = run.of(DiscardRecording)
    assert discard.recording_id == "pbx1_L1_consent001" and discard.reason == f"consent_{decision}"
    assert [s.recording_id for s in run.of(StopRecording)] == ["pbx1_L1_consent001"]
    assert not run.of(FinalizeRecording)
    assert [s.kind for s in run.of(StartRecording)] == ["consent"]
    row = only_row(run)
    assert row["record_decision"] == "refused" and row["consent_decision"] == decision


def test_explicit_no_discards_everything():
    _assert_refused(play("explicit_no"), "refused")


def test_explicit_timeout_fails_closed():
    _assert_refused(play("explicit_timeout"), "timeout")


def test_hangup_during_prompt_is_not_consent():
    run = play("hangup_during_prompt")
    (discard,) = run.of(DiscardRecording)
    assert discard.reason == "consent_hangup"
    assert not run.of(FinalizeRecording) and len(run.of(StartRecording)) == 1
    assert not run.per_step[4][1]  # the late "granted" changes nothing
    assert only_row(run)["consent_decision"] == "hangup"


def test_no_record_rule():
    run = play("no_record_rule")
    assert ("PBXREC_RESULT", "norecord") in vars_set(run)
    assert not run.of(StartRecording) and not run.of(FinalizeRecording)
    row = only_row(run)
    assert row["rule"] == "internal-calls" and row["record_decision"] == "no_record"


def test_queue_call_recorded_on_bridge():
    run = play("queue_bridge")
    (start,) = run.of(StartRecording)
    assert run.per_step[6][1][0] == start  # AgentConnected, not the consent request
    assert start.channel == "PJSIP/trunk-01"
    assert ("PBXREC_RESULT", "record") in vars_set(run)
    (fin,) = run.of(FinalizeRecording)
    assert fin.metadata["started_at"] == 24 and fin.metadata["tags"] == ["queue"]
    assert only_row(run)["agent"] == "Agent/7"


def test_transfer_continues_as_second_segment_of_same_call():
    run = play("transfer")
    starts = run.of(StartRecording)
    assert [(s.recording_id, s.channel) for s in starts] == [
        ("pbx1_L1_call001", "PJSIP/agent-01"), ("pbx1_L1_call002", "PJSIP/agent-03")]
    fins = run.of(FinalizeRecording)
    assert [f.recording_id for f in fins] == ["pbx1_L1_call001", "pbx1_L1_call002"]
    assert fins[0].metadata["stopped_at"] == 41 and fins[1].metadata["started_at"] == 41
    assert {f.call_id for f in fins} == {"pbx1_L1"} and "transferred" in fins[1].metadata["flags"]


def test_transfer_of_the_other_party_leaves_the_recording_alone():
    # Asterisk 16 BlindTransfer by the agent; the recording is on the caller (transferee) and goes on.
    run = play("transfer_queue_caller_recorded")
    starts = run.of(StartRecording)
    assert [(s.recording_id, s.channel) for s in starts] == [("pbx1_L1_call001", "PJSIP/trunk-01")]
    assert not run.of(StopRecording) and not run.of(DiscardRecording)
    (fin,) = run.of(FinalizeRecording)
    assert (fin.metadata["started_at"], fin.metadata["stopped_at"]) == (24, 90)
    assert "transferred" in fin.metadata["flags"]
    row = only_row(run)
    assert row["call_id"] == "pbx1_L1" and json.loads(row["uniqueids"]) == ["L1", "L2", "L3"]


def test_cdr_before_hangup_finalizes_at_last_hangup():
    run = play("cdr_before_hangup")
    assert not run.per_step[5][1]  # the CDR alone finalizes nothing (file may still be open)
    last = run.per_step[6][1]
    assert [type(c).__name__ for c in last] == ["FinalizeRecording", "UpsertCall"]
    assert only_row(run)["billsec"] == 27


def test_cdr_missing_finalizes_after_wait_with_flag():
    run = play("cdr_missing")
    assert not run.per_step[6][1]  # tick at +5: still waiting
    (fin,) = run.of(FinalizeRecording)
    assert "cdr_missing" in fin.metadata["flags"]
    row = only_row(run)
    assert row["status"] == "answered" and "cdr_missing" in json.loads(row["flags"])
    assert row["disposition"] == "" and row["billsec"] == 27


def test_restart_restores_without_recording_twice():
    run = play("restart")
    assert len(run.of(StartRecording)) == 1
    (fin,) = run.of(FinalizeRecording)
    assert fin.recording_id == "pbx1_L1_call001" and fin.metadata["consent_decision"] == "notified"
    assert run.book.state("L1") == "finalized"


def test_resync_vanished_unknown_and_adopted_calls():
    run = play("resync")
    starts = run.of(StartRecording)
    assert [s.call_id for s in starts] == ["pbx1_L1", "pbx1_L2"]  # L3 adopted, L4 refused: not started
    assert starts[1].channel == "PJSIP/100-05"
    fins = {f.call_id: f for f in run.of(FinalizeRecording)}
    assert set(fins) == {"pbx1_L1"}
    assert {"ended_while_disconnected", "cdr_missing"} <= set(fins["pbx1_L1"].metadata["flags"])
    assert sorted(run.book.live_call_ids()) == ["pbx1_L2", "pbx1_L3", "pbx1_L4"]
    assert run.book.state("L3") == "recording" and run.book.state("L4") == "refused"
    snap = run.book.snapshot("L3")
    assert snap["recordings"][0]["path"].endswith(".wav") and "adopted_on_resync" in snap["flags"]


def test_no_consent_path_fails_closed():
    run = play("no_consent_path")
    assert not run.of(StartRecording)
    assert ("PBXREC_RESULT", "norecord") in vars_set(run)
    row = only_row(run)
    assert row["rule"] == "notify-anything-9" and "no_consent_path" in json.loads(row["flags"])
    d = run.book.decision("L1")
    assert d is not None and not d.record and d.reason == "no_consent_path"
    assert "fail closed" in d.explanation[-1]


def test_no_gosub_call_recorded_at_answer():
    run = play("no_gosub_record")
    (start,) = run.of(StartRecording)
    assert start.channel == "PJSIP/200-01" and run.per_step[2][1][0] == start
    assert only_row(run)["rule"] == "extensions"


def test_callers_own_answer_waits_for_the_gosub():
    book = new_book(gosub_grace_s=3)
    book.handle(E.ChannelCreated(0, "L9", "L9", "PJSIP/trunk-01", exten="800200"), 0)
    assert book.handle(E.ChannelAnswered(0.1, "L9", "L9", "PJSIP/trunk-01"), 0.1) == []
    cmds = book.handle(E.ConsentRequested(0.5, "L9", "L9", "PJSIP/trunk-01", "inbound", "800200"), 0.5)
    assert [c.kind for c in cmds if isinstance(c, StartRecording)] == ["consent"]
    assert book.tick(10) == []  # no late answer-time decision


def test_answer_without_gosub_decides_after_grace():
    book = new_book(gosub_grace_s=3)
    book.handle(E.ChannelCreated(0, "L9", "L9", "PJSIP/200-01", exten="150"), 0)
    book.handle(E.ChannelAnswered(1, "L9", "L9", "PJSIP/200-01"), 1)
    assert book.tick(3.9) == []
    assert [type(c).__name__ for c in book.tick(4.0)][0] == "StartRecording"


def test_unanswered_call_discards_its_recording():
    run = play("unanswered")
    (discard,) = run.of(DiscardRecording)
    assert discard.reason == "unanswered" and not run.of(FinalizeRecording)
    assert only_row(run)["status"] == "no_answer"


def test_pci_pause_keeps_intervals():
    run = play("pci_pause")
    (fin,) = run.of(FinalizeRecording)
    assert fin.metadata["pauses"] == [[10, 25], [40, 50]]


def test_operator_pause_request():
    book = new_book()
    book.handle(E.ChannelCreated(0, "L1", "A", "PJSIP/a", exten="0099"), 0)
    book.handle(E.ConsentRequested(0.1, "L1", "A", "PJSIP/a", "outbound", "0099"), 0.1)
    assert book.request_pause("L1", True, 5) == [MuteRecording("pbx1_L1", "PJSIP/a", True)]
    assert book.request_pause("nope", True, 5) == []


def test_unknown_and_irrelevant_events_are_ignored():
    book = new_book()
    assert book.handle(object(), 0) == []
    assert book.handle(E.QueueCallerJoined(0, "L1", "A", "PJSIP/a", "q"), 0) == []
    assert book.handle(E.VariableSet(0, "L1", "A", "PJSIP/a", "X", "1"), 0) == []
    assert book.handle(E.ChannelHungUp(0, "L404", "A", "PJSIP/a"), 0) == []
    assert book.handle(E.CdrPosted(0, "L404", "A", {"disposition": "ANSWERED"}), 0) == []


def test_late_cdr_refreshes_row_only():
    run = play("cdr_missing")
    cmds = run.book.handle(E.CdrPosted(50, "L1", "A", {"disposition": "ANSWERED", "billsec": "26"}), 50)
    assert [type(c) for c in cmds] == [UpsertCall] and cmds[0].row["billsec"] == 26


def test_stale_call_is_ended_and_finalized():
    book = new_book(stale_after_s=100, cdr_wait_s=5)
    book.handle(E.ChannelCreated(0, "L1", "A", "PJSIP/a", exten="0099"), 0)
    book.handle(E.ConsentRequested(0.1, "L1", "A", "PJSIP/a", "outbound", "0099"), 0.1)
    book.handle(E.ChannelAnswered(1, "L1", "A", "PJSIP/a"), 1)
    assert book.tick(50) == []
    assert book.tick(101) == []
    cmds = book.tick(107)
    assert [type(c) for c in cmds] == [FinalizeRecording, UpsertCall]
    assert {"stale", "cdr_missing"} <= set(cmds[0].metadata["flags"])
    book.tick(1000)
    assert book.live_call_ids() == [] and book.state("L1") == ""


def test_call_ids_are_normalized_once():
    book = new_book()
    book.handle(E.ChannelCreated(0, "pbx1_L1", "A", "PJSIP/a"), 0)
    book.handle(E.ChannelCreated(0, "L1", "B", "PJSIP/b"), 0)
    assert book.live_call_ids() == ["pbx1_L1"]
    assert book.snapshot("L1")["legs"] == {"A": "PJSIP/a", "B": "PJSIP/b"}


def _refuse_with(route_action):
    from pbx_recorder.core.calls import CallBook
    from pbx_recorder.core.rules import rules_from_dicts

    rules = rules_from_dicts([{"name": "x", "action": {"record": "yes", "consent": "explicit",
                                                        "refusal": route_action}}])
    book = CallBook("pbx1", MONITOR, rules)
    book.handle(E.ChannelCreated(0, "L1", "A", "PJSIP/a"), 0)
    book.handle(E.ConsentRequested(1, "L1", "A", "PJSIP/a", "inbound", "1"), 1)
    cmds = book.handle(E.ConsentResolved(2, "L1", "A", "PJSIP/a", "refused"), 2)
    return {(c.name, c.value) for c in cmds if isinstance(c, SetChannelVar)}, cmds


def test_refusal_variables_match_the_dialplan_snippet():
    assert _refuse_with(None)[0] == {("PBXREC_RESULT", "norecord")}  # route "continue": call goes on
    assert _refuse_with({"hangup": True})[0] == {("PBXREC_RESULT", "refused")}
    assert _refuse_with({"goto": "c,s,1"})[0] == {("PBXREC_RESULT", "refused"), ("PBXREC_ROUTE", "c,s,1")}
    assert any(isinstance(c, DiscardRecording) for c in _refuse_with(None)[1])


def test_goto_rewrites_cdr_dst_but_row_keeps_the_dialed_did():
    run = play("goto_dnid")
    row = only_row(run)
    assert row["callee_num"] == "800123" and row["did"] == "800123"
    cdr = json.loads(row["cdr"])
    assert cdr["dst"] == "1" and cdr["dcontext"] == "did-800123"  # the CDR itself is kept as evidence
    (fin,) = run.of(FinalizeRecording)
    assert fin.metadata["callee_num"] == "800123" and fin.metadata["did"] == "800123"
    assert fin.metadata["cdr"]["dst"] == "1"


def test_outbound_callee_is_the_dialed_number_not_the_cdr_dst():
    row = only_row(play("goto_dnid_outbound"))
    assert row["direction"] == "outbound" and row["callee_num"] == "00441234567" and row["did"] == ""
    assert json.loads(row["cdr"])["dst"] == "s"


def _row_without_consent_request(cdr_fields):
    book = new_book()
    book.handle(E.ChannelCreated(at=0, call_id="L1", channel_id="A", channel="PJSIP/200-01",
                                 caller_num="200", exten="101"), 0)
    book.handle(E.ChannelCreated(at=0.1, call_id="L1", channel_id="B", channel="PJSIP/101-02"), 0.1)
    book.handle(E.ChannelAnswered(at=2, call_id="L1", channel_id="B", channel="PJSIP/101-02"), 2)
    book.handle(E.ChannelHungUp(at=9, call_id="L1", channel_id="B", channel="PJSIP/101-02"), 9)
    book.handle(E.ChannelHungUp(at=9, call_id="L1", channel_id="A", channel="PJSIP/200-01"), 9)
    cmds = book.handle(E.CdrPosted(at=9.1, call_id="L1", channel_id="A", fields=cdr_fields), 9.1)
    (upsert,) = [c for c in cmds if isinstance(c, UpsertCall)]
    return upsert.row


def test_without_consent_request_cdr_pbxrec_dnid_comes_before_dst():
    for key in ("pbxrec_dnid", "PbxrecDnid"):  # as mapped in cdr_manager.conf, or already snake-cased
        row = _row_without_consent_request({"disposition": "ANSWERED", "dst": "1", key: "105"})
        assert row["callee_num"] == "105" and json.loads(row["cdr"])["dst"] == "1"


def test_cdr_dst_is_only_the_last_resort():
    assert _row_without_consent_request({"disposition": "ANSWERED", "dst": "102"})["callee_num"] == "102"
    assert _row_without_consent_request({"disposition": "ANSWERED"})["callee_num"] == "101"


def test_failed_dialogue_is_not_recorded_and_never_becomes_the_callers_hangup():
    run = play("consent_failed_caller_stays")
    assert not [c for c in run.of(SetChannelVar) if c.name in ("PBXREC_RESULT", "PBXREC_ROUTE")
                and c.value != "record"]  # the snippet already took its fail direction: no refusal route
    assert [d.recording_id for d in run.of(DiscardRecording)] == ["pbx1_L1_consent001"]
    assert not run.of(FinalizeRecording)
    row = only_row(run)
    assert row["consent_decision"] == "failed" and row["record_decision"] == "no_record"
    assert "failed" in json.loads(row["flags"])


def test_session_refused_for_capacity_says_so_in_the_catalog():
    run = play("consent_capacity")
    assert not run.of(StartRecording) and not run.of(SetChannelVar)
    row = only_row(run)
    assert row["consent_decision"] == "capacity" and row["record_decision"] == "no_record"
    assert json.loads(row["flags"]) == ["capacity"]  # not "no_consent_path": it did pass the Gosub


def test_capacity_refusal_after_the_grace_decision_still_says_capacity():
    book = new_book()
    book.handle(E.ChannelCreated(at=0, call_id="L1", channel_id="L1", channel="PJSIP/t-1", exten="800200"), 0)
    book.handle(E.ChannelAnswered(at=0.2, call_id="L1", channel_id="L1", channel="PJSIP/t-1"), 0.2)
    book.tick(5)  # the Gosub grace ran out: decided without it (explicit rule -> not recorded)
    book.handle(E.ConsentUnavailable(at=5.5, call_id="L1", channel_id="L1", channel="PJSIP/t-1",
                                     reason="capacity"), 5.5)
    assert book.snapshot("L1")["consent_decision"] == "capacity"
    assert book.state("L1") == "not_recorded"
