"""End-to-end on FreeSWITCH: a mod_callcenter queue call recorded on bridge, and PCI pause
(``calls pause|resume`` -> ``uuid_record mask|unmask``).

Real FreeSWITCH + sipp (caller UAC and agent UAS, continuous RTP) + ``pbx-recorder run``.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from fs_helpers import (
    AGENT_CALLS,
    agent_bridged,
    assert_agent_calls,
    hangup_complete,
    new_caller,
    record_started,
    recorded_span,
    uuid_of,
    wait_fs_shipped,
)
from recorder_checks import Recorder, assert_audio, stored_file

from pbx_recorder.testbed.audio_stats import AudioStats, audio_stats
from pbx_recorder.testbed.freeswitch import PrivateFreeSWITCH
from pbx_recorder.testbed.freeswitch_probe import FsProbe
from pbx_recorder.testbed.freeswitch_sipp import FsSippCall, FsSippUas
from pbx_recorder.testbed.recorder import recorder_command

pytestmark = [pytest.mark.real, pytest.mark.timeout(180)]


def test_queue_call_recorded_once_agent_is_bridged(freeswitch: PrivateFreeSWITCH, fs_agent_port: int,
                                                   esl: FsProbe, fs_recorder: Recorder,
                                                   tmp_path: Path) -> None:
    caller, since = new_caller(), esl.mark()
    agent = FsSippUas(tmp_path, fs_agent_port, calls=AGENT_CALLS, timeout_s=90).start()
    try:
        sipp = FsSippCall(tmp_path, freeswitch.sip_port, "8004", hangup_after_s=16, from_user=caller).start()
        member = uuid_of(esl, caller, since)
        t_bridge, bridged = agent_bridged(esl, member, since)
        t_rec, _ = record_started(esl, since)
        result = sipp.wait()
    finally:
        agent_end = agent.finish(timeout=20)
    assert result.ok, result.errors
    assert_agent_calls(agent, agent_end, esl, member, answered=1)
    assert t_rec >= t_bridge - 0.5, (t_rec, t_bridge)  # start_on: bridge, not on answer
    row, recs = wait_fs_shipped(fs_recorder, member)
    assert row["queue"] in ("support", "support@default"), row["queue"]
    assert row["agent"], row  # from CC-Agent
    calls = [r for r in recs if r["kind"] == "call"]
    assert len(calls) == 1
    assert hangup_complete(esl, member)["variable_PBXREC_RESULT"] == "record"
    assert bridged["CC-Agent"] == "agent1@default"
    assert_audio(fs_recorder, calls[0], expect_s=16 - (t_bridge - _answered_at(esl, member)), tolerance_s=4)


def _answered_at(esl: FsProbe, uuid: str) -> float:
    return next(t for t, e in esl.find(lambda e: e.get("Event-Name") == "CHANNEL_ANSWER"
                                       and e.get("Unique-ID") == uuid))


CALL_S = 90.0  # an upper bound: the test hangs the call up (uuid_kill) AFTER_RESUME_S after resume
PAUSED_FOR_S = 5.0
AFTER_RESUME_S = 4.0
EDGE_S = 0.5


def _cli(recorder: Recorder, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*recorder_command(), "--config", str(recorder.config_path), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def _segment(path: Path, start: float, end: float, workdir: Path) -> AudioStats:
    out = workdir / f"seg-{start:.2f}-{end:.2f}.wav"
    subprocess.run(["sox", str(path), str(out), "trim", f"{start:.3f}", f"={end:.3f}"],
                   capture_output=True, timeout=30, check=True)
    return audio_stats(out)


def _live_call_id(recorder: Recorder, uuid: str, timeout: float = 15.0) -> str:
    def probe() -> str:
        for call_id, snap in recorder.catalog.live_calls():
            recs = snap.get("recordings", [])
            if call_id.endswith(uuid) and any(r.get("state") == "recording" for r in recs):
                return call_id
        return ""
    call_id = recorder.catalog.wait_for(probe, timeout)
    assert call_id, recorder.catalog.query("SELECT * FROM live_calls")
    return str(call_id)


def _recording(esl: FsProbe, recorder: Recorder, caller: str, since: int) -> tuple[str, dict, float, str]:
    """(the caller's leg, its RECORD_START, that event's time, the live call's id), 2 s into the
    recording."""
    uuid = uuid_of(esl, caller, since)
    _, started = record_started(esl, since)
    t_start = int(started["Event-Date-Timestamp"]) / 1e6
    call_id = _live_call_id(recorder, uuid)
    time.sleep(max(0.0, t_start + 2.0 - time.time()))
    return uuid, started, t_start, call_id


@pytest.mark.parametrize("did", ["8001", "8008"])  # notify: uuid_record; none: started by the dialplan
def test_pci_pause_masks_and_keeps_the_timeline(freeswitch: PrivateFreeSWITCH, esl: FsProbe,
                                                fs_recorder: Recorder, tmp_path: Path, did: str) -> None:
    """Times are wall-clock on both sides (FreeSWITCH's ``Event-Date-Timestamp`` and ``time.time``
    on the same host), so a late event on the test's ESL connection cannot shift the segments;
    each CLI is bracketed: the mask is on from pause's return to resume's start at least, and
    the audio runs before pause's start and after resume's return, however long each CLI takes."""
    caller, since = new_caller(), esl.mark()
    sipp = FsSippCall(tmp_path, freeswitch.sip_port, did, hangup_after_s=CALL_S, from_user=caller).start()
    try:
        uuid, started, t_start, call_id = _recording(esl, fs_recorder, caller, since)
        t_pause_begin = time.time()
        paused = _cli(fs_recorder, "calls", "pause", call_id)
        assert paused.returncode == 0, (paused.stdout, paused.stderr)
        t_pause = time.time()
        time.sleep(PAUSED_FOR_S)
        t_resume_begin = time.time()
        resumed = _cli(fs_recorder, "calls", "resume", call_id)
        assert resumed.returncode == 0, (resumed.stdout, resumed.stderr)
        t_resume = time.time()
        time.sleep(AFTER_RESUME_S)
        assert esl.api(f"uuid_kill {uuid}").startswith("+OK")
        result = sipp.wait()
    finally:
        sipp.stop()
    assert result.ok, result.errors
    row, recs = wait_fs_shipped(fs_recorder, uuid)
    assert row["call_id"] == call_id
    main = [r for r in recs if r["kind"] == "call"]
    assert len(main) == 1
    path = stored_file(fs_recorder, main[0])
    whole = audio_stats(path)
    span = recorded_span(esl, uuid)
    assert abs(whole.duration_s - span) <= 1.5, (whole, span)  # the timeline is kept
    during = _segment(path, t_pause - t_start + EDGE_S, t_resume_begin - t_start - EDGE_S, tmp_path)
    assert during.max_amplitude == 0.0, during
    assert _segment(path, EDGE_S, t_pause_begin - t_start - EDGE_S, tmp_path).rms > 0.01
    assert _segment(path, t_resume - t_start + EDGE_S, whole.duration_s - EDGE_S, tmp_path).rms > 0.01
    manifest = json.loads(main[0]["manifest"])
    assert len(manifest["pauses"]) == 1, manifest
    audit = fs_recorder.catalog.query("SELECT action, detail FROM audit_log WHERE target = ? AND action IN "
                                      "('pause', 'resume') ORDER BY at", (call_id,))
    assert [a["action"] for a in audit] == ["pause", "resume"], audit
    # the command waited for the daemon to record its pbxrec::mask event (cli/pause_confirm.py)
    assert [json.loads(a["detail"])["recorder"] for a in audit] == ["confirmed", "confirmed"], audit
    assert started["Record-File-Path"]


PAUSE_MAX_S = 10.0


@pytest.mark.recorder_config(pause_max_s=PAUSE_MAX_S)  # (the product's default is 300 s)
def test_a_mask_nobody_lifts_is_lifted_by_the_recorder_after_pause_max_s(
        freeswitch: PrivateFreeSWITCH, esl: FsProbe, fs_recorder: Recorder, tmp_path: Path) -> None:
    """``calls pause`` and no resume: after ``pbx.pause_max_s`` the daemon sends ``uuid_record
    unmask`` itself; silence for that stretch only, sound after, the pause (closed when the
    unmask went out: FreeSWITCH sends no event for it) and ``pause_auto_resumed`` in the manifest."""
    caller, since = new_caller(), esl.mark()
    sipp = FsSippCall(tmp_path, freeswitch.sip_port, "8001", hangup_after_s=CALL_S, from_user=caller).start()
    try:
        uuid, _, t_start, call_id = _recording(esl, fs_recorder, caller, since)
        paused = _cli(fs_recorder, "calls", "pause", call_id)
        assert paused.returncode == 0, (paused.stdout, paused.stderr)
        t_pause = time.time()
        assert f"by itself after {PAUSE_MAX_S:g} s" in paused.stdout, paused.stdout
        time.sleep(PAUSE_MAX_S + 3.0 + AFTER_RESUME_S)  # nobody resumes
        assert esl.api(f"uuid_kill {uuid}").startswith("+OK")
        result = sipp.wait()
    finally:
        sipp.stop()
    assert result.ok, result.errors
    _, recs = wait_fs_shipped(fs_recorder, uuid)
    (main,) = [r for r in recs if r["kind"] == "call"]
    manifest, flags = json.loads(main["manifest"]), json.loads(main["flags"] or "[]")
    assert len(manifest["pauses"]) == 1 and "pause_auto_resumed" in flags, (manifest, flags)
    start, end = manifest["pauses"][0]
    assert PAUSE_MAX_S - 0.5 <= end - start <= PAUSE_MAX_S + 3.0, manifest  # the daemon's 1 s tick
    path = stored_file(fs_recorder, main)
    whole = audio_stats(path)
    assert _segment(path, t_pause - t_start + EDGE_S, end - t_start - EDGE_S, tmp_path).max_amplitude == 0.0
    assert _segment(path, end - t_start + EDGE_S, whole.duration_s - EDGE_S, tmp_path).rms > 0.01
