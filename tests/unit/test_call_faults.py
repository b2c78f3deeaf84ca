"""Issue 10, the call path under faults: pure core (CallBook, call_faults, catalog guard)."""

from __future__ import annotations

import json

import pytest
from calls_transcript import new_book, play

from pbx_recorder.catalog import Catalog
from pbx_recorder.core import events as E
from pbx_recorder.core.commands import (
    DiscardRecording,
    FinalizeRecording,
    FlagRecordings,
    StartRecording,
    StopRecording,
    UpsertCall,
)
from pbx_recorder.core.naming import boot_of_call_id, boot_tag, make_call_id
from pbx_recorder.errors import CallIdCollision
from pbx_recorder.recording.pipeline import manifest_from_metadata

TRUNK = "PJSIP/trunk-01"


def _explicit_until_dialogue(book, linkedid="L1", at=1.0):
    book.handle(E.ChannelCreated(at - 1, linkedid, linkedid, TRUNK, caller_num="+15550101", exten="800200"),
                at)
    book.handle(E.ChannelAnswered(at - 0.8, linkedid, linkedid, TRUNK), at)
    cmds = book.handle(E.ConsentRequested(at, linkedid, linkedid, TRUNK, "inbound", "800200"), at)
    book.handle(E.RecordingStarted(at + 0.1, linkedid, linkedid, TRUNK, f"pbx1_{linkedid}_consent001",
                                   pbx_ref="MIX-7"), at + 0.1)
    return cmds


def _mmid(value):
    return {"PBXREC_DIALOGUE_MMID": value}


def _row(cmds):
    (upsert,) = [c for c in cmds if isinstance(c, UpsertCall)]
    return upsert.row


# --- 3: the consent segment is linked to the CDR ---------------------------------------

def test_consent_segment_is_finalized_with_the_cdr_not_before_it():
    run = play("explicit_yes")
    resolved = run.per_step[4][1]  # ConsentResolved(granted)
    assert not [c for c in resolved if isinstance(c, FinalizeRecording)]
    assert [c.recording_id for c in resolved if isinstance(c, StopRecording)] == ["pbx1_L1_consent001"]
    fins = {f.recording_id: f for f in run.of(FinalizeRecording)}
    consent = fins["pbx1_L1_consent001"]
    assert consent.metadata["cdr"] == {"disposition": "ANSWERED"}
    assert consent.metadata["recorded_to"] == 5  # the segment still ends when the answer came
    manifest = manifest_from_metadata(consent.call_id, consent.recording_id, consent.metadata, 40.0)
    assert "cdr_missing" not in manifest.flags


# --- 1: the recorder died mid-dialogue ----------------------------------------------------

def test_dialogue_recording_is_started_with_the_fixed_mmid_variable():
    cmds = _explicit_until_dialogue(new_book())
    (start,) = [c for c in cmds if isinstance(c, StartRecording)]
    assert start.kind == "consent" and start.dialogue


def test_restarted_recorder_settles_a_call_restored_mid_dialogue():
    old = new_book()
    _explicit_until_dialogue(old)
    snapshot = old.snapshot("L1")
    book = new_book()
    book.restore(snapshot)
    cmds = book.handle(E.LiveChannel(20, "L1", "L1", TRUNK, "up", variables=_mmid("MIX-7")), 20)
    (stop,) = [c for c in cmds if isinstance(c, StopRecording)]
    assert stop.recording_id == "pbx1_L1_consent001" and stop.pbx_ref == "MIX-7"
    (discard,) = [c for c in cmds if isinstance(c, DiscardRecording)]
    assert discard.reason == "consent_interrupted"
    cmds = book.handle(E.ChannelHungUp(40, "L1", "L1", TRUNK), 40)
    cmds += book.handle(E.CdrPosted(40.5, "L1", "L1", fields={"disposition": "ANSWERED"}), 40.5)
    row = _row(cmds)
    assert row["consent_decision"] == "interrupted" and row["consent_decision"] != "hangup"
    assert row["record_decision"] == "refused" and "consent_interrupted" in json.loads(row["flags"])
    assert not [c for c in cmds if isinstance(c, FinalizeRecording)]


def test_restored_mid_dialogue_call_gone_while_away_is_interrupted_not_hangup():
    old = new_book()
    _explicit_until_dialogue(old)
    book = new_book()
    book.restore(old.snapshot("L1"))
    cmds = book.handle(E.ResyncCompleted(20, frozenset()), 20)
    assert [c.reason for c in cmds if isinstance(c, DiscardRecording)] == ["consent_interrupted"]
    cmds = book.tick(40)
    assert _row(cmds)["consent_decision"] == "interrupted"


