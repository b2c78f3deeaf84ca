"""End-to-end: real Asterisk + sipp + the recorder daemon (``pbx-recorder run``).

Consent scenarios.  These need the integrated daemon (AGI server, AMI adapter, pipeline).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from call_helpers import call, linkedid_of, new_caller, recorded_span, user_event
from recorder_checks import Recorder, assert_audio, audio_files, wait_call, wait_shipped

from pbx_recorder.testbed import PrivateAsterisk
from pbx_recorder.testbed.ami_probe import AmiProbe

pytestmark = [pytest.mark.real, pytest.mark.timeout(180)]


def test_notify_only_call_is_recorded(asterisk: PrivateAsterisk, ami: AmiProbe, recorder: Recorder,
                                      tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    result = call(asterisk, tmp_path, "8001", hangup_after_s=10, from_user=caller)
    assert result.ok, result.errors
    linkedid = linkedid_of(ami, caller, since)
    row, recs = wait_shipped(recorder, linkedid)
    assert row["consent_decision"] == "notified" and row["record_decision"] == "record"
    # the sandbox dialplan does Goto(did-8001,1,1): the CDR's dst is "1", the row keeps the DID
    assert row["did"] == "8001" and row["callee_num"] == "8001", (row["did"], row["callee_num"])
    assert json.loads(row["cdr"]).get("dst") == "1", row["cdr"]  # the CDR itself is kept as received
    evidence = recorder.catalog.consent(row)
    assert "rn-2026-01" in str(evidence)  # the notice version heard
    main = [r for r in recs if r["kind"] == "call"]
    assert len(main) == 1
    span = recorded_span(ami, linkedid, since)  # the call minus the notice, by Asterisk's clock
    assert 3 < span < 10, span
    assert_audio(recorder, main[0], expect_s=span, tolerance_s=1.5)


def test_explicit_yes_records_call_and_consent_segment(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                       recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    result = call(asterisk, tmp_path, "8002", hangup_after_s=12, from_user=caller,
                  dtmf=[(2500, "1")])
    assert result.ok and result.elapsed_s > 11, result.errors
    linkedid = linkedid_of(ami, caller, since)
    row, recs = wait_shipped(recorder, linkedid, count=2)
    assert row["consent_decision"] == "granted" and row["record_decision"] == "record"
    evidence = recorder.catalog.consent(row)
    assert "cq-2026-01" in str(evidence) and "1" in str(evidence.get("digit", evidence))
    kinds = sorted(r["kind"] for r in recs)
    assert kinds == ["call", "consent"]
    assert all(r["call_id"] == row["call_id"] for r in recs)
    span = recorded_span(ami, linkedid, since, nth=1)  # the consent segment's MixMonitor came first
    assert 5 < span < 12, span
    assert_audio(recorder, next(r for r in recs if r["kind"] == "call"), expect_s=span, tolerance_s=1.5)


def test_explicit_no_routes_unrecorded_and_keeps_nothing(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                         recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    before = audio_files(asterisk.monitor_dir) | audio_files(recorder.workdir)
    result = call(asterisk, tmp_path, "8002", hangup_after_s=8, from_user=caller, test_tag="refused_no",
                  dtmf=[(2500, "2")])
    assert result.ok, result.errors
    assert user_event(ami, "PbxrecUnrecorded", "refused_no", since=since)
    row = wait_call(recorder, linkedid_of(ami, caller, since))
    assert row["consent_decision"] == "refused" and row["record_decision"] == "refused"
    time.sleep(2)
    assert recorder.catalog.recordings(row["call_id"]) == [] or all(
        r["state"] in ("erased", "discarded") for r in recorder.catalog.recordings(row["call_id"]))
    assert audio_files(asterisk.monitor_dir) | audio_files(recorder.workdir) == before


def test_no_answer_times_out_and_fails_closed(asterisk: PrivateAsterisk, ami: AmiProbe, recorder: Recorder,
                                              tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    before = audio_files(asterisk.monitor_dir) | audio_files(recorder.workdir)
    result = call(asterisk, tmp_path, "8002", hangup_after_s=25, from_user=caller, test_tag="timeout")
    assert result.ok, result.errors
    row = wait_call(recorder, linkedid_of(ami, caller, since))
    assert row["consent_decision"] == "timeout" and row["record_decision"] != "record"
    time.sleep(2)
    assert audio_files(asterisk.monitor_dir) | audio_files(recorder.workdir) == before


def test_hangup_during_prompt_leaves_no_recording(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                  recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    before = audio_files(asterisk.monitor_dir) | audio_files(recorder.workdir)
    result = call(asterisk, tmp_path, "8002", hangup_after_s=2, from_user=caller)
    assert result.ok, result.errors
    row = wait_call(recorder, linkedid_of(ami, caller, since))
    assert row["consent_decision"] == "hangup" and row["record_decision"] != "record"
    time.sleep(2)
    assert audio_files(asterisk.monitor_dir) | audio_files(recorder.workdir) == before
    assert recorder.process.running


def test_no_record_rule_records_nothing(asterisk: PrivateAsterisk, ami: AmiProbe, recorder: Recorder,
                                        tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    before = audio_files(asterisk.monitor_dir)
    result = call(asterisk, tmp_path, "8003", hangup_after_s=5, from_user=caller)
    assert result.ok and result.elapsed_s > 4.5, result.errors  # the call went on
    linkedid = linkedid_of(ami, caller, since)
    row = wait_call(recorder, linkedid)
    assert row["record_decision"] == "no_record" and row["rule"] == "no-record-did"
    assert recorder.catalog.recordings(row["call_id"]) == []
    assert not ami.find(lambda e: e.get("Event") == "MixMonitorStart" and e.get("Linkedid") == linkedid)
    assert audio_files(asterisk.monitor_dir) == before
