"""End-to-end on FreeSWITCH: load, the recorder killed mid-call, FreeSWITCH crashing mid-call,
the ESL connection dropped, hostile caller IDs.

Real FreeSWITCH + sipp + ``pbx-recorder run``.  FreeSWITCH is restarted in one test only (the
session's instance keeps its ports, so the next tests reuse it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from fs_helpers import (
    call,
    hangup_complete,
    new_caller,
    recorded_span,
    uuid_of,
    wait_fs_call,
    wait_fs_shipped,
)
from recorder_checks import Recorder, assert_audio, audio_files, stored_file

from pbx_recorder.testbed import audio_stats
from pbx_recorder.testbed.freeswitch import PrivateFreeSWITCH
from pbx_recorder.testbed.freeswitch_probe import FsProbe
from pbx_recorder.testbed.freeswitch_sipp import FsSippCall

pytestmark = [pytest.mark.real, pytest.mark.timeout(240)]


def _recording_started(esl: FsProbe, uuid: str, since: int, timeout: float = 15.0) -> float:
    event = esl.wait_event(lambda e: e.get("Event-Name") == "RECORD_START" and e.get("Unique-ID") == uuid,
                           timeout=timeout, since=since)
    return next(t for t, e in esl.find(lambda e: e is event))


def test_twenty_concurrent_calls_all_recorded(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                              fs_recorder: Recorder, tmp_path: Path) -> None:
    prefix, since = new_caller(), esl.mark()
    result = FsSippCall(tmp_path, freeswitch.sip_port, "8001", hangup_after_s=10,
                        from_user=f"{prefix}x[call_number]", calls=20, concurrent=20, rate_per_s=20,
                        timeout_s=90).start().wait()
    assert result.ok, result.errors
    uuids = {e["Unique-ID"] for _, e in esl.events[since:] if e.get("Event-Name") == "CHANNEL_CREATE"
             and e.get("Caller-Caller-ID-Number", "").startswith(prefix + "x")}
    assert len(uuids) == 20
    for uuid in sorted(uuids):
        _, recs = wait_fs_shipped(fs_recorder, uuid, timeout=90)
        calls = [r for r in recs if r["kind"] == "call"]
        assert len(calls) == 1
        hangup_complete(esl, uuid)
        # the whole recorded stretch (after the notice, to the hang-up) is in the file
        assert_audio(fs_recorder, calls[0], expect_s=recorded_span(esl, uuid), tolerance_s=1.5)


def test_recorder_sigkill_mid_call_records_and_ships_exactly_once(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                                  fs_recorder: Recorder,
                                                                  tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    sipp = FsSippCall(tmp_path, freeswitch.sip_port, "8001", hangup_after_s=16, from_user=caller).start()
    try:
        uuid = uuid_of(esl, caller, since)
        _recording_started(esl, uuid, since)
        time.sleep(2)
        fs_recorder.restart("kill")  # SIGKILL, then a new daemon: resync adopts the running recording
    finally:
        result = sipp.wait(timeout=40)
    assert result.ok, result.errors
    assert len(esl.find(lambda e: e.get("Event-Name") == "RECORD_START" and e.get("Unique-ID") == uuid)) == 1
    row, _ = wait_fs_shipped(fs_recorder, uuid)
    time.sleep(3)  # a duplicate shipment would show up here
    recs = [r for r in fs_recorder.catalog.recordings(row["call_id"]) if r["kind"] == "call"]
    assert len(recs) == 1, recs
    assert_audio(fs_recorder, recs[0], expect_s=16, tolerance_s=6)
    stored = [p for p in audio_files(fs_recorder.hot_dir) if row["call_id"] in str(p)]
    assert stored == [stored_file(fs_recorder, recs[0])]


def test_freeswitch_crash_mid_call_ships_the_partial_file_flagged(freeswitch: PrivateFreeSWITCH,
                                                                  esl: FsProbe, fs_recorder: Recorder,
                                                                  tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    sipp = FsSippCall(tmp_path, freeswitch.sip_port, "8001", hangup_after_s=30, from_user=caller,
                      timeout_s=40).start()
    try:
        uuid = uuid_of(esl, caller, since)
        t_rec = _recording_started(esl, uuid, since)
        time.sleep(5)
        t_crash = time.monotonic()
        freeswitch.restart(sig=signal.SIGKILL)  # a crash, then the service manager starts it again
    finally:
        sipp.stop()  # the caller's dialog died with FreeSWITCH
    row, recs = wait_fs_shipped(fs_recorder, uuid, timeout=90)
    calls = [r for r in recs if r["kind"] == "call"]
    assert len(calls) == 1, recs
    flags = set(json.loads(calls[0]["flags"])) | set(json.loads(row["flags"]))
    # FreeSWITCH died before it wrote the WAV's sizes: the file is kept as FreeSWITCH left it (its
    # hash is what was produced), flagged; the audio it holds is read with --ignore-length
    assert {"header_repaired", "cdr_missing"} <= flags, flags
    readable = tmp_path / "partial.wav"
    subprocess.run(["sox", "--ignore-length", str(stored_file(fs_recorder, calls[0])), str(readable)],
                   check=True, capture_output=True, timeout=30)
    stats = audio_stats(readable)
    assert stats.rms > 0.01 and 0.5 < stats.duration_s <= (t_crash - t_rec) + 1.5, (stats, t_crash - t_rec)
    # the daemon is back on the restarted FreeSWITCH: a new call is recorded
    assert fs_recorder.process.running
    probe = freeswitch.probe()  # the test's probe died with the old process; every event here is new
    try:
        caller2 = new_caller()
        assert call(freeswitch, tmp_path, "8008", hangup_after_s=6, from_user=caller2).ok
        _, recs2 = wait_fs_shipped(fs_recorder, uuid_of(probe, caller2))
        assert [r["kind"] for r in recs2] == ["call"]
    finally:
        probe.close()


def test_esl_dropped_and_restored_recording_lands(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                  fs_recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    sipp = FsSippCall(tmp_path, freeswitch.sip_port, "8001", hangup_after_s=14, from_user=caller).start()
    try:
        uuid = uuid_of(esl, caller, since)
        _recording_started(esl, uuid, since)
        freeswitch.drop_esl_connections(keep_local_ports=(esl.local_port,))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if freeswitch.esl_clients(exclude_local_ports=(esl.local_port,)) > 0:
                break
            time.sleep(0.2)
        assert freeswitch.esl_clients(exclude_local_ports=(esl.local_port,)) > 0, "no ESL reconnect"
    finally:
        result = sipp.wait(timeout=40)
    assert result.ok, result.errors
    _, recs = wait_fs_shipped(fs_recorder, uuid)
    calls = [r for r in recs if r["kind"] == "call"]
    assert len(calls) == 1
    assert_audio(fs_recorder, calls[0], expect_s=14, tolerance_s=6)
    assert len(esl.find(lambda e: e.get("Event-Name") == "RECORD_START" and e.get("Unique-ID") == uuid)) == 1
    assert fs_recorder.process.running


HOSTILE = [
    ("..%2F..%2F..%2Fetc%2Fpasswd", "../../../etc/passwd"),
    ("1%0d%0aEvent-Name%3a%20CUSTOM%0d%0aContent-Length%3a%200", "a\\r\\napi uuid_kill all"),
    ("6" * 300, "Z" * 2000),
    ("4930%E6%9D%8E", "Zoë 李 \U0001F600 \u202e"),
    ("", ""),
    ("%2e%2e%5c%2e%2e%5cwin.ini", "..\\..\\boot.ini"),
]


def test_hostile_caller_ids_are_plain_data(freeswitch: PrivateFreeSWITCH, esl: FsProbe, fs_recorder: Recorder,
                                           tmp_path: Path) -> None:
    since = esl.mark()
    before = set(os.listdir("/etc"))
    for user, display in HOSTILE:
        result = FsSippCall(tmp_path, freeswitch.sip_port, "8001", hangup_after_s=6, from_user=user,
                            from_display=display).start().wait()
        assert result.ok, (user[:40], result.errors)
    assert fs_recorder.process.running and freeswitch.running
    created = [e for _, e in esl.events[since:] if e.get("Event-Name") == "CHANNEL_CREATE"
               and e.get("Call-Direction") == "inbound"]
    assert len(created) == len(HOSTILE)
    for event in created:
        uuid = event["Unique-ID"]
        row, recs = wait_fs_shipped(fs_recorder, uuid)
        for rec in recs:
            path = stored_file(fs_recorder, rec)  # asserts it resolves inside the hot tier
            assert ".." not in rec["storage_key"] and "\n" not in rec["storage_key"]
            assert path.stat().st_size > 44
        assert hangup_complete(esl, uuid)["Hangup-Cause"] == "NORMAL_CLEARING"
    for p in audio_files(freeswitch.recordings_dir):
        assert p.resolve().is_relative_to(freeswitch.recordings_dir.resolve())
    assert not esl.find(lambda e: e.get("Event-Name") == "CUSTOM" and not e.get("Event-Subclass"))
    assert set(os.listdir("/etc")) == before
    for root in (freeswitch.workdir, fs_recorder.workdir):  # no path built from a caller ID
        names = [p.name for p in root.rglob("*")]
        assert not [n for n in names if "passwd" in n or ".ini" in n or "\n" in n or "\r" in n], names
    assert wait_fs_call(fs_recorder, created[0]["Unique-ID"])["call_id"]