def test_unknown_channel_with_a_dialogue_recording_and_no_decision_is_stopped():
    book = new_book()
    cmds = book.handle(E.LiveChannel(5, "L7", "L7", TRUNK, "up", variables=_mmid("MIX-9")), 5)
    assert cmds == [StopRecording("pbx1_L7", "", TRUNK, "MIX-9")]
    snap = book.snapshot("L7")
    assert snap["consent_decision"] == "interrupted" and snap["result"] == "norecord"


def test_a_live_dialogue_of_this_process_is_not_settled_by_a_resync():
    book = new_book()
    _explicit_until_dialogue(book)
    cmds = book.handle(E.LiveChannel(3, "L1", "L1", TRUNK, "up", variables=_mmid("MIX-7")), 3)
    assert cmds == [] and book.state("L1") == "consent_pending"


# --- 4: a recording that never started --------------------------------------------------

def test_start_failure_says_not_recorded_and_why():
    book = new_book()
    book.handle(E.ChannelCreated(0, "L2", "L2", TRUNK, exten="0301234"), 0)
    cmds = book.handle(E.ConsentRequested(1, "L2", "L2", TRUNK, "outbound", "0301234"), 1)
    (start,) = [c for c in cmds if isinstance(c, StartRecording)]
    book.handle(E.RecordingFailed(1.2, "L2", "L2", TRUNK, start.recording_id, "ami_unavailable"), 1.2)
    cmds = book.handle(E.ChannelHungUp(30, "L2", "L2", TRUNK), 30)
    cmds += book.tick(45)  # no CDR either (the AMI link was down)
    row = _row(cmds)
    assert row["record_decision"] == "not_recorded"
    assert {"recording_failed", "ami_unavailable"} <= set(json.loads(row["flags"]))
    assert row["status"] == "answered"  # it went through the snippet, which answers first
    assert not [c for c in cmds if isinstance(c, FinalizeRecording)]


def test_dialogue_recording_start_failure_is_not_a_hangup():
    book = new_book()
    _explicit_until_dialogue(book)
    failed = E.RecordingFailed(1.2, "L1", "L1", TRUNK, "pbx1_L1_consent001", "ami_unavailable")
    cmds = book.handle(failed, 1.2)
    assert [c.reason for c in cmds if isinstance(c, DiscardRecording)] == ["consent_recorder_failed"]
    snap = book.snapshot("L1")
    assert snap["consent_decision"] == "recorder_failed" and snap["result"] == "failed"
    assert snap["state"] == "not_recorded"  # ours, not the caller's refusal


def test_call_seen_only_partly_is_never_no_answer():
    book = new_book()
    book.handle(E.LiveChannel(5, "L3", "L3", "PJSIP/x-1", "ring"), 5)
    cmds = book.handle(E.ResyncCompleted(9, frozenset()), 9) + book.tick(30)
    assert _row(cmds)["status"] == "unknown"


# --- 5: ids unique across PBX restarts -------------------------------------------------

def test_call_id_carries_the_pbx_start_time():
    boot = boot_tag("2026-12-01", "15:08:00")
    assert boot == "20261201150800"
    cid = make_call_id("pbx1", "1764601680.3", boot)
    assert cid == "pbx1_20261201150800-1764601680.3" and boot_of_call_id(cid) == boot
    assert make_call_id("pbx1", "1764601680.3", boot_tag("2026-12-01", "15:09:30")) != cid
    assert boot_tag("", "") == "" and make_call_id("pbx1", "1.2") == "pbx1_1.2"
    with pytest.raises(ValueError):
        make_call_id("pbx1", "1.2", "../x")


def _whole_call(book, linkedid, at, dialed):
    cmds = book.handle(E.ChannelCreated(at, linkedid, linkedid, TRUNK, exten=dialed), at)
    cmds += book.handle(E.ConsentRequested(at + 1, linkedid, linkedid, TRUNK, "inbound", dialed), at + 1)
    cmds += book.handle(E.ChannelHungUp(at + 5, linkedid, linkedid, TRUNK), at + 5)
    cdr = E.CdrPosted(at + 5.5, linkedid, linkedid, fields={"disposition": "ANSWERED"})
    cmds += book.handle(cdr, at + 5.5)
    return cmds


def test_replayed_linkedid_is_a_new_call_with_its_own_id_and_decision():
    book = new_book()
    first = _whole_call(book, "1700000000.0", 100.0, "800999")  # protected line: never recorded
    second = _whole_call(book, "1700000000.0", 108.0, "100")  # same linkedid after a fast restart
    row_a, row_b = _row(first), _row(second)
    assert row_a["call_id"] == "pbx1_1700000000.0" and row_b["call_id"] == "pbx1_1700000000.0-r2"
    assert row_a["record_decision"] == "no_record" and row_b["record_decision"] == "record"
    assert row_b["started_at"] == 108.0 and "linkedid_reused" in json.loads(row_b["flags"])
    assert [c.call_id for c in second if isinstance(c, StartRecording)] == ["pbx1_1700000000.0-r2"]


