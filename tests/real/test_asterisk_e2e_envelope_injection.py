"""End-to-end on Asterisk 16: a caller ID that repeats AMI envelope headers keeps the recorder's AMI
link up and every call recorded.

PJSIP percent-decodes the From user and Asterisk 16 copies it raw into the events of the call
(tests/real/test_asterisk_ami_framing.py), so ``<number>%0d%0aEvent%3a%20x`` gives every event of
that call a second ``Event`` header and ``%0d%0aActionID%3a%20x`` a second ``ActionID`` in its
``CoreShowChannel`` item.  Before ami/envelope.py, the first closed the recorder's AMI connection
on each event of that call (panoramisk raised out of ``data_received``) and the second made every
reconnect's resync die while the call was up.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from call_helpers import linkedid_of, new_caller
from recorder_checks import Recorder, assert_audio, wait_shipped

from pbx_recorder.core.masking import mask_number
from pbx_recorder.testbed import PrivateAsterisk, SippCall
from pbx_recorder.testbed.ami_probe import AmiProbe

# the CRLF pass-through measured on 16 (test_asterisk_ami_framing.py)
pytestmark = [pytest.mark.real, pytest.mark.asterisk("16"), pytest.mark.timeout(240)]

TAILS = {"event": "%0d%0aEvent%3a%20x", "actionid": "%0d%0aActionID%3a%20x"}


def _mixmonitor_started(ami: AmiProbe, linkedid: str, since: int) -> None:
    ami.wait_event(lambda e: e.get("Event") == "MixMonitorStart" and e.get("Linkedid") == linkedid,
                   timeout=15, since=since)


def test_repeated_envelope_headers_keep_the_link_and_every_call_recorded(
        asterisk: PrivateAsterisk, ami: AmiProbe, recorder: Recorder, tmp_path: Path) -> None:
    since = len(ami.events)
    bystander = new_caller()
    calls = {bystander: SippCall(tmp_path, asterisk.sip_port, "8001", hangup_after_s=22,
                                 from_user=bystander).start()}
    linkedids: dict[str, str] = {}
    try:
        linkedids[bystander] = linkedid_of(ami, bystander, since)
        _mixmonitor_started(ami, linkedids[bystander], since)
        for kind, tail in TAILS.items():
            caller = new_caller()
            calls[caller] = SippCall(tmp_path, asterisk.sip_port, "8001", hangup_after_s=14,
                                     from_user=caller + tail, test_tag=f"envelope_{kind}").start()
            linkedids[caller] = linkedid_of(ami, caller, since)  # the probe keeps the first value
            _mixmonitor_started(ami, linkedids[caller], since)
        log_path = recorder.process.log_path
        assert "AMI connection lost" not in log_path.read_text(errors="replace")
        # a reconnect while both hostile calls are up: the resync lists them (CoreShowChannel)
        asterisk.drop_ami_connections(keep_local_ports=(ami.local_port,))
        time.sleep(0.5)
        deadline = time.monotonic() + 15
        while asterisk.ami_sessions(asterisk.daemon_ami_user) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert asterisk.ami_sessions(asterisk.daemon_ami_user) > 0, "recorder did not reconnect to AMI"
    finally:
        results = {caller: call.wait(timeout=60) for caller, call in calls.items()}
    for caller, result in results.items():
        assert result.ok, (caller, result.errors)
    for caller, linkedid in linkedids.items():
        _, recs = wait_shipped(recorder, linkedid)
        (rec,) = [r for r in recs if r["kind"] == "call"]
        assert_audio(recorder, rec, expect_s=22 if caller == bystander else 14, tolerance_s=6)
    log = recorder.process.log_path.read_text(errors="replace")
    assert log.count("AMI connection lost") == 1, log[-4000:]  # only the drop made above
    after = log.split("AMI connection lost")[-1]
    assert "AMI resync: CoreShowChannels failed" not in log
    resyncs = [int(m) for m in re.findall(r"AMI resync: \d+ live channel\(s\) in (\d+) call", after)]
    assert resyncs and resyncs[0] >= 3, after[-3000:]  # the bystander and both hostile calls
    assert "AMI header injection" in log
    for caller in linkedids:
        if caller != bystander:
            assert mask_number(caller) in log and caller not in log
    assert recorder.process.running
