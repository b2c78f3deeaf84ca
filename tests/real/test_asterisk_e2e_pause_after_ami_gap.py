"""The AMI gap rule on a real Asterisk: after the recorder's AMI link was lost (events in between
may be gone), a PCI pause is trusted on an Asterisk that mutes only a channel's first MixMonitor
(16.28) only for a call whose recording the recorder saw start at least ``GAP_MARGIN_S`` before
the loss; a call whose recording started closer to it is refused (``mixmonitors_unknown``), the
agent told to take no card data.  Asterisk 22 mutes every MixMonitor: both are paused.
(The rule: ``core/mixmonitor_order.py`` ``survives_gap``; unit and peer tests hold it to
constructed events, this one to a real link cut by ``ami_gate``.)"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from ami_gate import gated_recorder
from call_helpers import linkedid_of, new_caller
from recorder_checks import Recorder, wait_shipped

from pbx_recorder.core.mixmonitor_order import GAP_MARGIN_S
from pbx_recorder.testbed import PrivateAsterisk, SippCall
from pbx_recorder.testbed.ami_probe import AmiProbe

pytestmark = [pytest.mark.real, pytest.mark.timeout(240)]

EARLY_CALL_S = 50.0  # notice, GAP_MARGIN_S + the late call's start, the cut, two pauses and a resume
LATE_CALL_S = 32.0


def _recording_started(ami: AmiProbe, linkedid: str, since: int) -> tuple[float, dict[str, str]]:
    """(probe time, event) of the recorder's MixMonitorStart on call ``linkedid`` (DID 8001: after
    the notice; the PBX starts none of its own there)."""
    event = ami.wait_event(lambda e: e.get("Event") == "MixMonitorStart" and e.get("Linkedid") == linkedid,
                           timeout=20, since=since)
    return next(t for t, e in ami.find(lambda e: e is event)), event


def _snapshot(recorder: Recorder, call_id: str) -> dict[str, Any]:
    return next((snap for cid, snap in recorder.catalog.live_calls() if cid == call_id), {})


def test_after_a_lost_ami_link_only_a_call_recorded_well_before_it_may_be_paused(
        asterisk: PrivateAsterisk, ami: AmiProbe, prompts_dir: Path, tmp_path: Path) -> None:
    from test_asterisk_e2e_pci_pause import cli, live_call_id

    with gated_recorder(asterisk, prompts_dir, tmp_path) as (recorder, gate):
        early_caller, since = new_caller(), len(ami.events)
        early = SippCall(tmp_path, asterisk.sip_port, "8001", hangup_after_s=EARLY_CALL_S,
                         from_user=early_caller).start()
        late = None
        try:
            early_link = linkedid_of(ami, early_caller, since)
            t_early, started = _recording_started(ami, early_link, since)
            early_id = live_call_id(recorder, early_link, started["Channel"], timeout=10)
            time.sleep(max(0.0, t_early + GAP_MARGIN_S + 1.0 - time.monotonic()))
            late_caller, since = new_caller(), len(ami.events)
            late = SippCall(tmp_path, asterisk.sip_port, "8001", hangup_after_s=LATE_CALL_S,
                            from_user=late_caller).start()
            late_link = linkedid_of(ami, late_caller, since)
            _, late_started = _recording_started(ami, late_link, since)
            late_id = live_call_id(recorder, late_link, late_started["Channel"], timeout=10)
            gate.close_link()  # the recorder's AMI link is lost, and comes back
            time.sleep(0.5)
            gate.open()
            # the daemon marked both calls and wrote their snapshots: the late call's count is no
            # longer trusted, the early call's survives the gap
            assert recorder.catalog.wait_for(
                lambda: _snapshot(recorder, late_id).get("mixmonitors_known") is False
                and _snapshot(recorder, early_id).get("mixmonitors_gap") is True, 20), (
                _snapshot(recorder, early_id), _snapshot(recorder, late_id))
            paused_early = cli(recorder, "calls", "pause", early_id)
            paused_late = cli(recorder, "calls", "pause", late_id)
            assert paused_early.returncode == 0, (paused_early.stdout, paused_early.stderr)
            assert "not record" not in paused_early.stderr  # confirmed by the daemon
            if asterisk.major >= 21:  # every MixMonitor muted: no doubt to have
                assert paused_late.returncode == 0, (paused_late.stdout, paused_late.stderr)
            else:
                assert paused_late.returncode == 5, (paused_late.stdout, paused_late.stderr)
                assert "refused" in paused_late.stderr and "card data" in paused_late.stderr
            time.sleep(2.0)
            for call_id in (early_id, late_id) if asterisk.major >= 21 else (early_id,):
                resumed = cli(recorder, "calls", "resume", call_id)
                assert resumed.returncode == 0, (resumed.stdout, resumed.stderr)
            assert early.wait().ok and late.wait().ok
        finally:
            early.stop()
            if late is not None:
                late.stop()
        for link, paused in ((early_link, True), (late_link, asterisk.major >= 21)):
            _, recs = wait_shipped(recorder, link, timeout=90)
            (main,) = [r for r in recs if r["kind"] == "call"]
            manifest, flags = json.loads(main["manifest"]), json.loads(main["flags"] or "[]")
            assert len(manifest["pauses"]) == (1 if paused else 0), (link, manifest["pauses"])
            assert "pause_missed" not in flags, (link, flags)
        denied = recorder.catalog.query("SELECT target, detail FROM audit_log"
                                        " WHERE action = 'denied:calls.pause'")
        if asterisk.major >= 21:
            assert denied == [], denied
        else:
            assert [(d["target"], json.loads(d["detail"])["reason"]) for d in denied] == [
                (late_id, "mixmonitors_unknown")]
