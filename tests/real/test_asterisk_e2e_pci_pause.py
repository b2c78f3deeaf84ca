"""End-to-end PCI pause: real Asterisk + sipp + the recorder daemon + ``pbx-recorder calls pause|resume``.

A notify-only call (DID 8001: notice, then Echo, so the recording hears the caller both ways)
with continuous caller audio.  While it is recorded, the real CLI pauses and resumes it.  The
stored file must keep the whole timeline, be digital silence in the paused stretch and sound
before and after it; the manifest keeps the pause interval and the audit log the actor.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from call_helpers import linkedid_of, new_caller
from recorder_checks import Recorder, stored_file, wait_shipped

from pbx_recorder.cli.authz import current_actor
from pbx_recorder.testbed import PrivateAsterisk, SippCall
from pbx_recorder.testbed.ami_probe import AmiProbe
from pbx_recorder.testbed.audio_stats import AudioStats, audio_stats
from pbx_recorder.testbed.recorder import recorder_command

pytestmark = [pytest.mark.real, pytest.mark.timeout(180)]

CALL_S = 25.0  # notice (~4 s) + ~21 s recorded: room for two CLI runs (3-4 s each on a loaded host)
PAUSE_AFTER_START_S = 2.0  # run `calls pause` this long after MixMonitorStart
PAUSED_FOR_S = 5.0
AMI_DELIVERY_S = 2.0  # an AMI event reaches the test's probe this soon after the action's reply
EDGE_S = 0.5  # margin at each edge of a stretch (event vs. file timing, CLI start-up)


def cli(recorder: Recorder, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*recorder_command(), "--config", str(recorder.config_path), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def segment(path: Path, start_s: float, end_s: float, workdir: Path) -> AudioStats:
    """Stats of ``path`` between ``start_s`` and ``end_s`` (sox trim into a temp file)."""
    assert end_s - start_s > 0.5, (start_s, end_s)
    out = workdir / f"seg-{start_s:.2f}-{end_s:.2f}.wav"
    subprocess.run(["sox", str(path), str(out), "trim", f"{start_s:.3f}", f"={end_s:.3f}"],
                   capture_output=True, text=True, timeout=30, check=True)
    stats = audio_stats(out)
    assert abs(stats.duration_s - (end_s - start_s)) < 0.05, (stats, start_s, end_s)
    return stats


def live_call_id(recorder: Recorder, linkedid: str, channel: str, timeout: float = 5.0) -> str:
    """The id of the live call ``linkedid`` once the daemon's snapshot has it recording on ``channel``."""
    def probe() -> str:
        for call_id, snap in recorder.catalog.live_calls():
            recs = snap.get("recordings", [])
            if snap.get("linkedid") == linkedid and any(
                    r.get("state") == "recording" and r.get("channel") == channel for r in recs):
                return call_id
        return ""
    call_id = recorder.catalog.wait_for(probe, timeout)
    assert call_id, (linkedid, recorder.catalog.query("SELECT * FROM live_calls"))
    return str(call_id)


def mute_events(ami: AmiProbe, channel: str, since: float) -> list[tuple[float, dict[str, str]]]:
    return [(t, e) for t, e in ami.find(lambda e: e.get("Event") == "MixMonitorMute"
                                        and e.get("Channel") == channel) if t >= since]


def pause_stretch(ami: AmiProbe, channel: str, since: float,
                  t_start: float) -> tuple[float, float, list[tuple[float, dict[str, str]]]]:
    """The one mute and unmute of ``channel`` seen since ``since``: their times from ``t_start``
    (the recording's MixMonitorStart), and the events."""
    mutes = mute_events(ami, channel, since)
    assert [e.get("State") for _, e in mutes] == ["1", "0"], mutes
    return mutes[0][0] - t_start, mutes[1][0] - t_start, mutes


