"""Asterisk, the daemon end to end over in-process peers (AMI peer + fake FastAGI Asterisk, as
tests/peers/test_consent_none_failure_truth.py): two leftovers of the ``consent: none`` failure fix.

* **A stop names its MixMonitor.**  Withdrawing a recording the dialplan never started (handed
  over by the quick decision, then the session failed) used to send ``StopMixMonitor`` without
  ``MixMonitorID``: Asterisk stops whichever MixMonitor of the channel it finds first (a second
  recording of the channel, an admin's own).  Now the recorder reads the ID from the variable the
  MixMonitor would have been started with (``Getvar``) or sends nothing.
* **A settled call keeps its result.**  A second consent request for a call the core settled as
  not recorded (failed, refused) used to answer "record" (the rule's decision), or play the
  dialogue again and answer "record" on a "yes" the core ignored: the dialplan said recorded
  while nothing recorded.  Now it answers the settled result, with no dialogue.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from ami_peer import AmiPeer
from fake_asterisk_agi import converse, env_block
from test_ami_client import CHANNEL as LIVE
from test_ami_client import running
from test_consent_none_failure_truth import ENV, Failing, none_config
from test_daemon import CALL, CHANNEL, daemon_running, free_port, start_call, until, write_config

from ami.actions import mmid_variable
from pbx_recorder.core import commands as cmds
from pbx_recorder.core import constants as C
from pbx_recorder.core.naming import make_recording_id

pytestmark = pytest.mark.timeout(60)
REC = make_recording_id(CALL, "call", 1)
DECIDE_ENV = env_block(["direction=inbound", "dialed=4930123456", "linkedid=100.1"], channel=CHANNEL,
                       uniqueid="100.1", script="decide")


async def _handed_over_then_failed(peer: AmiPeer, agi_port: int) -> Failing:
    """The quick decision hands the MixMonitor to the dialplan (``PBXREC_EARLY_ARGS``) and fails
    before its result; the snippet answers and runs the consent AGI, whose result cannot be set
    either: the snippet takes its fail direction and never runs that MixMonitor."""
    await peer.emit({"Event": "Newchannel", "Channel": CHANNEL, "Uniqueid": "100.1", "Linkedid": "100.1",
                     "ChannelState": "4", "CallerIDNum": "4915112345678", "Exten": "4930123456",
                     "Context": "from-trunk"})
    ringing = Failing(("PBXREC_RESULT", "PBXREC_CONSENT"))
    await asyncio.to_thread(converse, agi_port, DECIDE_ENV, ringing)
    assert "PBXREC_EARLY_ARGS" in ringing.variables and "PBXREC_RESULT" not in ringing.variables
    await peer.emit({"Event": "Newstate", "Channel": CHANNEL, "Uniqueid": "100.1", "Linkedid": "100.1",
                     "ChannelState": "6", "ChannelStateDesc": "Up"})
    answered = Failing(("PBXREC_RESULT",))
    answered.variables.update(ringing.variables)
    await asyncio.to_thread(converse, agi_port, ENV, answered)
    assert "PBXREC_RESULT" not in answered.variables  # the snippet's fail direction: "unrecorded"
    return answered


async def test_withdrawn_recording_never_started_sends_no_id_less_stop(tmp_path: Path) -> None:
    """The reviewer's case: no MixMonitorID is known (the dialplan never started it) and none is
    on the channel: nothing is stopped (another MixMonitor of the channel runs on), the recording
    is discarded, the catalog says not recorded: failed."""
    agi_port = free_port()
    async with AmiPeer() as peer:
        async with daemon_running(none_config(tmp_path, peer.port, agi_port)) as daemon:
            await _handed_over_then_failed(peer, agi_port)
            await until(lambda: daemon.app.callbook.state(CALL) == "not_recorded")
            await asyncio.sleep(0.2)  # a stop over AMI, if any, goes out now
            assert peer.actions("StopMixMonitor") == []  # never "whichever MixMonitor comes first"
            asked = [a.get("variable") for a in peer.actions("Getvar") if a.get("channel") == CHANNEL]
            assert asked == [mmid_variable(REC), C.VAR_EARLY_MMID]  # never PBXREC_DIALOGUE_MMID
            snap = daemon.app.callbook.snapshot(CALL)
            assert snap["consent_decision"] == "failed"
            assert all(r["state"] == "discarded" for r in snap["recordings"])


async def test_withdrawn_recording_stopped_by_the_id_read_from_its_variable(tmp_path: Path) -> None:
    """The snippet did start it after all (its UserEvent lost): the ID in ``PBXREC_EARLY_MMID``
    (cleared on entry to the snippet, so it is this pass's) stops exactly that MixMonitor."""
    agi_port = free_port()
    async with AmiPeer() as peer:
        peer.variables[CHANNEL] = {C.VAR_EARLY_MMID: "0x5600c0ffee"}
        async with daemon_running(none_config(tmp_path, peer.port, agi_port)) as daemon:
            await _handed_over_then_failed(peer, agi_port)
            await until(lambda: bool(peer.actions("StopMixMonitor")))
            (stop,) = peer.actions("StopMixMonitor")
            assert stop["mixmonitorid"] == "0x5600c0ffee" and stop["channel"] == CHANNEL
            assert daemon.app.callbook.snapshot(CALL)["consent_decision"] == "failed"


async def test_a_value_asterisk_would_not_make_is_not_a_mixmonitor_id(tmp_path: Path) -> None:
    """Whatever the variable holds, only an ID of Asterisk's form is sent (else nothing)."""
    agi_port = free_port()
    async with AmiPeer() as peer:
        peer.variables[CHANNEL] = {C.VAR_EARLY_MMID: "0x1 ; StopMixMonitor"}
        async with daemon_running(none_config(tmp_path, peer.port, agi_port)) as daemon:
            await _handed_over_then_failed(peer, agi_port)
            await until(lambda: daemon.app.callbook.state(CALL) == "not_recorded")
            await asyncio.sleep(0.2)
            assert peer.actions("StopMixMonitor") == []


async def test_second_request_for_a_failed_call_answers_norecord(tmp_path: Path) -> None:
    """The call was resolved ``failed`` (consent none, no result reached the channel: recording
    stopped and discarded); the snippet runs the consent AGI again (the same channel): the answer
    is "norecord" (it used to be "record" with nothing recording), nothing is started."""
    channel = Failing(("PBXREC_RESULT", "PBXREC_CONSENT"))
    agi_port = free_port()
    async with AmiPeer() as peer:
        async with daemon_running(none_config(tmp_path, peer.port, agi_port)) as daemon:
            await start_call(peer)
            await asyncio.to_thread(converse, agi_port, ENV, channel)
            await until(lambda: daemon.app.callbook.state(CALL) == "not_recorded")
            again = Failing()
            commands = await asyncio.to_thread(converse, agi_port, ENV, again)
            assert again.variables["PBXREC_RESULT"] == "norecord"
            assert not any(c.startswith("EXEC MixMonitor") for c in commands)
            snap = daemon.app.callbook.snapshot(CALL)
            assert snap["state"] == "not_recorded" and snap["consent_decision"] == "failed"


async def test_second_request_for_a_refused_call_plays_no_dialogue(tmp_path: Path) -> None:
    """The caller said no (explicit consent); the call comes back through the snippet and would
    say yes now: no question is played (the core would ignore its outcome), the answer is
    "norecord" (it used to be "record" while the call stayed refused and unrecorded)."""
    agi_port = free_port()
    async with AmiPeer() as peer:
        async with daemon_running(write_config(tmp_path, peer.port, agi_port)) as daemon:
            await start_call(peer)
            first = Failing()
            first.digit = "2"
            await asyncio.to_thread(converse, agi_port, ENV, first)
            assert first.variables["PBXREC_RESULT"] == "refused"
            await until(lambda: daemon.app.callbook.state(CALL) == "refused")
            again = Failing()
            again.digit = "1"
            commands = await asyncio.to_thread(converse, agi_port, ENV, again)
            assert again.variables["PBXREC_RESULT"] == "norecord"
            assert not any(c.startswith(("STREAM FILE", "EXEC MixMonitor")) for c in commands)
            assert daemon.app.callbook.state(CALL) == "refused"


async def test_second_request_for_a_recorded_call_says_record_without_starting_again(tmp_path: Path) -> None:
    """A call recorded (consent none) passes the snippet again: "record", no second MixMonitor."""
    agi_port = free_port()
    async with AmiPeer() as peer:
        async with daemon_running(none_config(tmp_path, peer.port, agi_port)) as daemon:
            await start_call(peer)
            first = Failing()
            await asyncio.to_thread(converse, agi_port, ENV, first)
            assert first.variables["PBXREC_RESULT"] == "record" and len(first.mixmonitors) == 1
            again = Failing()
            commands = await asyncio.to_thread(converse, agi_port, ENV, again)
            assert again.variables["PBXREC_RESULT"] == "record"
            assert not any(c.startswith("EXEC MixMonitor") for c in commands)
            assert daemon.app.callbook.state(CALL) == "recording" and not peer.actions("StopMixMonitor")


async def test_an_id_of_another_recording_of_the_call_is_never_taken() -> None:
    """``PBXREC_EARLY_MMID`` names the MixMonitor of a recording the client knows under another
    recording id (an earlier pass, the call's other recording): this stop does not take it."""
    async with AmiPeer() as peer:
        peer.channels = [LIVE]
        async with running(peer) as client:
            assert await client.wait_ready(5)
            other = make_recording_id(CALL, "call", 1)
            start = cmds.StartRecording(CALL, other, "PJSIP/alice-1", "/tmp/r/a.wav")
            (started,) = await client.execute(start)
            peer.variables["PJSIP/alice-1"] = {C.VAR_EARLY_MMID: started.pbx_ref}
            await client.execute(cmds.StopRecording(CALL, make_recording_id(CALL, "call", 2), "PJSIP/alice-1",
                                                    handed_over=True, pbx_started=False))
            assert peer.actions("StopMixMonitor") == []
            await client.execute(cmds.StopRecording(CALL, other, "PJSIP/alice-1"))  # its own: by its ID
            assert [a["mixmonitorid"] for a in peer.actions("StopMixMonitor")] == [started.pbx_ref]
