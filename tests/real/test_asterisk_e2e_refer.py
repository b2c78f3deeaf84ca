"""End-to-end: a recorded queue call is blind-transferred by the agent's phone with a SIP REFER
(res_pjsip_refer), not over AMI: the recording stays one call, flagged ``transferred``.

The caller (sipp UAC, continuous RTP) calls the queue DID 8004 (notify, ``start_on: bridge``);
the agent (sipp UAS) answers and, 4 s later, sends ``REFER`` with ``Refer-To: 9002``.  Asterisk
looks the target up in the agent endpoint's context (``agents``: ``900X`` -> ``pbxrec-transfer``),
answers 202, reports progress by NOTIFY, hangs up the agent's leg, and the caller's channel goes
on to 9002 (answer + echo) until the caller hangs up.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from call_helpers import linkedid_of, new_caller, user_event
from recorder_checks import Recorder, stored_file, wait_shipped

from pbx_recorder.testbed import PrivateAsterisk, SippCall, SippUas, audio_stats
from pbx_recorder.testbed.ami_probe import AmiProbe

pytestmark = [pytest.mark.real, pytest.mark.timeout(180)]

TAG = "referxfer"
CALL_S = 20


def test_agent_sip_refer_transfers_the_caller_and_the_recording_stays_one(
        asterisk: PrivateAsterisk, agent_port: int, ami: AmiProbe, recorder: Recorder,
        tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    agent = SippUas(tmp_path, agent_port, calls=1, timeout_s=60, refer_to="9002", refer_after_ms=4000).start()
    sipp = SippCall(tmp_path, asterisk.sip_port, "8004", hangup_after_s=CALL_S, from_user=caller,
                    test_tag=TAG).start()
    try:
        linkedid = linkedid_of(ami, caller, since)
        user_event(ami, "PbxrecTransferTarget", TAG, since=since, timeout=30)
    finally:
        result = sipp.wait(timeout=CALL_S + 30)
        agent_result = agent.wait(timeout=20)
    assert result.ok and result.elapsed_s > CALL_S - 1, result.errors  # the caller stayed to the end
    assert agent_result.ok, agent_result.errors  # 202, NOTIFYs and the BYE of its leg all came
    xfer = ami.wait_event(lambda e: e.get("Event") == "BlindTransfer"
                          and e.get("TransfereeLinkedid") == linkedid, timeout=5, since=since)
    assert xfer["Result"] == "Success" and xfer["Extension"] == "9002", xfer
    assert xfer["TransfererChannel"].startswith("PJSIP/agent1") and xfer["TransfereeChannel"].startswith(
        "PJSIP/caller"), xfer

    row, recs = wait_shipped(recorder, linkedid)
    calls = [r for r in recs if r["kind"] == "call"]
    assert len(calls) == 1, recs
    assert row["queue"] == "support", row
    assert "transferred" in json.loads(calls[0]["flags"] or "[]"), calls[0]["flags"]
    path = stored_file(recorder, calls[0])
    whole = audio_stats(path)
    tail = tmp_path / "after-refer.wav"  # the last 6 s are after the transfer (REFER at ~4 s of bridge)
    subprocess.run(["sox", str(path), str(tail), "trim", f"{max(0.0, whole.duration_s - 6):.2f}"], check=True,
                   timeout=30, capture_output=True)
    assert whole.rms > 0.01 and audio_stats(tail).rms > 0.01, whole
