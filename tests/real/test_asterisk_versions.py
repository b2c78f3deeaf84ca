"""What differs between Asterisk 16 and 22, and what the test bed must get right on both.

* a long call with a digit in it is recorded for its whole length (on 22 the old looped 7 s
  pcap stopped the recording at its first replay: a 30 s call recorded 7 s);
* a Chinese caller name reaches the catalog whole although every AMI read is cut inside its
  characters (the live reader decoded each read on its own: ``张三`` arrived as ``三``);
* MixMonitor option ``D`` (stereo) exists on 22 only: a stereo rule gives a 2-channel file on
  22, and on 16 a file flagged ``duration_mismatch`` (16 ignores ``D``; no silent fallback);
* dual mode (``r()``/``t()`` leg files) gives the mixed file and both legs on both versions,
  each as long as the recorded call (22 pads a leg's gaps, 16 writes the frames it gets: with
  continuous audio both directions have frames throughout).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ami_splitter import SplittingRelay
from call_helpers import call, linkedid_of, new_caller, wait_file_closed
from recorder_checks import Recorder, catalog_reader, daemon_catalog_url, stored_file, wait_call, wait_shipped

from pbx_recorder.testbed import PrivateAsterisk, audio_stats
from pbx_recorder.testbed.ami_probe import AmiProbe
from pbx_recorder.testbed.recorder import RecorderProcess, write_recorder_config

pytestmark = [pytest.mark.real, pytest.mark.timeout(180)]

NAME = "张三"
STEREO_RULES: list[dict[str, Any]] = [
    {"name": "stereo", "match": {"dialed": ["8001"]},
     "action": {"record": "yes", "consent": "notify", "prompt": "recording-notice", "mode": "stereo"}},
]
DUAL_RULES: list[dict[str, Any]] = [
    {"name": "dual", "match": {"dialed": ["8001"]},
     "action": {"record": "yes", "consent": "notify", "prompt": "recording-notice", "mode": "dual"}},
]


def _start_recorder(pbx: PrivateAsterisk, prompts_dir: Path, work: Path, ami_port: int | None = None,
                    rules: list[dict[str, Any]] | None = None) -> Recorder:
    config = write_recorder_config(work / "recorder", pbx, prompts_dir, rules=rules,
                                   catalog_url=daemon_catalog_url(work / "recorder"))
    if ami_port is not None:
        data = yaml.safe_load(config.read_text())
        data["pbx"]["ami"]["port"] = ami_port
        config.write_text(yaml.safe_dump(data, sort_keys=False))
    process = RecorderProcess(config, pbx, work / "recorder.log").start()
    return Recorder(process, config, work / "recorder", catalog_reader(config))


@pytest.fixture
def relay(asterisk: PrivateAsterisk) -> Iterator[SplittingRelay]:
    splitter = SplittingRelay(asterisk.ami_port)
    try:
        yield splitter
    finally:
        splitter.close()


def test_long_call_with_a_digit_is_recorded_whole(asterisk: PrivateAsterisk, tmp_path: Path) -> None:
    result = call(asterisk, tmp_path, "7001", hangup_after_s=30, test_tag="long_call", dtmf=[(12_000, "5")])
    assert result.ok, result.errors
    path = wait_file_closed(asterisk.selftest_dir / "long_call.wav", timeout=20)
    whole = audio_stats(path)
    assert abs(whole.duration_s - 30.0) < 1.5 and whole.rms > 0.01, whole
    tail = tmp_path / "tail.wav"  # the last 10 s: after the digit and after several 7 s marks
    subprocess.run(["sox", str(path), str(tail), "trim", f"{whole.duration_s - 10:.2f}"], check=True,
                   timeout=30, capture_output=True)
    assert audio_stats(tail).rms > 0.01


def test_chinese_caller_name_survives_reads_cut_inside_characters(
        asterisk: PrivateAsterisk, ami: AmiProbe, prompts_dir: Path, relay: SplittingRelay,
        tmp_path: Path) -> None:
    recorder = _start_recorder(asterisk, prompts_dir, tmp_path, ami_port=relay.port)
    try:
        caller, since = new_caller(), len(ami.events)
        result = call(asterisk, tmp_path, "8001", hangup_after_s=6, from_user=caller, from_display=NAME)
        assert result.ok, result.errors
        linkedid = linkedid_of(ami, caller, since)
        created = ami.wait_event(lambda e: e.get("Event") == "Newchannel" and e.get("Linkedid") == linkedid,
                                 timeout=5, since=since)
        assert created["CallerIDName"] == NAME  # the PBX sent it whole
        row = wait_call(recorder, linkedid)
        assert relay.cuts > 0  # the recorder's reads really were cut inside characters
        assert row["caller_name"] == NAME, row["caller_name"]
        cdr = json.loads(row["cdr"])  # the Cdr event comes over AMI only
        assert any(NAME in str(v) for v in cdr.values()), cdr
        assert not any("\ufffd" in str(v) for v in cdr.values()), cdr
    finally:
        recorder.process.terminate()


def _stereo_call(asterisk: PrivateAsterisk, ami: AmiProbe, prompts_dir: Path,
                 tmp_path: Path) -> tuple[Recorder, dict[str, Any]]:
    recorder = _start_recorder(asterisk, prompts_dir, tmp_path, rules=STEREO_RULES)
    caller, since = new_caller(), len(ami.events)
    result = call(asterisk, tmp_path, "8001", hangup_after_s=12, from_user=caller)
    assert result.ok, result.errors
    _, recs = wait_shipped(recorder, linkedid_of(ami, caller, since))
    main = [r for r in recs if r["kind"] == "call"]
    assert len(main) == 1, recs
    return recorder, main[0]


@pytest.mark.asterisk("22")
def test_stereo_on_22_is_two_channels_caller_and_what_the_caller_hears(
        asterisk: PrivateAsterisk, ami: AmiProbe, prompts_dir: Path, tmp_path: Path) -> None:
    recorder, rec = _stereo_call(asterisk, ami, prompts_dir, tmp_path)
    try:
        path = stored_file(recorder, rec)
        channels = subprocess.run(["soxi", "-c", str(path)], capture_output=True, text=True, timeout=30,
                                  check=True).stdout.strip()
        assert channels == "2", channels
        stats = audio_stats(path)
        assert abs(stats.duration_s - 8.0) < 3.0, stats  # 12 s call minus the notice (~4 s)
        for n in (1, 2):  # the caller, and the echo the caller hears (DID 8001 ends in Echo())
            one = tmp_path / f"ch{n}.wav"
            subprocess.run(["sox", str(path), str(one), "remix", str(n)], check=True, timeout=30,
                           capture_output=True)
            assert audio_stats(one).rms > 0.01, n
        assert "duration_mismatch" not in json.loads(rec["flags"] or "[]"), rec["flags"]
    finally:
        recorder.process.terminate()


@pytest.mark.asterisk("16")
def test_stereo_on_16_is_flagged_not_passed_off(asterisk: PrivateAsterisk, ami: AmiProbe, prompts_dir: Path,
                                                tmp_path: Path) -> None:
    recorder, rec = _stereo_call(asterisk, ami, prompts_dir, tmp_path)
    try:
        assert "duration_mismatch" in json.loads(rec["flags"] or "[]"), rec["flags"]
    finally:
        recorder.process.terminate()


def test_dual_mode_keeps_the_mix_and_both_legs_for_the_whole_recording(
        asterisk: PrivateAsterisk, ami: AmiProbe, prompts_dir: Path, tmp_path: Path) -> None:
    recorder = _start_recorder(asterisk, prompts_dir, tmp_path, rules=DUAL_RULES)
    try:
        caller, since = new_caller(), len(ami.events)
        result = call(asterisk, tmp_path, "8001", hangup_after_s=12, from_user=caller)
        assert result.ok, result.errors
        linkedid = linkedid_of(ami, caller, since)
        _, recs = wait_shipped(recorder, linkedid)
        main = [r for r in recs if r["kind"] == "call"]
        assert len(main) == 1, recs
        manifest = json.loads(main[0]["manifest"])
        assert sorted(f["role"] for f in manifest["files"]) == ["mixed", "read", "write"], manifest["files"]
        start = next(t for t, e in ami.events[since:] if e.get("Event") == "MixMonitorStart"
                     and e.get("Linkedid") == linkedid)
        end = next(t for t, e in ami.events[since:] if e.get("Event") == "Hangup"
                   and e.get("Linkedid") == linkedid)
        files = sorted(p for p in recorder.hot_dir.rglob(f"*{main[0]['recording_id']}*")
                       if p.suffix == ".wav" and "original" not in p.name)
        assert len(files) == 3, files
        for path in files:
            stats = audio_stats(path)
            assert stats.rms > 0.01 and abs(stats.duration_s - (end - start)) <= 1.5, (stats, end - start)
        assert "duration_mismatch" not in json.loads(main[0]["flags"] or "[]"), main[0]["flags"]
    finally:
        recorder.process.terminate()
