"""End-to-end, issue 10 (500 calls on 2 cores): the snippet's fail direction always reaches the
catalog with its reason, and the snippet hands the recorder the time its consent AGI ran (``t0``,
for admission control on a starved PBX).

Version-neutral: UserEvent, AGISTATUS and STRFTIME are the same on 16 and 22.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from call_helpers import call, linkedid_of, new_caller
from fake_agi import FakeAgi
from recorder_checks import catalog_reader, daemon_catalog_url

from pbx_recorder.testbed import PrivateAsterisk, SippCall
from pbx_recorder.testbed.ami_probe import AmiProbe
from pbx_recorder.testbed.recorder import RecorderProcess, write_recorder_config

pytestmark = [pytest.mark.real, pytest.mark.timeout(240)]


def _report(ami: AmiProbe, linkedid: str, since: int = 0) -> dict[str, str]:
    return ami.wait_event(lambda e: e.get("Event") == "UserEvent"
                          and e.get("UserEvent") == "PbxrecUnavailable" and e.get("Linkedid") == linkedid,
                          timeout=10, since=since)


def _refuse(env: dict[str, str], agi: Any) -> None:  # as consent/agi_async.py refuses a session
    agi("SET VARIABLE PBXREC_UNAVAILABLE capacity")


def test_refusal_reason_and_t0_reach_the_dialplan_and_ami(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                          tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    began = time.time()
    with FakeAgi(asterisk.agi_port, _refuse) as agi:
        result = call(asterisk, tmp_path, "8002", hangup_after_s=4, from_user=caller)
    assert result.ok and result.elapsed_s >= 3.5, result.errors  # the call went on (fail direction continue)
    report = _report(ami, linkedid_of(ami, caller, since), since)
    assert report["PbxrecWhy"] == "SUCCESS" and report["PbxrecReason"] == "capacity", report
    (t0,) = [v.split("=", 1)[1] for k, v in agi.sessions[0]["env"].items()  # type: ignore[union-attr]
             if k.startswith("agi_arg_") and v.startswith("t0=")]
    assert began - 1 < float(t0) < time.time() and "." in t0, t0  # epoch seconds, ms resolution


def test_recorder_unreachable_is_reported_with_agistatus(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                          tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    result = call(asterisk, tmp_path, "8002", hangup_after_s=3, from_user=caller)
    assert result.ok, result.errors
    report = _report(ami, linkedid_of(ami, caller, since), since)
    assert report["PbxrecWhy"] == "FAILURE" and report["PbxrecReason"] == "", report


def test_session_refused_at_max_sessions_is_catalogued_capacity(asterisk: PrivateAsterisk, ami: AmiProbe,
                                                                prompts_dir: Path, tmp_path: Path) -> None:
    config = write_recorder_config(tmp_path / "recorder", asterisk, prompts_dir,
                                   catalog_url=daemon_catalog_url(tmp_path / "recorder"))
    data = yaml.safe_load(config.read_text())
    data["pbx"]["agi"]["max_sessions"] = 1
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    process = RecorderProcess(config, asterisk, tmp_path / "recorder.log").start()
    try:
        first, second, since = new_caller(), new_caller(), len(ami.events)
        held = SippCall(tmp_path / "a", asterisk.sip_port, "8002", hangup_after_s=12, from_user=first).start()
        linkedid_of(ami, first, since)
        time.sleep(2.0)  # the first dialogue holds the only session
        refused = call(asterisk, tmp_path / "b", "8002", hangup_after_s=5, from_user=second)
        assert refused.ok and held.wait().ok, refused.errors
        linkedid = linkedid_of(ami, second, since)
        report = _report(ami, linkedid, since)
        assert report["PbxrecReason"] == "capacity", report  # set in band by the refusal
        catalog = catalog_reader(config)
        deadline, row = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            row = catalog.call_by_linkedid(linkedid)
            if row and row.get("status") not in ("", "live"):
                break
            time.sleep(0.5)
        assert row is not None and row["consent_decision"] == "capacity", row
        assert row["record_decision"] == "no_record" and "no_consent_path" not in (row.get("flags") or "")
    finally:
        process.terminate()