def recording_started(ami: AmiProbe, recorder: Recorder, caller: str,
                      since: int) -> tuple[str, float, str, str]:
    """(linkedid, the MixMonitorStart's time, the recorded channel, the live call's id) of the
    caller's notify call (8001) once the recorder records it."""
    linkedid = linkedid_of(ami, caller, since)
    started = ami.wait_event(lambda e: e.get("Event") == "MixMonitorStart"
                             and e.get("Linkedid") == linkedid, timeout=15, since=since)
    t_start = next(t for t, e in ami.find(lambda e: e is started))
    # the calls row is written when the call ends: a live call is found in live_calls
    return linkedid, t_start, started["Channel"], live_call_id(recorder, linkedid, started["Channel"])


def test_pci_pause_writes_silence_and_keeps_the_timeline(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                         recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    t0 = time.monotonic()
    sipp = SippCall(tmp_path, asterisk.sip_port, "8001", hangup_after_s=CALL_S, from_user=caller).start()
    try:
        linkedid, t_start, channel, call_id = recording_started(ami, recorder, caller, since)
        time.sleep(max(0.0, t_start + PAUSE_AFTER_START_S - time.monotonic()))
        issued = time.monotonic()
        paused = cli(recorder, "calls", "pause", call_id)
        pause_ran = (issued, time.monotonic())
        assert paused.returncode == 0, (paused.stdout, paused.stderr)
        assert channel in paused.stdout, paused.stdout
        time.sleep(PAUSED_FOR_S)
        issued = time.monotonic()
        resumed = cli(recorder, "calls", "resume", call_id)
        resume_ran = (issued, time.monotonic())
        assert resumed.returncode == 0, (resumed.stdout, resumed.stderr)
        result = sipp.wait()
    finally:
        sipp.stop()
    assert result.ok and result.elapsed_s > CALL_S - 0.5, result.errors

    # AMI: Asterisk muted, then unmuted, the recorded channel (both directions)
    pause_from, pause_to, mutes = pause_stretch(ami, channel, t0, t_start)
    assert all(e.get("Direction") == "both" for _, e in mutes), mutes
    hangup = ami.wait_event(lambda e: e.get("Event") == "Hangup" and e.get("Channel") == channel,
                            timeout=10, since=since)
    t_hangup = next(t for t, e in ami.find(lambda e: e is hangup))
    recorded_s = t_hangup - t_start
    # each change comes from its command while that command ran (plus the probe's delivery): the
    # start-up of the CLI, seconds on a loaded host, only stretches the pause by as much
    for (at, _), (ran_from, ran_to) in zip(mutes, (pause_ran, resume_ran), strict=True):
        assert ran_from <= at <= ran_to + AMI_DELIVERY_S, (at, ran_from, ran_to)
    assert PAUSED_FOR_S - 0.5 < pause_to - pause_from, (pause_from, pause_to)

    row, recs = wait_shipped(recorder, linkedid)
    assert row["call_id"] == call_id, row
    assert row["consent_decision"] == "notified" and row["record_decision"] == "record"
    main = [r for r in recs if r["kind"] == "call"]
    assert len(main) == 1, recs
    path = stored_file(recorder, main[0])

    # the timeline is kept: the file lasts as long as the recorded part of the call
    whole = audio_stats(path)
    assert abs(whole.duration_s - recorded_s) <= 1.5, (whole, recorded_s)

    # digital silence while paused; sound before and after
    during = segment(path, pause_from + EDGE_S, pause_to - EDGE_S, tmp_path)
    assert during.max_amplitude == 0.0 and during.rms == 0.0, during
    before = segment(path, EDGE_S, pause_from - EDGE_S, tmp_path)
    after = segment(path, pause_to + EDGE_S, whole.duration_s - EDGE_S, tmp_path)
    assert before.rms > 0.01 and after.rms > 0.01, (before, after)

    # the manifest records the pause interval (epoch seconds, inside the recorded span)
    manifest = json.loads(main[0]["manifest"])
    assert len(manifest["pauses"]) == 1, manifest
    start, end = manifest["pauses"][0]
    assert manifest["recorded_from"] <= start < end <= manifest["recorded_to"], manifest
    assert abs((start - manifest["recorded_from"]) - pause_from) < 1.0, (manifest, pause_from)
    assert abs((end - start) - (pause_to - pause_from)) < 1.0, (manifest, pause_from, pause_to)

    # the audit log names who paused and resumed
    audit = recorder.catalog.query("SELECT actor, role, action, detail FROM audit_log WHERE target = ? "
                                   "AND action IN ('pause', 'resume') ORDER BY at", (call_id,))
    assert [a["action"] for a in audit] == ["pause", "resume"], audit
    assert all(a["actor"] == current_actor() and a["role"] for a in audit), audit
    assert all(json.loads(a["detail"])["channels"] == [channel] for a in audit), audit
    # the command waited for the daemon to record Asterisk's MixMonitorMute event (cli/pause_confirm.py)
    assert all(json.loads(a["detail"])["recorder"] == "confirmed" for a in audit), audit



def test_a_pause_beside_a_mixmonitor_of_the_pbxs_own_silences_the_recording_or_is_refused(
        asterisk: PrivateAsterisk, ami: AmiProbe, recorder: Recorder, tmp_path: Path) -> None:
    """DID 8007 starts a MixMonitor of the PBX's own before the snippet: the recorder's, started
    after the notice, is the channel's second.  Asterisk 22 mutes every MixMonitor: the pause
    silences the recorder's file.  Asterisk 16 mutes the first one only (measured: the PBX's own,
    and the card stretch stayed in the recorder's file while its manifest said paused): ``calls
    pause`` is refused, and a mute sent by another tool is no pause of the recording
    (flagged ``pause_missed``, its audio goes on).  (tests/unit/test_mixmonitor_order.py)"""
    caller, since, tag = new_caller(), len(ami.events), f"pbxown_{new_caller()}"
    sipp = SippCall(tmp_path, asterisk.sip_port, "8007", hangup_after_s=CALL_S, from_user=caller,
                    test_tag=tag).start()
    try:
        linkedid = linkedid_of(ami, caller, since)

        def mixmonitor_start(e: dict[str, str]) -> bool:
            return e.get("Event") == "MixMonitorStart" and e.get("Linkedid") == linkedid
        own = ami.wait_event(mixmonitor_start, timeout=15, since=since)  # the PBX's, at priority 1
        started = ami.wait_event(lambda e: mixmonitor_start(e) and e is not own, timeout=15, since=since)
        t_start = next(t for t, e in ami.find(lambda e: e is started))  # the recorder's, after the notice
        channel = started["Channel"]
        call_id = live_call_id(recorder, linkedid, channel)
        time.sleep(max(0.0, t_start + PAUSE_AFTER_START_S - time.monotonic()))
        paused = cli(recorder, "calls", "pause", call_id)
        if asterisk.major >= 21:
            assert paused.returncode == 0, (paused.stdout, paused.stderr)
        else:
            assert paused.returncode == 5, (paused.stdout, paused.stderr)
            assert "the PBX's own" in paused.stderr and "refused" in paused.stderr, paused.stderr
            assert not mute_events(ami, channel, t_start), "refused before any action"
            reply = ami.action({"Action": "MixMonitorMute", "Channel": channel, "Direction": "both",
                                "State": "1"})  # another tool's pause: it mutes the PBX's own
            assert reply.get("Response") == "Success", reply
        time.sleep(PAUSED_FOR_S)
        if asterisk.major >= 21:
            resumed = cli(recorder, "calls", "resume", call_id)
            assert resumed.returncode == 0, (resumed.stdout, resumed.stderr)
        else:
            ami.action({"Action": "MixMonitorMute", "Channel": channel, "Direction": "both", "State": "0"})
        result = sipp.wait()
    finally:
        sipp.stop()
    assert result.ok, result.errors
    pause_from, pause_to, _ = pause_stretch(ami, channel, t_start, t_start)

    _, recs = wait_shipped(recorder, linkedid)
    main = [r for r in recs if r["kind"] == "call"]
    assert len(main) == 1, recs
    path = stored_file(recorder, main[0])
    during = segment(path, pause_from + EDGE_S, pause_to - EDGE_S, tmp_path)
    manifest = json.loads(main[0]["manifest"])
    flags = json.loads(main[0]["flags"] or "[]")
    if asterisk.major >= 21:
        assert during.max_amplitude == 0.0 and during.rms == 0.0, during
        assert len(manifest["pauses"]) == 1 and "pause_missed" not in flags, (manifest, flags)
    else:  # the recording was never paused, and says so
        assert during.rms > 0.01, during
        assert manifest["pauses"] == [] and "pause_missed" in flags, (manifest, flags)
        audit = recorder.catalog.query("SELECT action, detail FROM audit_log WHERE target = ? "
                                       "AND action LIKE '%pause%'", (call_id,))
        assert [a["action"] for a in audit] == ["denied:calls.pause"], audit
        assert json.loads(audit[0]["detail"])["reason"] == "pbx_own_mixmonitor", audit


PAUSE_MAX_S = 10.0


@pytest.mark.recorder_config(pause_max_s=PAUSE_MAX_S)  # (the product's default is 300 s)
def test_a_pause_nobody_resumes_is_ended_by_the_recorder_after_pause_max_s(
        asterisk: PrivateAsterisk, ami: AmiProbe, recorder: Recorder, tmp_path: Path) -> None:
    """The agent pauses for the card number and never resumes (or ``calls pause`` was killed
    before its verdict): after ``pbx.pause_max_s`` the recorder unmutes the channel itself, the
    file has silence for that stretch only and sound after it, and the manifest keeps the pause
    and the flag ``pause_auto_resumed``."""
    caller, since = new_caller(), len(ami.events)
    sipp = SippCall(tmp_path, asterisk.sip_port, "8001", hangup_after_s=CALL_S, from_user=caller).start()
    try:
        linkedid, t_start, channel, call_id = recording_started(ami, recorder, caller, since)
        time.sleep(max(0.0, t_start + PAUSE_AFTER_START_S - time.monotonic()))
        paused = cli(recorder, "calls", "pause", call_id)
        assert paused.returncode == 0, (paused.stdout, paused.stderr)
        assert f"by itself after {PAUSE_MAX_S:g} s" in paused.stdout, paused.stdout
        result = sipp.wait()  # nobody resumes
    finally:
        sipp.stop()
    assert result.ok, result.errors
    pause_from, pause_to, _ = pause_stretch(ami, channel, t_start, t_start)
    # the daemon's tick (1 s) sends the unmute once the pause is 10 s old, by its own clock
    assert PAUSE_MAX_S - 0.5 <= pause_to - pause_from <= PAUSE_MAX_S + 3.0, (pause_from, pause_to)

    _, recs = wait_shipped(recorder, linkedid)
    main = [r for r in recs if r["kind"] == "call"]
    assert len(main) == 1, recs
    path = stored_file(recorder, main[0])
    whole = audio_stats(path)
    during = segment(path, pause_from + EDGE_S, pause_to - EDGE_S, tmp_path)
    after = segment(path, pause_to + EDGE_S, whole.duration_s - EDGE_S, tmp_path)
    assert during.max_amplitude == 0.0 and during.rms == 0.0, during
    assert after.rms > 0.01, after  # recorded again for the rest of the call
    manifest = json.loads(main[0]["manifest"])
    flags = json.loads(main[0]["flags"] or "[]")
    assert len(manifest["pauses"]) == 1 and "pause_auto_resumed" in flags, (manifest, flags)
    start, end = manifest["pauses"][0]
    assert abs((end - start) - (pause_to - pause_from)) < 1.0, (manifest, pause_from, pause_to)
