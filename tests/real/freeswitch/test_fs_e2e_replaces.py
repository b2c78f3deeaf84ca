"""End-to-end on FreeSWITCH: an attended transfer completed by the agent PHONE with SIP REFER +
Replaces (RFC 3891), not by a FreeSWITCH application.

Real FreeSWITCH + sipp + ``pbx-recorder run``.  The agent phone (one sipp UAS,
:mod:`pbx_recorder.testbed.freeswitch_replaces`) holds the queue call, gets its consultation
with a colleague (a second sipp UAS) and then sends, in the queue call's dialog, ``REFER`` with
``Refer-To: <...?Replaces=<consultation dialog>>``: mod_sofia bridges the caller with the
colleague and ends the consultation leg with ATTENDED_TRANSFER.

What this proves: the caller's call keeps ONE continuous recording from the agent's bridge to the
caller's hang-up, through the REFER (the colleague's part of the conversation included), and the
consultation records nothing.  The consultation (a call of its own until the REFER, placed by
the phone) stays a second catalog row, but the two rows are linked both ways (esl/replaces.py:
each row's ``transfer`` entry names the other call, ``calls show`` prints it) and both are
flagged ``transferred``.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from fs_helpers import (
    agent_bridged,
    call_row,
    new_caller,
    record_started,
    recorded_span,
    uuid_of,
    wait_fs_shipped,
)
from recorder_checks import Recorder, stored_file

from pbx_recorder.testbed.audio_stats import AudioStats, audio_stats
from pbx_recorder.testbed.freeswitch import PrivateFreeSWITCH
from pbx_recorder.testbed.freeswitch_probe import FsProbe
from pbx_recorder.testbed.freeswitch_replaces import FsReplacesAgent
from pbx_recorder.testbed.freeswitch_sipp import FsSippCall, FsSippUas
from pbx_recorder.testbed.ports import free_udp_port
from pbx_recorder.testbed.recorder import recorder_command

pytestmark = [pytest.mark.real, pytest.mark.timeout(180)]


def test_refer_with_replaces_keeps_the_callers_recording_continuous(
        freeswitch: PrivateFreeSWITCH, fs_agent_port: int, esl: FsProbe, fs_recorder: Recorder,
        tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    colleague_port = free_udp_port()
    colleague = FsSippUas(tmp_path, colleague_port, calls=1, timeout_s=120).start()
    agent = FsReplacesAgent(tmp_path, fs_agent_port, freeswitch.sip_port, refer_after_ms=9000,
                            timeout_s=120).start()
    sipp: FsSippCall | None = None
    try:
        sipp = FsSippCall(tmp_path, freeswitch.sip_port, "8004", hangup_after_s=30, from_user=caller,
                          test_tag="fs_replaces").start()
        member = uuid_of(esl, caller, since)
        _, bridged = agent_bridged(esl, member, since)
        agent_leg = bridged["CC-Agent-UUID"]
        _, started = record_started(esl, since)
        time.sleep(2)
        consult = esl.api(f"originate {{sip_h_X-Consult=yes}}sofia/internal/agent1@127.0.0.1:{fs_agent_port} "
                          f"&bridge(sofia/internal/colleague@127.0.0.1:{colleague_port})")
        assert consult.startswith("+OK"), consult
        consult_leg = consult.split()[1]
        joined = esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_BRIDGE"
                                and e.get("Unique-ID") == member
                                and e.get("Other-Leg-Unique-ID") not in ("", agent_leg),
                                timeout=30, since=since)
        result = sipp.wait(timeout=60)
    finally:
        agent_end, colleague_end = agent.wait(timeout=20), colleague.wait(timeout=20)
        if sipp is not None and sipp.running:
            sipp.stop()
    assert result.ok and agent_end.ok and colleague_end.ok, (result.errors, agent_end.errors,
                                                             colleague_end.errors)
    replaced = esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE"
                              and e.get("Unique-ID") == consult_leg, timeout=10)
    assert replaced["Hangup-Cause"] == "ATTENDED_TRANSFER", replaced["Hangup-Cause"]
    history = joined.get("variable_transfer_history", "")
    assert ":att_xfer:" in history, history  # mod_sofia's REFER/Replaces path did it
    row, _ = wait_fs_shipped(fs_recorder, member)
    assert fs_recorder.process.terminate() == 0, fs_recorder.process.log_tail()
    caller_row = fs_recorder.catalog.query("SELECT uniqueids FROM calls WHERE call_id = ?", (row["call_id"],))
    assert {member, agent_leg} <= set(json.loads(caller_row[0]["uniqueids"])), caller_row
    recs = fs_recorder.catalog.query("SELECT * FROM recordings")  # the consultation records nothing
    assert [(r["kind"], r["state"], r["call_id"]) for r in recs] == [("call", "verified", row["call_id"])], \
        recs
    path = stored_file(fs_recorder, recs[0])
    stats = audio_stats(path)
    span = recorded_span(esl, member)  # RECORD_START -> the caller's hang-up, after the colleague talked
    assert stats.rms > 0.01 and abs(stats.duration_s - span) <= 2.5, (stats, span)
    rec_start = int(started["Event-Date-Timestamp"]) / 1e6
    after_join = int(joined["Event-Date-Timestamp"]) / 1e6 - rec_start + 0.5
    assert stats.duration_s - after_join > 5, (stats, after_join)  # the caller talked with the colleague
    assert _segment(path, after_join, stats.duration_s - 0.5, tmp_path).rms > 0.01  # and it is in the file
    # one row per call, linked both ways
    consult_row = call_row(fs_recorder, consult_leg)
    assert consult_row is not None and consult_row["call_id"] != row["call_id"]
    for own, other in ((row, consult_row), (consult_row, row)):
        own = fs_recorder.catalog.query("SELECT * FROM calls WHERE call_id = ?", (own["call_id"],))[0]
        links = json.loads(own["consent"]).get("transfer")
        assert [(x["kind"], x["call_id"]) for x in links] == [("attended", other["call_id"])], own["consent"]
        assert "transferred" in json.loads(own["flags"]), own["flags"]
    shown = subprocess.run([*recorder_command(), "--config", str(fs_recorder.config_path), "calls", "show",
                            row["call_id"]], capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0 and f"attended with {consult_row['call_id']}" in shown.stdout, shown


def _segment(path: Path, start: float, end: float, workdir: Path) -> AudioStats:
    out = workdir / f"seg-{start:.2f}-{end:.2f}.wav"
    subprocess.run(["sox", str(path), str(out), "trim", f"{start:.3f}", f"={end:.3f}"],
                   capture_output=True, timeout=30, check=True)
    return audio_stats(out)
