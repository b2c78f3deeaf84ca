"""End-to-end on FreeSWITCH: the recording started by FreeSWITCH itself at answer (esl/early_start.py).

The snippet hands the call to the recorder before it answers; for a decision known then
(``consent: none``) the recorder sets ``execute_on_answer_pbxrec_1 = record_session <file>`` and
the snippet's ``answer`` starts it.  The daemon adopts that recording (RECORD_START -> the same
catalog row as a ``uuid_record`` one); PCI mask/unmask and stereo are in
test_fs_e2e_queue_pci.py / test_fs_e2e_consent.py (parametrized with the consent-none DIDs).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fs_helpers import call, hangup_complete, new_caller, recorded_span, uuid_of, wait_fs_shipped
from recorder_checks import Recorder, assert_audio, audio_files, stored_file

from pbx_recorder.testbed.audio_stats import audio_stats
from pbx_recorder.testbed.freeswitch import PrivateFreeSWITCH
from pbx_recorder.testbed.freeswitch_fake_socket import FakeOutboundSocket, OutboundSession, answer_with
from pbx_recorder.testbed.freeswitch_probe import Event, FsProbe

pytestmark = [pytest.mark.real, pytest.mark.timeout(180)]


def _of(esl: FsProbe, uuid: str, name: str, app: str = "") -> list[Event]:
    return [e for _, e in esl.find(lambda e: e.get("Event-Name") == name and e.get("Unique-ID") == uuid
                                   and (not app or e.get("Application") == app))]


def test_consent_none_is_started_by_freeswitch_at_answer_and_adopted(
        freeswitch: PrivateFreeSWITCH, esl: FsProbe, fs_recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    result = call(freeswitch, tmp_path, "8008", hangup_after_s=8, from_user=caller)
    assert result.ok, result.errors
    uuid = uuid_of(esl, caller, since)
    row, recs = wait_fs_shipped(fs_recorder, uuid)
    assert row["record_decision"] == "record" and row["rule"] == "no-consent-did", row
    (main,) = [r for r in recs if r["kind"] == "call"]
    done = hangup_complete(esl, uuid)
    # the dialplan's answer ran the record_session the recorder handed over, on the file it chose
    (started,) = _of(esl, uuid, "RECORD_START")
    (ran,) = _of(esl, uuid, "CHANNEL_EXECUTE", "record_session")
    path = started["Record-File-Path"]
    assert ran["Application-Data"] == path
    assert done["variable_execute_on_answer_pbxrec_1"] == f"record_session {path}"
    assert done["variable_PBXREC_RECORDING_PATH"] == path
    assert done["variable_PBXREC_RECORDING_ID"] == main["recording_id"]
    assert (done["variable_PBXREC_RESULT"], done["variable_PBXREC_CONSENT"]) == ("record", "not_required")
    # the socket was before the answer: the record_session ran inside it, not after a round trip
    answered = int(_of(esl, uuid, "CHANNEL_ANSWER")[0]["Event-Date-Timestamp"])
    socket_done = _of(esl, uuid, "CHANNEL_EXECUTE_COMPLETE", "socket")
    assert socket_done and int(socket_done[0]["Event-Date-Timestamp"]) <= answered
    # adopted: one recording, the same row as a uuid_record one (span from RECORD_START, no flag)
    assert json.loads(main["flags"] or "[]") == [], main["flags"]
    stored = audio_stats(stored_file(fs_recorder, main))
    assert abs(stored.duration_s - recorded_span(esl, uuid)) <= 1.5, stored
    assert_audio(fs_recorder, main, expect_s=8, tolerance_s=2)


def test_early_start_off_in_the_dialplan_records_in_band(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                         fs_recorder: Recorder, tmp_path: Path) -> None:
    """``PBXREC_EARLY_START=no`` (DID 8009, same rule): the recorder answers and runs uuid_record."""
    caller, since = new_caller(), esl.mark()
    result = call(freeswitch, tmp_path, "8009", hangup_after_s=6, from_user=caller)
    assert result.ok, result.errors
    uuid = uuid_of(esl, caller, since)
    row, recs = wait_fs_shipped(fs_recorder, uuid)
    assert row["rule"] == "no-consent-did" and len([r for r in recs if r["kind"] == "call"]) == 1
    assert len(_of(esl, uuid, "RECORD_START")) == 1
    assert not _of(esl, uuid, "CHANNEL_EXECUTE", "record_session")
    assert "variable_execute_on_answer_pbxrec_1" not in hangup_complete(esl, uuid)


def test_recorder_down_consent_none_call_goes_on_unrecorded(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                            tmp_path: Path) -> None:
    """The fail direction is unchanged for a rule that would record without a dialogue: no recorder,
    no decision, no recording (PBXREC_FAILMODE=continue: answered, unrecorded, reason on the CDR)."""
    caller, since = new_caller(), esl.mark()
    before = audio_files(freeswitch.recordings_dir)
    result = call(freeswitch, tmp_path, "8008", hangup_after_s=4, from_user=caller)
    assert result.ok and result.elapsed_s >= 3.5, result.errors
    done = hangup_complete(esl, uuid_of(esl, caller, since))
    assert done["variable_PBXREC_UNAVAILABLE"] == "unreachable" and "variable_PBXREC_RESULT" not in done
    assert not _of(esl, done["Unique-ID"], "RECORD_START")
    assert audio_files(freeswitch.recordings_dir) == before


def test_recorder_gone_after_handing_over_the_recording_leaves_nothing_recording(
        freeswitch: PrivateFreeSWITCH, esl: FsProbe, tmp_path: Path) -> None:
    """A recorder that set ``execute_on_answer_pbxrec_1`` and died before ``PBXREC_RESULT``: the
    snippet's fail branch unsets it before it answers, so the answer starts nothing."""
    target = freeswitch.recordings_dir / "handed-over-then-gone.wav"

    def hand_over_and_die(session: OutboundSession) -> None:
        answer_with("", answer=False, execute_on_answer_pbxrec_1=f"record_session {target}")(session)

    caller, since = new_caller(), esl.mark()
    with FakeOutboundSocket(freeswitch.socket_port, hand_over_and_die):
        result = call(freeswitch, tmp_path, "8008", hangup_after_s=4, from_user=caller)
    assert result.ok and result.elapsed_s >= 3.5, result.errors
    uuid = uuid_of(esl, caller, since)
    done = hangup_complete(esl, uuid)
    assert done["variable_PBXREC_UNAVAILABLE"] == "connected" and "variable_PBXREC_RESULT" not in done
    assert "variable_execute_on_answer_pbxrec_1" not in done
    assert not _of(esl, uuid, "RECORD_START") and not target.exists()


def test_handed_over_recording_runs_from_the_snippets_answer(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                             tmp_path: Path) -> None:
    """The snippet's side alone (a scripted recorder): a decision before answer with the variable set
    -> the call is answered by the snippet and the file is written from the answer on."""
    target = freeswitch.recordings_dir / f"handed-over-{time.time_ns()}.wav"
    script = answer_with("record", answer=False, execute_on_answer_pbxrec_1=f"record_session {target}")
    caller, since = new_caller(), esl.mark()
    with FakeOutboundSocket(freeswitch.socket_port, script) as server:
        result = call(freeswitch, tmp_path, "8008", hangup_after_s=5, from_user=caller)
    assert result.ok, result.errors
    assert server.sessions[0].channel.get("Answer-State") != "answered"  # handed over while ringing
    uuid = uuid_of(esl, caller, since)
    hangup_complete(esl, uuid)
    (started,) = _of(esl, uuid, "RECORD_START")
    assert started["Record-File-Path"] == str(target)
    assert 3.5 < audio_stats(target).duration_s < 5.5
    target.unlink()
