"""End-to-end, issue 10: the dialplan starts the recording at answer when the decision is final
at entry (the snippet's quick decision before answer, consent/early_decide.py).

Version-neutral: MixMonitor's ``i()``, ``r()``/``t()`` and UserEvent are the same on 16 and 22.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from call_helpers import call, cdr_of, linkedid_of, new_caller
from fake_agi import FakeAgi
from recorder_checks import (
    Recorder,
    assert_audio,
    catalog_reader,
    daemon_catalog_url,
    stored_file,
    wait_shipped,
)

from pbx_recorder.testbed import PrivateAsterisk, SippCall
from pbx_recorder.testbed.ami_probe import AmiProbe
from pbx_recorder.testbed.recorder import TEST_RULES, RecorderProcess, write_recorder_config

pytestmark = [pytest.mark.real, pytest.mark.timeout(240)]

EARLY_RULES: list[dict[str, Any]] = [
    {"name": "none-mixed", "match": {"dialed": ["8003"]}, "action": {"record": "yes", "consent": "none"}},
    {"name": "none-dual", "match": {"dialed": ["8001"]},
     "action": {"record": "yes", "consent": "none", "mode": "dual"}},
    *TEST_RULES[1:],
]


@pytest.fixture
def early_recorder(asterisk: PrivateAsterisk, prompts_dir: Path, tmp_path: Path) -> Any:
    config = write_recorder_config(tmp_path / "recorder", asterisk, prompts_dir, rules=EARLY_RULES,
                                   catalog_url=daemon_catalog_url(tmp_path / "recorder"))
    process = RecorderProcess(config, asterisk, tmp_path / "recorder.log").start()
    try:
        work = tmp_path / "recorder"
        yield Recorder(process, config, work, catalog_reader(config))
    finally:
        process.terminate()


def _events(ami: AmiProbe, linkedid: str, since: int, name: str) -> list[dict[str, str]]:
    return [e for _, e in ami.events[since:] if e.get("Event") == name and e.get("Linkedid") == linkedid]


def _early_call(asterisk: PrivateAsterisk, ami: AmiProbe, recorder: Recorder, tmp_path: Path, did: str,
                count: int) -> tuple[str, int, dict[str, Any], list[dict[str, Any]]]:
    caller, since = new_caller(), len(ami.events)
    result = call(asterisk, tmp_path, did, hangup_after_s=8, from_user=caller)
    assert result.ok and result.elapsed_s > 7, result.errors
    linkedid = linkedid_of(ami, caller, since)
    row, recs = wait_shipped(recorder, linkedid, count=count)
    return linkedid, since, row, recs


def test_consent_none_is_started_by_the_dialplan_at_answer_and_adopted(
        asterisk: PrivateAsterisk, ami: AmiProbe, early_recorder: Recorder, tmp_path: Path) -> None:
    linkedid, since, row, recs = _early_call(asterisk, ami, early_recorder, tmp_path, "8003", 1)
    (report,) = [e for e in _events(ami, linkedid, since, "UserEvent")
                 if e.get("UserEvent") == "PbxrecEarlyStart"]
    (rec,) = recs
    assert report["PbxrecRec"] == rec["recording_id"] and report["PbxrecMMID"], report
    assert len(_events(ami, linkedid, since, "MixMonitorStart")) == 1  # adopted: no second MixMonitor
    # the consent session never ran: only the quick decision, before the answer
    assert [e.get("Command", "") for e in _events(ami, linkedid, since, "AGIExecStart")
            if "MixMonitor" in e.get("Command", "")] == []
    assert row["consent_decision"] == "not_required" and row["record_decision"] == "record", row
    assert cdr_of(ami, linkedid)["UserField"] == ""
    assert_audio(early_recorder, rec, expect_s=8, tolerance_s=2)


def test_dual_mode_from_the_dialplan_writes_both_legs(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                       early_recorder: Recorder, tmp_path: Path) -> None:
    linkedid, since, row, recs = _early_call(asterisk, ami, early_recorder, tmp_path, "8001", 1)
    (rec,) = recs
    assert rec["mode"] == "dual", rec
    assert len(_events(ami, linkedid, since, "MixMonitorStart")) == 1
    assert row["consent_decision"] == "not_required" and row["record_decision"] == "record"


def test_a_decision_that_needs_consent_keeps_the_consent_session(
        asterisk: PrivateAsterisk, ami: AmiProbe, early_recorder: Recorder, tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    result = call(asterisk, tmp_path, "8002", hangup_after_s=12, from_user=caller, dtmf=[(2500, "1")])
    assert result.ok, result.errors
    linkedid = linkedid_of(ami, caller, since)
    row, recs = wait_shipped(early_recorder, linkedid, count=2)
    assert row["consent_decision"] == "granted" and sorted(r["kind"] for r in recs) == ["call", "consent"]
    assert not [e for e in _events(ami, linkedid, since, "UserEvent")
                if e.get("UserEvent") == "PbxrecEarlyStart"]


def test_snippet_runs_the_recorders_mixmonitor_itself(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                      tmp_path: Path) -> None:
    """The snippet's side of the contract, with a scripted recorder: the file and options it is
    given, started right after its own Answer(), reported by UserEvent; no consent session."""
    target = asterisk.monitor_dir / f"early-{int(time.time() * 1000)}.wav"

    def script(env: dict[str, str], agi: Any) -> None:
        assert env["agi_network_script"] == "decide"
        for name, value in (("PBXREC_EARLY_ARGS", f"{target},i(PBXREC_EARLY_MMID),touch {target}.closed"),
                            ("PBXREC_RECORDING_ID", "r1"),
                            ("PBXREC_CONSENT", "not_required"), ("PBXREC_RESULT", "record")):
            agi(f'SET VARIABLE {name} "{value}"')

    caller, since = new_caller(), len(ami.events)
    with FakeAgi(asterisk.agi_port, script, answers_decide=True) as agi:
        result = call(asterisk, tmp_path, "8003", hangup_after_s=4, from_user=caller)
    assert result.ok and result.elapsed_s >= 3.5, result.errors
    linkedid = linkedid_of(ami, caller, since)
    assert [s["env"]["agi_network_script"] for s in agi.sessions] == ["decide"]  # type: ignore[index]
    answered = ami.wait_event(lambda e: e.get("Event") == "Newstate" and e.get("Linkedid") == linkedid
                              and e.get("ChannelState") == "6", timeout=5, since=since)
    started = ami.wait_event(lambda e: e.get("Event") == "MixMonitorStart" and e.get("Linkedid") == linkedid,
                             timeout=5, since=since)
    report = ami.wait_event(lambda e: e.get("Event") == "UserEvent" and e.get("Linkedid") == linkedid,
                            timeout=5, since=since)
    assert answered and started and report["PbxrecRec"] == "r1" and report["PbxrecMMID"], report
    deadline = time.monotonic() + 10
    while not Path(f"{target}.closed").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert target.stat().st_size > 8000 and Path(f"{target}.closed").exists()
    assert cdr_of(ami, linkedid)["UserField"] == ""
    target.unlink()
    Path(f"{target}.closed").unlink()


def test_pci_pause_of_a_dialplan_started_recording(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                   early_recorder: Recorder, tmp_path: Path) -> None:
    """The adopted recording is paused and resumed like any other (MixMonitorMute on its channel)."""
    from test_asterisk_e2e_pci_pause import cli, live_call_id, pause_stretch, segment

    caller, since = new_caller(), len(ami.events)
    t0 = time.monotonic()
    sipp = SippCall(tmp_path, asterisk.sip_port, "8003", hangup_after_s=20, from_user=caller).start()
    try:
        linkedid = linkedid_of(ami, caller, since)
        started = ami.wait_event(lambda e: e.get("Event") == "MixMonitorStart"
                                 and e.get("Linkedid") == linkedid, timeout=15, since=since)
        t_start = next(t for t, e in ami.find(lambda e: e is started))
        channel = started["Channel"]
        call_id = live_call_id(early_recorder, linkedid, channel)
        time.sleep(max(0.0, t_start + 2.0 - time.monotonic()))
        assert cli(early_recorder, "calls", "pause", call_id).returncode == 0
        time.sleep(4.0)
        assert cli(early_recorder, "calls", "resume", call_id).returncode == 0
        result = sipp.wait()
    finally:
        sipp.stop()
    assert result.ok, result.errors
    pause_from, pause_to, _ = pause_stretch(ami, channel, t0, t_start)
    row, recs = wait_shipped(early_recorder, linkedid)
    assert row["consent_decision"] == "not_required" and len(recs) == 1, (row, recs)
    assert len(_events(ami, linkedid, since, "MixMonitorStart")) == 1
    path = stored_file(early_recorder, recs[0])
    during = segment(path, pause_from + 0.5, pause_to - 0.5, tmp_path)
    assert during.max_amplitude == 0.0, during
    assert len(json.loads(recs[0]["manifest"])["pauses"]) == 1
