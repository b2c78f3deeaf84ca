"""End-to-end: queue, load, daemon restarts, AMI drops, daemon down, hostile caller IDs.

Real Asterisk + sipp + ``pbx-recorder run``; these need the integrated daemon.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from call_helpers import call, cdr_of, linkedid_of, new_caller, recorded_span
from recorder_checks import Recorder, assert_audio, audio_files, stored_file, wait_call, wait_shipped

from pbx_recorder.testbed import PrivateAsterisk, SippCall, SippUas
from pbx_recorder.testbed.ami_probe import AmiProbe

pytestmark = [pytest.mark.real, pytest.mark.timeout(240)]


def _mixmonitor_started(ami: AmiProbe, linkedid: str, since: int, timeout: float = 15.0) -> None:
    ami.wait_event(lambda e: e.get("Event") == "MixMonitorStart" and e.get("Linkedid") == linkedid,
                   timeout=timeout, since=since)


def test_queue_call_recorded_once_agent_is_bridged(asterisk: PrivateAsterisk, agent_port: int, ami: AmiProbe,
                                                   recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    agent = SippUas(tmp_path, agent_port, calls=1, timeout_s=60).start()
    try:
        result = call(asterisk, tmp_path, "8004", hangup_after_s=14, from_user=caller)
    finally:
        agent_result = agent.wait(timeout=20)
    assert result.ok and agent_result.ok, (result.errors, agent_result.errors)
    linkedid = linkedid_of(ami, caller, since)
    connect = ami.wait_event(lambda e: e.get("Event") == "AgentConnect" and e.get("Linkedid") == linkedid,
                             timeout=5, since=since)
    row, recs = wait_shipped(recorder, linkedid)
    assert row["queue"] == "support"
    calls = [r for r in recs if r["kind"] == "call"]
    assert len(calls) == 1
    # started on bridge: shorter than the call (notice + ringing came first), still several seconds
    assert_audio(recorder, calls[0], expect_s=14 - 4 - float(connect.get("HoldTime", 1)), tolerance_s=4)


def test_twenty_concurrent_calls_all_recorded(asterisk: PrivateAsterisk, ami: AmiProbe, recorder: Recorder,
                                              tmp_path: Path) -> None:
    prefix, since = new_caller(), len(ami.events)
    result = SippCall(tmp_path, asterisk.sip_port, "8001", hangup_after_s=10,
                      from_user=f"{prefix}x[call_number]", calls=20, concurrent=20, rate_per_s=20,
                      timeout_s=90).start().wait()
    assert result.ok, result.errors
    linkedids = {e["Linkedid"] for _, e in ami.events[since:]
                 if e.get("Event") == "Newchannel" and e.get("CallerIDNum", "").startswith(prefix + "x")}
    assert len(linkedids) == 20
    for linkedid in sorted(linkedids):
        _, recs = wait_shipped(recorder, linkedid, timeout=90)
        calls = [r for r in recs if r["kind"] == "call"]
        assert len(calls) == 1
        # as long as the PBX recorded it: MixMonitorStart to the caller's hang-up (the notice before
        # it takes longer on a loaded host, so "10 s minus ~4 s" is no fixed figure)
        assert_audio(recorder, calls[0], expect_s=recorded_span(ami, linkedid, since), tolerance_s=1.5)


@pytest.mark.parametrize("how", ["term", "kill"])
def test_daemon_restart_mid_call_records_exactly_once(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                      recorder: Recorder, tmp_path: Path, how: str) -> None:
    caller, since = new_caller(), len(ami.events)
    sipp = SippCall(tmp_path, asterisk.sip_port, "8001", hangup_after_s=16, from_user=caller).start()
    try:
        linkedid = linkedid_of(ami, caller, since)
        _mixmonitor_started(ami, linkedid, since)
        time.sleep(2)
        recorder.restart(how)
    finally:
        result = sipp.wait(timeout=40)
    assert result.ok, result.errors
    row, recs = wait_shipped(recorder, linkedid)
    time.sleep(3)  # a duplicate shipment would show up here
    recs = [r for r in recorder.catalog.recordings(row["call_id"]) if r["kind"] == "call"]
    assert len(recs) == 1, recs
    assert_audio(recorder, recs[0], expect_s=16, tolerance_s=6)
    stored = [p for p in audio_files(recorder.hot_dir) if row["call_id"] in str(p)]
    assert stored == [stored_file(recorder, recs[0])]


def test_ami_connection_dropped_and_restored_recording_lands(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                             recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    sipp = SippCall(tmp_path, asterisk.sip_port, "8001", hangup_after_s=14, from_user=caller).start()
    try:
        linkedid = linkedid_of(ami, caller, since)
        _mixmonitor_started(ami, linkedid, since)
        asterisk.drop_ami_connections(keep_local_ports=(ami.local_port,))
        deadline = time.monotonic() + 15
        while asterisk.ami_sessions(asterisk.daemon_ami_user) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert asterisk.ami_sessions(asterisk.daemon_ami_user) > 0, "recorder did not reconnect to AMI"
    finally:
        result = sipp.wait(timeout=40)
    assert result.ok, result.errors
    _, recs = wait_shipped(recorder, linkedid)
    calls = [r for r in recs if r["kind"] == "call"]
    assert len(calls) == 1
    assert_audio(recorder, calls[0], expect_s=14, tolerance_s=6)
    assert recorder.process.running


def test_daemon_down_call_continues_unrecorded_with_reason(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                           recorder: Recorder, tmp_path: Path) -> None:
    recorder.process.kill()
    caller, since = new_caller(), len(ami.events)
    before = audio_files(asterisk.monitor_dir)
    result = call(asterisk, tmp_path, "8002", hangup_after_s=5, from_user=caller)
    assert result.ok and result.elapsed_s > 4.5, result.errors
    cdr = cdr_of(ami, linkedid_of(ami, caller, since))
    assert cdr["UserField"] == "pbx-recorder:unavailable"
    assert audio_files(asterisk.monitor_dir) == before


HOSTILE = [
    ("..%2F..%2F..%2Fetc%2Fpasswd", "../../../etc/passwd"),
    ("1%0d%0aAction%3a%20Originate%0d%0aChannel%3a%20Local/1%40x",
     "a\\r\\nAction: Setvar\\r\\nVariable: PWNED"),
    ("6" * 300, "Z" * 10_000),
    ("4930%E6%9D%8E", "Zoë 李 \U0001F600 \u202e"),
    ("", ""),
    ("%2e%2e%5c%2e%2e%5cwin.ini", "..\\..\\boot.ini"),
]


def test_hostile_caller_ids_are_plain_data(asterisk: PrivateAsterisk, ami: AmiProbe, recorder: Recorder,
                                           tmp_path: Path) -> None:
    since = len(ami.events)
    # the host's folders and, for a chrooted Asterisk 22, the same folders as it sees them
    watched = sorted({Path("/etc"), asterisk.workdir.parent, asterisk.seen_by_pbx("/etc"),
                      asterisk.seen_by_pbx(asterisk.workdir.parent)})
    before = [set(os.listdir(folder)) for folder in watched]
    for user, display in HOSTILE:
        result = SippCall(tmp_path, asterisk.sip_port, "8001", hangup_after_s=6, from_user=user,
                          from_display=display).start().wait()
        assert result.ok, (user[:40], result.errors)
    assert recorder.process.running
    events = [e for _, e in ami.events[since:]]
    linkedids = {e["Linkedid"] for e in events if e.get("Event") == "Newchannel"}
    assert len(linkedids) == len(HOSTILE)
    for linkedid in linkedids:
        _, recs = wait_shipped(recorder, linkedid)
        for rec in recs:
            path = stored_file(recorder, rec)  # asserts it resolves inside the hot tier
            assert ".." not in rec["storage_key"] and "\n" not in rec["storage_key"]
            assert path.stat().st_size > 44
    for p in audio_files(asterisk.monitor_dir):
        assert p.resolve().is_relative_to(asterisk.monitor_dir.resolve())
    assert not any(e.get("Variable") == "PWNED" for e in events)
    # The injected "Channel: Local/1@x" line does appear inside events that carry the caller
    # ID (Asterisk 16 copies the CRLF through); what must never happen is a channel being
    # created from it or an Originate being run.
    assert not any(e.get("Event") == "OriginateResponse" for e in events)
    assert not any(e.get("Event") == "Newchannel" and str(e.get("Channel", "")).startswith("Local/")
                   for e in events)
    # nothing the calls could have put there: no recording, no marker, no name from a payload
    # (other processes on the host may create unrelated files in /tmp meanwhile)
    new = [sorted(set(os.listdir(folder)) - seen) for folder, seen in zip(watched, before, strict=True)]
    escaped = [name for names in new for name in names
               if name.endswith((".wav", ".raw", ".gsm", ".closed", ".json"))
               or any(part in name for part in ("passwd", "win.ini", "boot.ini", "PWNED", "4930", "666"))]
    assert not escaped, new
    row = wait_call(recorder, sorted(linkedids)[0])
    assert row["call_id"]
