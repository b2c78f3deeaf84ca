"""End-to-end on FreeSWITCH: a recorded queue call is blind- or attended-transferred by the agent;
it stays one call with one continuous recording, flagged ``transferred``.

Real FreeSWITCH + sipp (caller UAC, agent UAS answering twice: the agent, then the colleague; it
takes more calls than that and is ended gracefully, judged by its own statistics) +
``pbx-recorder run``.  The transfer is ``uuid_transfer <agent uuid> -bleg 9001 XML pbxrec-transfer``:
the same ``switch_ivr_session_transfer`` of the caller's leg that mod_sofia runs on a REFER from the
agent's phone.  FreeSWITCH 1.11 ends the agent leg with NORMAL_CLEARING (not BLIND_TRANSFER) and
marks the caller's leg with ``variable_transfer_history`` (``...:bl_xfer:9001/pbxrec-transfer/XML``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fs_helpers import (
    AGENT_CALLS,
    agent_bridged,
    assert_agent_calls,
    custom_event,
    new_caller,
    record_started,
    recorded_span,
    uuid_of,
    wait_fs_shipped,
)
from recorder_checks import Recorder, stored_file

from pbx_recorder.testbed.audio_stats import audio_stats
from pbx_recorder.testbed.freeswitch import PrivateFreeSWITCH
from pbx_recorder.testbed.freeswitch_probe import FsProbe
from pbx_recorder.testbed.freeswitch_sipp import FsSippCall, FsSippUas

pytestmark = [pytest.mark.real, pytest.mark.timeout(180)]


def test_blind_transfer_keeps_one_call_and_one_recording(freeswitch: PrivateFreeSWITCH, fs_agent_port: int,
                                                         esl: FsProbe, fs_recorder: Recorder,
                                                         tmp_path: Path) -> None:
    """The agent blind-transfers the caller to 9001 (a colleague: the same UAS answers a second
    call).  ``uuid_transfer <agent> -bleg`` is what FreeSWITCH does on the agent phone's REFER."""
    caller, since = new_caller(), esl.mark()
    agent = FsSippUas(tmp_path, fs_agent_port, calls=AGENT_CALLS, timeout_s=150).start()
    sipp: FsSippCall | None = None
    try:
        sipp = FsSippCall(tmp_path, freeswitch.sip_port, "8004", hangup_after_s=24, from_user=caller,
                          test_tag="fs_blindxfer").start()
        member = uuid_of(esl, caller, since)
        _, bridged = agent_bridged(esl, member, since)
        t_rec, _ = record_started(esl, since)
        time.sleep(4)
        reply = esl.api(f"uuid_transfer {bridged['CC-Agent-UUID']} -bleg 9001 XML pbxrec-transfer")
        assert reply.startswith("+OK"), reply
        t_xfer = time.monotonic()
        custom_event(esl, "pbxrec::transfer", "fs_blindxfer", since)
        colleague = esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_BRIDGE"
                                   and member in (e.get("Unique-ID"), e.get("Other-Leg-Unique-ID"))
                                   and bridged["CC-Agent-UUID"] not in (e.get("Unique-ID"),
                                                                        e.get("Other-Leg-Unique-ID")),
                                   timeout=20, since=since)
        result = sipp.wait(timeout=60)
    finally:
        agent_end = agent.finish(timeout=20)
        if sipp is not None and sipp.running:  # a failed step: the caller's sipp must not outlive the test
            sipp.stop()
    assert result.ok, result.errors
    assert_agent_calls(agent, agent_end, esl, member, answered=2)  # the agent and the colleague
    assert colleague
    t_end = next(t for t, e in esl.find(lambda e: e.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE"
                                        and e.get("Unique-ID") == member))
    row, _ = wait_fs_shipped(fs_recorder, member)
    assert fs_recorder.process.terminate() == 0, fs_recorder.process.log_tail()  # drains every pending job
    calls = fs_recorder.catalog.query("SELECT call_id, status, queue FROM calls")
    assert [c["call_id"] for c in calls] == [row["call_id"]], calls  # the colleague's leg joined the call
    recs = fs_recorder.catalog.query("SELECT * FROM recordings")
    assert [(r["kind"], r["state"]) for r in recs] == [("call", "verified")], recs
    assert "transferred" in json.loads(recs[0]["flags"]) or "transferred" in json.loads(row["flags"]), \
        (recs[0]["flags"], row["flags"])
    stats = audio_stats(stored_file(fs_recorder, recs[0]))
    assert stats.rms > 0.01 and abs(stats.duration_s - (t_end - t_rec)) <= 2.5, (stats, t_end - t_rec)
    assert t_xfer < t_end


