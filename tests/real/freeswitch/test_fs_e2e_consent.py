"""End-to-end on FreeSWITCH: real FreeSWITCH 1.11 + sipp (continuous RTP, RFC 2833) + ``pbx-recorder run``
with ``pbx.type: freeswitch``.  Consent scenarios, the no-record rule, stereo.

The same assertions as the Asterisk tests (catalog rows, stored audio, consent evidence); the
call is found by its root uuid (the caller's channel).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from fs_helpers import (
    call,
    custom_event,
    hangup_complete,
    new_caller,
    rtp_in,
    uuid_of,
    wait_fs_call,
    wait_fs_shipped,
)
from recorder_checks import Recorder, assert_audio, audio_files, stored_file

from pbx_recorder.testbed import audio_stats
from pbx_recorder.testbed.freeswitch import PrivateFreeSWITCH
from pbx_recorder.testbed.freeswitch_probe import FsProbe

pytestmark = [pytest.mark.real, pytest.mark.timeout(180)]


def _nothing_recorded(freeswitch: PrivateFreeSWITCH, recorder: Recorder) -> set[Path]:
    return audio_files(freeswitch.recordings_dir) | audio_files(recorder.workdir)


def test_consent_none_records_without_a_prompt(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                               fs_recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    result = call(freeswitch, tmp_path, "8008", hangup_after_s=8, from_user=caller)
    assert result.ok, result.errors
    uuid = uuid_of(esl, caller, since)
    row, recs = wait_fs_shipped(fs_recorder, uuid)
    assert row["record_decision"] == "record" and row["rule"] == "no-consent-did", row
    assert not esl.find(lambda e: e.get("Event-Name") == "PLAYBACK_START" and e.get("Unique-ID") == uuid)
    main = [r for r in recs if r["kind"] == "call"]
    assert len(main) == 1
    assert_audio(fs_recorder, main[0], expect_s=8, tolerance_s=2, context=rtp_in(esl, uuid))
    assert hangup_complete(esl, uuid)["variable_PBXREC_RESULT"] == "record"


def test_notify_only_call_is_recorded(freeswitch: PrivateFreeSWITCH, esl: FsProbe, fs_recorder: Recorder,
                                      tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    result = call(freeswitch, tmp_path, "8001", hangup_after_s=10, from_user=caller)
    assert result.ok, result.errors
    uuid = uuid_of(esl, caller, since)
    row, recs = wait_fs_shipped(fs_recorder, uuid)
    assert row["consent_decision"] == "notified" and row["record_decision"] == "record"
    assert row["did"] == "8001" and row["caller_num"] == caller, (row["did"], row["caller_num"])
    assert json.loads(row["cdr"]), row["cdr"]  # from CHANNEL_HANGUP_COMPLETE
    assert "rn-2026-01" in str(fs_recorder.catalog.consent(row))  # the notice version heard
    main = [r for r in recs if r["kind"] == "call"]
    assert len(main) == 1
    assert_audio(fs_recorder, main[0], expect_s=10, tolerance_s=5,  # minus the notice (~4 s)
                 context=rtp_in(esl, uuid))
    done = hangup_complete(esl, uuid)
    assert done.get("variable_PBXREC_RECORDING_ID") == main[0]["recording_id"], done


def test_recording_of_a_caller_who_sends_no_audio_is_flagged_silent(
        freeswitch: PrivateFreeSWITCH, esl: FsProbe, fs_recorder: Recorder, tmp_path: Path) -> None:
    """A caller's words not in the file is a compliance fault the catalog must show, as on
    Asterisk (tests/real/test_asterisk_e2e_callpath.py): FreeSWITCH heard no packet, and the
    recording (FreeSWITCH's filler for the missing audio) is kept but flagged ``silent``."""
    caller, since = new_caller(), esl.mark()
    result = call(freeswitch, tmp_path, "8008", hangup_after_s=6, from_user=caller, mute=True)
    assert result.ok, result.errors
    uuid = uuid_of(esl, caller, since)
    _, recs = wait_fs_shipped(fs_recorder, uuid)
    (main,) = [r for r in recs if r["kind"] == "call"]
    assert "silent" in json.loads(main["flags"]), (main, rtp_in(esl, uuid))
    assert hangup_complete(esl, uuid)["variable_rtp_audio_in_media_packet_count"] == "0", rtp_in(esl, uuid)


def test_explicit_yes_records_call_and_consent_segment(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                       fs_recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    result = call(freeswitch, tmp_path, "8002", hangup_after_s=12, from_user=caller, dtmf=[(2500, "1")])
    assert result.ok and result.elapsed_s > 11, result.errors
    uuid = uuid_of(esl, caller, since)
    row, recs = wait_fs_shipped(fs_recorder, uuid, count=2)
    assert row["consent_decision"] == "granted" and row["record_decision"] == "record"
    evidence = fs_recorder.catalog.consent(row)
    assert "cq-2026-01" in str(evidence) and "1" in str(evidence.get("digit", evidence))
    (entry,) = [e for e in evidence["digit_log"] if e["counted"]]  # timed by FreeSWITCH's clock
    assert entry["digit"] == "1" and entry["prompt_offset_s"] >= 0.5, evidence["digit_log"]
    assert sorted(r["kind"] for r in recs) == ["call", "consent"]
    assert all(r["call_id"] == row["call_id"] for r in recs)
    assert_audio(fs_recorder, next(r for r in recs if r["kind"] == "call"), expect_s=8, tolerance_s=3)
    assert hangup_complete(esl, uuid)["variable_PBXREC_CONSENT"] == "granted"


def test_digit_pressed_before_the_question_is_not_consent(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                          fs_recorder: Recorder, tmp_path: Path) -> None:
    """A "1" sent 150 ms after the answer, before the question could be heard, is not a yes.
    (FreeSWITCH 1.11 was seen to drop a digit this early before play_and_get_digits runs; one
    that reaches the question is timed against it by the recorder: see the peer test
    test_a_digit_pressed_before_the_question_is_not_an_answer.)"""
    caller, since = new_caller(), esl.mark()
    result = call(freeswitch, tmp_path, "8002", hangup_after_s=28, from_user=caller, dtmf=[(150, "1")])
    assert result.ok, result.errors
    row = wait_fs_call(fs_recorder, uuid_of(esl, caller, since))
    assert row["consent_decision"] == "timeout" and row["record_decision"] != "record", row
    evidence = fs_recorder.catalog.consent(row)
    for entry in evidence.get("digit_log", []):  # if the early digit reached the dialogue at all
        assert entry["counted"] is False and entry["prompt_offset_s"] < 0.5, evidence
    recs = fs_recorder.catalog.recordings(row["call_id"])
    assert not [r for r in recs if r["state"] in ("stored", "verified")], recs


def test_explicit_no_routes_unrecorded_and_keeps_nothing(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                         fs_recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    before = _nothing_recorded(freeswitch, fs_recorder)
    result = call(freeswitch, tmp_path, "8002", hangup_after_s=8, from_user=caller, test_tag="fs_refused_no",
                  dtmf=[(2500, "2")])
    assert result.ok and result.elapsed_s > 7, result.errors  # routed on, not hung up
    assert custom_event(esl, "pbxrec::unrecorded", "fs_refused_no", since)
    row = wait_fs_call(fs_recorder, uuid_of(esl, caller, since))
    assert row["consent_decision"] == "refused" and row["record_decision"] == "refused"
    time.sleep(2)
    assert all(r["state"] in ("erased", "discarded") for r in fs_recorder.catalog.recordings(row["call_id"]))
    assert _nothing_recorded(freeswitch, fs_recorder) == before


def test_no_answer_times_out_and_fails_closed(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                              fs_recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    before = _nothing_recorded(freeswitch, fs_recorder)
    result = call(freeswitch, tmp_path, "8002", hangup_after_s=25, from_user=caller)
    assert result.ok, result.errors
    row = wait_fs_call(fs_recorder, uuid_of(esl, caller, since))
    assert row["consent_decision"] == "timeout" and row["record_decision"] != "record"
    time.sleep(2)
    assert _nothing_recorded(freeswitch, fs_recorder) == before


def test_hangup_during_prompt_leaves_no_recording(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                  fs_recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    before = _nothing_recorded(freeswitch, fs_recorder)
    result = call(freeswitch, tmp_path, "8002", hangup_after_s=2, from_user=caller)
    assert result.ok, result.errors
    row = wait_fs_call(fs_recorder, uuid_of(esl, caller, since))
    assert row["consent_decision"] == "hangup" and row["record_decision"] != "record"
    time.sleep(2)
    assert _nothing_recorded(freeswitch, fs_recorder) == before
    assert fs_recorder.process.running


def test_no_record_rule_records_nothing(freeswitch: PrivateFreeSWITCH, esl: FsProbe, fs_recorder: Recorder,
                                        tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    before = audio_files(freeswitch.recordings_dir)
    result = call(freeswitch, tmp_path, "8003", hangup_after_s=5, from_user=caller)
    assert result.ok and result.elapsed_s > 4.5, result.errors  # the call went on
    uuid = uuid_of(esl, caller, since)
    row = wait_fs_call(fs_recorder, uuid)
    assert row["record_decision"] == "no_record" and row["rule"] == "no-record-did"
    assert fs_recorder.catalog.recordings(row["call_id"]) == []
    assert not esl.find(lambda e: e.get("Event-Name") == "RECORD_START" and e.get("Unique-ID") == uuid)
    assert audio_files(freeswitch.recordings_dir) == before
    assert hangup_complete(esl, uuid)["variable_PBXREC_RESULT"] == "norecord"


@pytest.mark.parametrize("did", ["8007", "8010"])  # notify: uuid_record; none: started by the dialplan
def test_stereo_rule_caller_in_channel_one(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                           fs_recorder: Recorder, tmp_path: Path, did: str) -> None:
    caller, since = new_caller(), esl.mark()
    result = call(freeswitch, tmp_path, did, hangup_after_s=12, from_user=caller)
    assert result.ok, result.errors
    _, recs = wait_fs_shipped(fs_recorder, uuid_of(esl, caller, since))
    main = [r for r in recs if r["kind"] == "call"]
    assert len(main) == 1
    path = stored_file(fs_recorder, main[0])
    channels = subprocess.run(["soxi", "-c", str(path)], capture_output=True, text=True, timeout=10,
                              check=True)
    assert channels.stdout.strip() == "2"
    left, right = (_rough(path, ch) for ch in (1, 2))
    assert left[0] > 0.01 and right[0] > 0.01, (left, right)
    assert abs(right[1] - 1000) < 60 and abs(left[1] - 1000) > 150, (left, right)  # tone = FreeSWITCH side
    assert 5 < audio_stats(path).duration_s < 12.5


def _rough(path: Path, channel: int) -> tuple[float, float]:
    done = subprocess.run(["sox", str(path), "-n", "remix", str(channel), "stat"], capture_output=True,
                          text=True, timeout=30, check=True)
    lines = (line.partition(":") for line in done.stderr.splitlines())
    values = {" ".join(k.split()): v for k, _, v in lines}
    return float(values["RMS amplitude"]), float(values["Rough frequency"])
