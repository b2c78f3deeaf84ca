"""End-to-end: a recorded queue call is blind-transferred by the agent; the recording stays one call.

Real Asterisk + sipp + ``pbx-recorder run``.  The caller (sipp UAC, real RTP) calls the queue
DID 8004 (rule ``support-queue``: notify, ``start_on: bridge``); the agent (sipp UAS) answers;
once MixMonitor runs, the agent's channel is blind-transferred over AMI (``BlindTransfer`` on the
agent channel: what a SIP REFER from the agent's phone does, ``ast_bridge_transfer_blind``) to
``pbxrec-transfer,9001``, which rings the agent endpoint again (the same UAS answers a second call:
the colleague).  Asterisk 16.28 sends ``BlindTransfer`` (transferer = agent, transferee = caller),
the first agent leg hangs up, the caller's channel leaves the queue and dials the colleague: the
colleague's channel is new but carries the caller's Linkedid.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from call_helpers import linkedid_of, new_caller, user_event
from recorder_checks import Recorder, stored_file, wait_shipped

from pbx_recorder.testbed import PrivateAsterisk, SippCall, SippUas, audio_stats
from pbx_recorder.testbed.ami_probe import AmiProbe, Event

pytestmark = [pytest.mark.real, pytest.mark.timeout(180)]

HANGUP_AFTER_S = 24
TAG = "blindxfer"


def _first(ami: AmiProbe, since: int, match: Callable[[Event], bool],
           timeout: float = 20.0) -> tuple[float, Event]:
    """(monotonic arrival time, event) of the first event from ``since`` that ``match``es."""
    found = ami.wait_event(match, timeout=timeout, since=since)
    return next(t for t, e in ami.events[since:] if e is found), found


def _of_call(linkedid: str, event: str, channel: str = "") -> Callable[[Event], bool]:
    return lambda e: (e.get("Event") == event and e.get("Linkedid") == linkedid
                      and e.get("Channel", "").startswith(channel))


def _trimmed_stats(path: Path, start_s: float, workdir: Path) -> tuple[float, float]:
    """(duration, RMS) of ``path`` from ``start_s`` to the end."""
    tail = workdir / "after-transfer.wav"
    subprocess.run(["sox", str(path), str(tail), "trim", f"{start_s:.2f}"], check=True, timeout=30,
                   capture_output=True)
    stats = audio_stats(tail)
    return stats.duration_s, stats.rms


def test_blind_transfer_keeps_one_call_and_one_continuous_recording(
        asterisk: PrivateAsterisk, agent_port: int, ami: AmiProbe, recorder: Recorder,
        tmp_path: Path) -> None:
    caller, since = new_caller(), len(ami.events)
    monitor_before = set(asterisk.monitor_dir.rglob("*"))
    agent = SippUas(tmp_path, agent_port, calls=2, timeout_s=90).start()  # first agent, then the colleague
    sipp = SippCall(tmp_path, asterisk.sip_port, "8004", hangup_after_s=HANGUP_AFTER_S, from_user=caller,
                    test_tag=TAG).start()
    try:
        linkedid = linkedid_of(ami, caller, since)
        _, connect = _first(ami, since, _of_call(linkedid, "AgentConnect"))
        t_rec, _ = _first(ami, since, _of_call(linkedid, "MixMonitorStart"))
        agent_channel, agent_uid = connect["DestChannel"], connect["DestUniqueid"]
        _first(ami, since, lambda e: e.get("Event") == "BridgeEnter" and e.get("Uniqueid") == agent_uid)
        time.sleep(4)  # several seconds recorded with the first agent
        reply = ami.action({"Action": "BlindTransfer", "Channel": agent_channel,
                            "Context": "pbxrec-transfer", "Exten": "9001"})
        assert reply.get("Response") == "Success", reply
        t_xfer, xfer = _first(ami, since, lambda e: e.get("Event") == "BlindTransfer"
                              and e.get("TransfererLinkedid") == linkedid)
        user_event(ami, "PbxrecTransferTarget", TAG, since=since)
        # the colleague: a new agent channel, bridged with the caller
        t_col, colleague = _first(ami, since, lambda e: _of_call(linkedid, "BridgeEnter", "PJSIP/agent1")(e)
                                  and e.get("Uniqueid") != agent_uid)
    finally:
        result = sipp.wait(timeout=HANGUP_AFTER_S + 30)
        agent_result = agent.wait(timeout=20)
    assert result.ok and agent_result.ok, (result.errors, agent_result.errors)
    t_end, _ = _first(ami, since, _of_call(linkedid, "Hangup", "PJSIP/caller"))
    t_agent_gone, _ = _first(ami, since,
                             lambda e: e.get("Event") == "Hangup" and e.get("Uniqueid") == agent_uid)
    # what Asterisk 16 reports: the agent transferred the caller; the agent leg is gone, then the colleague
    # (same Linkedid: no second call on the PBX either) is bridged with the caller's channel
    assert xfer["Result"] == "Success" and xfer["TransfererChannel"] == agent_channel, xfer
    assert xfer["TransfereeChannel"].startswith("PJSIP/caller"), xfer
    assert xfer["TransfereeLinkedid"] == linkedid, xfer
    assert (xfer["Context"], xfer["Extension"]) == ("pbxrec-transfer", "9001"), xfer
    assert t_xfer <= t_agent_gone <= t_col < t_end
    assert len(ami.find(_of_call(linkedid, "MixMonitorStart"))) == 1

    row, _ = wait_shipped(recorder, linkedid)
    # SIGTERM drains the daemon (it finishes every finalize/spool job): whatever it was going to write
    # about this call (a second segment, a "missing" file, ...) is in the catalog afterwards
    assert recorder.process.terminate() == 0, recorder.process.log_tail()
    calls = recorder.catalog.query("SELECT call_id, linkedid, status, queue, flags FROM calls")
    assert [(c["call_id"], c["linkedid"]) for c in calls] == [(row["call_id"], linkedid)], calls
    assert calls[0]["status"] == "answered" and calls[0]["queue"] == "support", calls
    recs = recorder.catalog.query("SELECT * FROM recordings")
    assert [(r["call_id"], r["kind"], r["state"]) for r in recs] == [(row["call_id"], "call", "verified")], \
        [(r["recording_id"], r["state"], r["flags"]) for r in recs]
    assert "transferred" in json.loads(recs[0]["flags"]), recs[0]["flags"]
    # the MixMonitor is on the caller's channel, which stays in the call: one recording over the whole
    # call (bridge to the caller's hang-up), with audio after the transfer too
    path = stored_file(recorder, recs[0])
    stats = audio_stats(path)
    whole = t_end - t_rec
    assert stats.rms > 0.01 and abs(stats.duration_s - whole) <= 2.5, (stats, whole)
    tail_s, tail_rms = _trimmed_stats(path, t_xfer - t_rec + 1.0, tmp_path)
    assert tail_rms > 0.01 and abs(tail_s - (t_end - t_xfer - 1.0)) <= 2.5, (tail_s, tail_rms, t_end - t_xfer)
    # nothing left behind in the PBX's monitor dir (no orphan file, no stray .closed marker)
    left = [p for p in asterisk.monitor_dir.rglob("*") if p.is_file() and p not in monitor_before]
    assert not left, sorted(map(str, left))