def test_attended_transfer_keeps_the_callers_call_and_recording(
        freeswitch: PrivateFreeSWITCH, fs_agent_port: int, esl: FsProbe, fs_recorder: Recorder,
        tmp_path: Path) -> None:
    """The agent runs ``att_xfer`` (``uuid_broadcast <agent> att_xfer::<colleague> aleg``, what its
    ``bind_meta_app`` key does): the caller is held, the agent consults the colleague (the same UAS
    answers a second call), then hangs up, which completes the transfer (FreeSWITCH
    ``uuid_bridge``s the held caller with the colleague).  One call row whose legs include the
    agent, the consultation and the colleague; one recording on the caller's leg from the agent's
    bridge to the caller's hang-up, continuous through the hold; flagged ``transferred``."""
    caller, since = new_caller(), esl.mark()
    agent = FsSippUas(tmp_path, fs_agent_port, calls=AGENT_CALLS, timeout_s=150).start()
    sipp: FsSippCall | None = None
    try:
        sipp = FsSippCall(tmp_path, freeswitch.sip_port, "8004", hangup_after_s=26, from_user=caller,
                          test_tag="fs_attxfer").start()
        member = uuid_of(esl, caller, since)
        _, bridged = agent_bridged(esl, member, since)
        agent_leg = bridged["CC-Agent-UUID"]
        record_started(esl, since)
        time.sleep(3)
        colleague_dial = f"{{leg_timeout=20}}sofia/internal/agent1@127.0.0.1:{fs_agent_port}"
        reply = esl.api(f"uuid_broadcast {agent_leg} att_xfer::{colleague_dial} aleg")
        assert reply.startswith("+OK"), reply
        consult = esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_BRIDGE"
                                 and e.get("Unique-ID") == agent_leg
                                 and e.get("Other-Leg-Unique-ID") not in ("", member),
                                 timeout=20, since=since)
        colleague = consult["Other-Leg-Unique-ID"]
        time.sleep(3)  # the consultation: agent <-> colleague, the caller held
        assert esl.api(f"uuid_kill {agent_leg}").startswith("+OK")
        esl.wait_event(lambda e: e.get("Event-Name") == "CHANNEL_BRIDGE"
                              and {e.get("Unique-ID"), e.get("Other-Leg-Unique-ID")} == {member, colleague},
                              timeout=20, since=since)
        result = sipp.wait(timeout=60)
    finally:
        agent_end = agent.finish(timeout=20)
        if sipp is not None and sipp.running:  # a failed step: the caller's sipp must not outlive the test
            sipp.stop()
    assert result.ok, result.errors
    assert_agent_calls(agent, agent_end, esl, member, answered=2)  # the agent and the colleague
    row, _ = wait_fs_shipped(fs_recorder, member)
    assert fs_recorder.process.terminate() == 0, fs_recorder.process.log_tail()
    calls = fs_recorder.catalog.query("SELECT call_id, uniqueids, flags FROM calls")
    assert [c["call_id"] for c in calls] == [row["call_id"]], calls  # no separate consultation call
    assert {member, agent_leg, colleague} <= set(json.loads(calls[0]["uniqueids"])), calls[0]
    assert "transferred" in json.loads(calls[0]["flags"]), calls[0]
    recs = fs_recorder.catalog.query("SELECT * FROM recordings")
    assert [(r["kind"], r["state"], r["call_id"]) for r in recs] == [("call", "verified", row["call_id"])], \
        recs
    stats = audio_stats(stored_file(fs_recorder, recs[0]))
    span = recorded_span(esl, member)  # RECORD_START -> the caller's hang-up, FreeSWITCH's clock
    assert stats.rms > 0.01 and abs(stats.duration_s - span) <= 2.5, (stats, span)