def test_same_uniqueid_created_again_while_the_old_call_is_open_is_another_call():
    book = new_book()
    book.handle(E.ChannelCreated(0, "L5", "L5", TRUNK, exten="800200"), 0)
    book.handle(E.ChannelCreated(3, "L5", "L5", TRUNK, exten="800200"), 3)
    assert book.state("pbx1_L5-r2") == "idle" and book.find("L5").call_id == "pbx1_L5-r2"


def test_pbx_restart_ends_the_previous_runs_calls_and_flags_their_recordings_cut():
    book = new_book()
    book.handle(E.PbxBooted(0, "20261201150000"), 0)
    cid = make_call_id("pbx1", "1764601680.3", "20261201150000")
    book.handle(E.ChannelCreated(1, cid, "1764601680.3", TRUNK, exten="0301234"), 1)
    book.handle(E.ConsentRequested(2, cid, "1764601680.3", TRUNK, "outbound", "0301234"), 2)
    assert book.state(cid) == "recording"
    cmds = book.handle(E.PbxBooted(30, "20261201150029"), 30)
    cmds += book.tick(45)
    (fin,) = [c for c in cmds if isinstance(c, FinalizeRecording)]
    assert "cut" in fin.metadata["flags"] and "pbx_restarted" in fin.metadata["flags"]
    assert fin.metadata["recorded_to"] == 30 and fin.metadata["linkedid"] == "1764601680.3"


def test_catalog_never_lets_another_call_overwrite_a_row(tmp_path):
    catalog = Catalog(tmp_path / "c.db")
    catalog.upsert_call({"call_id": "pbx1_L1", "started_at": 100.0, "caller_num": "111",
                         "status": "answered"})
    catalog.upsert_call({"call_id": "pbx1_L1", "started_at": 100.0, "status": "answered", "cdr": {"a": 1}})
    with pytest.raises(CallIdCollision):
        catalog.upsert_call({"call_id": "pbx1_L1", "started_at": 160.0, "caller_num": "222"})
    row = catalog.get_call("pbx1_L1")
    assert row["caller_num"] == "111" and row["started_at"] == 100.0 and row["cdr"] == {"a": 1}


def test_call_hung_up_by_core_restart_now_is_flagged_cut_after_the_fact():
    book = new_book()
    book.handle(E.PbxBooted(0, "20261201150000"), 0)
    cid = make_call_id("pbx1", "1764601680.3", "20261201150000")
    cmds = _whole_call(book, cid, 1.0, "100")  # finalized: Hangup and Cdr came before the link dropped
    (fin,) = [c for c in cmds if isinstance(c, FinalizeRecording)]
    book.handle(E.PbxLinkLost(7.5), 7.5)
    cmds = book.handle(E.PbxBooted(10, "20261201150008"), 10)
    (flag,) = [c for c in cmds if isinstance(c, FlagRecordings)]
    assert flag.recording_ids == (fin.recording_id,) and "cut" in flag.flags
    assert "pbx_restarted" in json.loads(_row(cmds)["flags"])


def test_call_that_began_while_the_link_was_down_belongs_to_the_new_run():
    book = new_book()
    book.handle(E.PbxBooted(0, "20261201150000"), 0)
    book.handle(E.PbxLinkLost(5), 5)
    stale = make_call_id("pbx1", "1764601690.0", "20261201150000")  # AGI used the old boot tag
    cmds = book.handle(E.ConsentRequested(7, stale, "1764601690.0", TRUNK, "inbound", "100"), 7)
    assert [c.kind for c in cmds if isinstance(c, StartRecording)] == ["call"]
    assert book.handle(E.PbxBooted(8, "20261201150006"), 8) == []
    fresh = make_call_id("pbx1", "1764601690.0", "20261201150006")
    assert book.state(fresh) == "recording" and book.state(stale) == "recording"  # alias
    cmds = book.handle(E.ChannelHungUp(20, fresh, "1764601690.0", TRUNK), 20)
    cmds += book.handle(E.CdrPosted(20.5, fresh, "1764601690.0", fields={"disposition": "ANSWERED"}), 20.5)
    assert _row(cmds)["call_id"] == fresh and "pbx_restarted" not in json.loads(_row(cmds)["flags"])


def test_consent_request_before_its_newchannel_is_the_same_call():
    book = new_book()  # under load the FastAGI request can overtake the AMI Newchannel event
    book.handle(E.ConsentRequested(1, "L8", "L8", TRUNK, "inbound", "100"), 1)
    book.handle(E.ChannelCreated(0.5, "L8", "L8", TRUNK, exten="100"), 1.1)
    assert book.state("L8") == "recording" and "pbx1_L8-r2" not in book.calls
