"""End-to-end, issue 10: a call's times are Asterisk's, not the time a busy recorder read them.

The sandbox's manager.conf has ``timestampevents = yes`` (as the admin's must: README, "AMI
user"); the recorder takes each event's time from its ``Timestamp`` header (ami/event_time.py).
Here the recorder's AMI link is held in a gate for 3 s across the answer, as a starved recorder
leaves its socket unread: the catalog still says when Asterisk answered.  Version-neutral.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from ami_gate import gated_recorder
from call_helpers import linkedid_of, new_caller
from recorder_checks import wait_call, wait_shipped

from pbx_recorder.testbed import PrivateAsterisk, SippCall
from pbx_recorder.testbed.ami_probe import AmiProbe

pytestmark = [pytest.mark.real, pytest.mark.timeout(180)]

HOLD_S = 3.0


def test_an_answer_read_late_keeps_the_time_asterisk_answered(
        asterisk: PrivateAsterisk, ami: AmiProbe, prompts_dir: Path, tmp_path: Path) -> None:
    with gated_recorder(asterisk, prompts_dir, tmp_path) as (recorder, gate):
        caller, since = new_caller(), len(ami.events)
        gate.hold()  # from here the recorder reads nothing from Asterisk
        sipp = SippCall(tmp_path, asterisk.sip_port, "8003", hangup_after_s=8, from_user=caller).start()
        linkedid = linkedid_of(ami, caller, since)
        answer = ami.wait_event(lambda e: e.get("Event") == "Newstate" and e.get("Uniqueid") == linkedid
                                and e.get("ChannelStateDesc") == "Up", timeout=15, since=since)
        created = ami.wait_event(lambda e: e.get("Event") == "Newchannel" and e.get("Uniqueid") == linkedid,
                                 timeout=5, since=since)
        time.sleep(HOLD_S)
        released_at = time.time()
        gate.release()
        result = sipp.wait(timeout=40)
        assert result.ok, result.errors
        row = wait_call(recorder, linkedid)
    answered, started = float(answer["Timestamp"]), float(created["Timestamp"])
    assert released_at - answered > HOLD_S - 0.5  # the recorder really read the answer late
    assert row["answered_at"] == pytest.approx(answered, abs=0.002), (row["answered_at"], answered)
    # the call may be opened by its FastAGI session (not held) a few ms after Newchannel
    assert row["started_at"] == pytest.approx(started, abs=0.5), (row["started_at"], started)
    assert "no Timestamp" not in recorder.process.log_path.read_text()  # the sandbox has timestampevents


def test_a_start_confirmed_late_is_not_flagged_as_a_duration_mismatch(
        asterisk: PrivateAsterisk, ami: AmiProbe, prompts_dir: Path, tmp_path: Path) -> None:
    """A notify call's recording starts in band (FastAGI EXEC, timed on the AGI socket, which is
    not held) while every AMI event of the call, its hang-up's included, is read 3 s late: the
    span runs from that start to the hang-up's own Timestamp, so sound audio is not flagged.
    (A start confirmed by a late-read AMI reply is timed back by the stream's lag:
    tests/peers/test_ami_client.py, test_a_start_confirmed_late_is_timed_back_by_the_streams_lag.)"""
    with gated_recorder(asterisk, prompts_dir, tmp_path) as (recorder, gate):
        caller, since = new_caller(), len(ami.events)
        sipp = SippCall(tmp_path, asterisk.sip_port, "8001", hangup_after_s=14, from_user=caller).start()
        linkedid = linkedid_of(ami, caller, since)
        gate.hold()  # the call's events and the MixMonitor response after the notice wait in the gate
        start = ami.wait_event(lambda e: e.get("Event") == "MixMonitorStart"
                               and e.get("Linkedid") == linkedid, timeout=15, since=since)
        time.sleep(HOLD_S)
        gate.release()
        result = sipp.wait(timeout=40)
        assert result.ok, result.errors
        row, recs = wait_shipped(recorder, linkedid)
    hangup = ami.wait_event(lambda e: e.get("Event") == "Hangup" and e.get("Uniqueid") == linkedid,
                            timeout=5, since=since)
    span = float(hangup["Timestamp"]) - float(start["Timestamp"])
    (main,) = [r for r in recs if r["kind"] == "call"]
    assert "duration_mismatch" not in json.loads(main["flags"]), (main["flags"], main["duration_s"], span)
    assert main["duration_s"] == pytest.approx(span, abs=1.0), (main["duration_s"], span)
