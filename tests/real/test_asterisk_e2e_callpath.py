"""End-to-end, issue 10: the call path under faults (real Asterisk + sipp + ``pbx-recorder run``).

Version-neutral: nothing here depends on a 16-only behaviour (MixMonitorStop after a
StopMixMonitor, Cdr/Hangup events and CoreStatus are the same on 16 and 22).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ami_gate import gated_recorder
from call_helpers import cdr_of, linkedid_of, new_caller, spare_asterisk
from recorder_checks import Recorder, audio_files, catalog_reader, daemon_catalog_url, wait_call, wait_shipped

from pbx_recorder.core.naming import boot_of_call_id
from pbx_recorder.testbed import PrivateAsterisk, SippCall
from pbx_recorder.testbed.ami_probe import AmiProbe
from pbx_recorder.testbed.installs import install_for
from pbx_recorder.testbed.recorder import RecorderProcess, write_recorder_config

pytestmark = [pytest.mark.real, pytest.mark.timeout(240)]


def _mixmonitor_start(ami: AmiProbe, linkedid: str, since: int, timeout: float = 15.0) -> dict[str, str]:
    return ami.wait_event(lambda e: e.get("Event") == "MixMonitorStart" and e.get("Linkedid") == linkedid,
                          timeout=timeout, since=since)


def _ours(root: Path, call_id: str) -> set[Path]:
    return {p for p in audio_files(root) if call_id in p.name}


def test_recorder_killed_mid_dialogue_stops_the_consent_recording_in_the_dialplan(
        asterisk: PrivateAsterisk, ami: AmiProbe, recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    sipp = SippCall(tmp_path, asterisk.sip_port, "8002", hangup_after_s=16, from_user=caller).start()
    try:
        linkedid = linkedid_of(ami, caller, since)
        _mixmonitor_start(ami, linkedid, since)  # the consent-evidence segment, before the question
        time.sleep(1.0)  # the question is playing
        recorder.process.kill()
        killed_at = time.monotonic()
        # the snippet's fail direction stops that recording itself: the recorder is dead
        ami.wait_event(lambda e: e.get("Event") == "MixMonitorStop" and e.get("Linkedid") == linkedid,
                       timeout=5, since=since)
        assert time.monotonic() - killed_at < 5
        recorder.process.start()
    finally:
        result = sipp.wait(timeout=40)
    assert result.ok and result.elapsed_s > 15, result.errors  # the call went on, unrecorded
    assert cdr_of(ami, linkedid)["UserField"] == "pbx-recorder:unavailable"
    row = wait_call(recorder, linkedid)
    assert row["consent_decision"] == "interrupted", row  # the true reason, not "hangup"
    assert row["record_decision"] != "record"
    assert "consent_interrupted" in json.loads(row["flags"])
    deadline = time.monotonic() + 20
    while _ours(asterisk.monitor_dir, row["call_id"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _ours(asterisk.monitor_dir, row["call_id"]), "the consent segment was not discarded"
    assert not _ours(recorder.workdir, row["call_id"])


def test_digit_pressed_before_the_question_is_not_consent(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                          recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    result = SippCall(tmp_path, asterisk.sip_port, "8002", hangup_after_s=9, from_user=caller,
                      dtmf=[(150, "1")]).start().wait()
    assert result.ok, result.errors
    row = wait_call(recorder, linkedid_of(ami, caller, since))
    assert row["consent_decision"] != "granted" and row["record_decision"] != "record", row
    evidence = recorder.catalog.consent(row)
    for entry in evidence.get("digit_log", []):  # if the early digit reached the dialogue at all
        assert entry["counted"] is False and entry.get("prompt_offset_s", 0.0) < 0.5, evidence
    recs = recorder.catalog.recordings(row["call_id"])
    assert not [r for r in recs if r["state"] in ("stored", "verified")]


def test_answer_during_the_question_counts_and_is_timed(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                        recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    result = SippCall(tmp_path, asterisk.sip_port, "8002", hangup_after_s=10, from_user=caller,
                      dtmf=[(2500, "1")]).start().wait()
    assert result.ok, result.errors
    row, recs = wait_shipped(recorder, linkedid_of(ami, caller, since), count=2)
    assert row["consent_decision"] == "granted"
    (entry,) = [e for e in recorder.catalog.consent(row)["digit_log"] if e["counted"]]
    assert entry["digit"] == "1"
    assert ("prompt_offset_s" in entry and entry["prompt_offset_s"] >= 0.5) or "after_prompt_s" in entry
    consent = next(r for r in recs if r["kind"] == "consent")
    assert "cdr_missing" not in json.loads(consent["flags"]), consent["flags"]  # linked to the CDR


def test_read_only_spool_keeps_the_file_in_the_catalog_and_recovers_after_a_restart(
        asterisk: PrivateAsterisk, ami: AmiProbe, recorder: Recorder, tmp_path: Path) -> None:
    spool = recorder.workdir / "spool"
    with _unwritable(spool):
        caller, since = new_caller(), len(ami.events)
        result = SippCall(tmp_path, asterisk.sip_port, "8001", hangup_after_s=6,
                          from_user=caller).start().wait()
        assert result.ok, result.errors
        row = wait_call(recorder, linkedid_of(ami, caller, since))

        def failed() -> list[dict[str, object]]:
            return [r for r in recorder.catalog.recordings(str(row["call_id"]))
                    if "spool_failed" in str(r["flags"])]
        assert recorder.catalog.wait_for(failed, 30), recorder.process.log_tail()
        assert _ours(asterisk.monitor_dir, row["call_id"])  # still where MixMonitor wrote it
        recorder.process.kill()  # the retry in memory is lost with the process
    recorder.process.start()  # start-up recovery looks in the monitor folder
    _, recs = wait_shipped(recorder, row["linkedid"])
    assert "orphan_recovered" in json.loads(recs[0]["flags"]) or recs[0]["state"] in ("stored", "verified")
    assert not _ours(asterisk.monitor_dir, row["call_id"])


@contextlib.contextmanager
def _unwritable(folder: Path) -> Iterator[None]:
    """Make ``folder`` unwritable even for root: the immutable attribute where the file system
    has it, else a plain file in its place (every write below it fails, not with ENOSPC)."""
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode == 0:
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        return
    aside = folder.with_name(folder.name + ".aside")
    folder.rename(aside)
    folder.write_bytes(b"")
    try:
        yield
    finally:
        folder.unlink()
        aside.rename(folder)


@pytest.fixture
def own_asterisk(asterisk_version: str, prompts_dir: Path) -> Iterator[PrivateAsterisk]:
    """A private Asterisk of its own (each version under test): this test restarts it."""
    with spare_asterisk(install_for(asterisk_version), prompts_dir, "pbxrec-rs-") as pbx:
        yield pbx


def _wait_restarted(pbx: PrivateAsterisk, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    time.sleep(1.0)
    while time.monotonic() < deadline:
        if "fully booted" in pbx.rx("core waitfullybooted", timeout=5).lower():
            return
        time.sleep(0.5)
    raise AssertionError(f"asterisk did not come back after core restart:\n{pbx.log_tail()}")


def test_pbx_restart_call_ids_stay_unique_and_the_cut_recording_is_flagged(
        own_asterisk: PrivateAsterisk, prompts_dir: Path, tmp_path: Path) -> None:
    pbx = own_asterisk
    config = write_recorder_config(tmp_path / "recorder", pbx, prompts_dir,
                                   catalog_url=daemon_catalog_url(tmp_path / "recorder"))
    process = RecorderProcess(config, pbx, tmp_path / "recorder.log").start()
    catalog = catalog_reader(config)
    try:
        first = SippCall(tmp_path, pbx.sip_port, "8001", hangup_after_s=30, from_user=new_caller()).start()
        deadline = time.monotonic() + 20
        while not list(pbx.monitor_dir.glob("*.wav")) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(6)  # some audio after the notice
        pbx.rx("core restart now")
        _wait_restarted(pbx)
        first.stop()
        second = SippCall(tmp_path, pbx.sip_port, "8001", hangup_after_s=8, from_user=new_caller()).start()
        assert second.wait(timeout=40).ok

        def both() -> list[dict[str, object]] | None:
            rows = catalog.query("SELECT * FROM calls WHERE status != '' AND status != 'live' "
                                 "ORDER BY started_at")
            return rows if len(rows) >= 2 else None
        rows = catalog.wait_for(both, 60)
        assert rows, process.log_tail(80)
        old, new = rows[0], rows[1]
        assert old["call_id"] != new["call_id"]
        assert boot_of_call_id(str(old["call_id"])) and boot_of_call_id(str(new["call_id"]))
        assert boot_of_call_id(str(old["call_id"])) != boot_of_call_id(str(new["call_id"]))
        assert old["status"] == "answered" and old["record_decision"] == "record"

        def cut() -> list[dict[str, object]]:
            recs = catalog.recordings(str(old["call_id"]))
            return [r for r in recs if r["state"] in ("stored", "verified")]
        recs = catalog.wait_for(cut, 60)
        assert recs, process.log_tail(80)
        assert "cut" in json.loads(str(recs[0]["flags"])), recs[0]["flags"]
        assert catalog.query("SELECT started_at FROM calls WHERE call_id = ?", (old["call_id"],))[0][
            "started_at"] == old["started_at"]
    finally:
        process.terminate()


def test_call_during_an_ami_outage_is_recorded_in_band_and_catalogued(
        asterisk: PrivateAsterisk, ami: AmiProbe, prompts_dir: Path, tmp_path: Path) -> None:
    """The AMI link is down, FastAGI answers: the recording starts in band (EXEC MixMonitor on
    the caller's AGI socket, no AMI needed), and once the link is back the call and its file
    are in the catalog: recorded, never a "missing" recording or a call that says record
    without one.  (A start that fails still says not_recorded and why:
    tests/unit/test_call_faults.py, tests/peers/test_daemon.py.)"""
    with gated_recorder(asterisk, prompts_dir, tmp_path) as (recorder, gate):
        gate.close_link()  # the AMI link is down; FastAGI still answers
        caller, since = new_caller(), len(ami.events)
        result = SippCall(tmp_path, asterisk.sip_port, "8001", hangup_after_s=8,
                          from_user=caller).start().wait()
        assert result.ok and result.elapsed_s > 7, result.errors  # the call went on
        linkedid = linkedid_of(ami, caller, since)
        assert ami.find(lambda e: e.get("Event") == "MixMonitorStart" and e.get("Linkedid") == linkedid)
        assert cdr_of(ami, linkedid)["UserField"] != "pbx-recorder:unavailable"  # PBXREC_RESULT=record
        gate.open()  # the link comes back: resync finds the call gone, the file is taken in
        row, recs = wait_shipped(recorder, linkedid, timeout=90)
        assert row["record_decision"] == "record", row
        assert all(r["state"] != "missing" for r in recorder.catalog.recordings(row["call_id"]))
        assert recs[0]["duration_s"] is None or recs[0]["duration_s"] > 3, recs[0]


def test_recording_of_a_caller_who_sends_no_audio_is_flagged_silent(
        asterisk: PrivateAsterisk, ami: AmiProbe, recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    result = SippCall(tmp_path, asterisk.sip_port, "8001", hangup_after_s=7, from_user=caller,
                      mute=True).start().wait()  # no RTP at all from the caller
    assert result.ok, result.errors
    row, recs = wait_shipped(recorder, linkedid_of(ami, caller, since))
    flags = json.loads(recs[0]["flags"])
    assert "silent" in flags, flags
    if recs[0]["duration_s"] is not None and recs[0]["duration_s"] < 1.0:  # 16 writes no frames at all
        assert "short" in flags, flags
