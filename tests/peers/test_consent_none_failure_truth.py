"""A ``consent: none`` recording started in the FastAGI consent session, then a failure: what the
dialplan hears (``PBXREC_RESULT``) must match what runs and what the catalog says.

The daemon end to end over in-process peers (AMI peer + a fake Asterisk speaking FastAGI, as
tests/peers/test_daemon.py).  The defect (adversarial review): the session failed after the
core had started the call's MixMonitor; ``PBXREC_RESULT`` never reached the channel, so the
snippet took its fail direction ("unrecorded", CDR userfield ``unavailable``) while the
MixMonitor ran on and the catalog said recorded.  Now:

* the result "record" reached the channel (in band, by the core or the session): the call is
  recorded, truthfully, and stays so (no ``failed`` resolution);
* it cannot be confirmed: the core resolves the call ``failed`` (MixMonitor stopped over AMI,
  the recording discarded: the catalog says not recorded), and the MixMonitor kept its ID in
  ``PBXREC_DIALOGUE_MMID``, which the snippet's fail direction stops even with the recorder dead;
* the MixMonitor itself failed: ``PBXREC_RESULT=record`` is never set (the catalog says not
  recorded; the snippet's fail direction is the truth).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from ami_peer import AmiPeer
from fake_asterisk_agi import InbandChannel, converse, env_block
from test_daemon import CALL, CHANNEL, daemon_running, free_port, start_call, until, write_config

pytestmark = pytest.mark.timeout(60)
ENV = env_block(["direction=inbound", "dialed=4930123456", "linkedid=100.1"], channel=CHANNEL,
                uniqueid="100.1")


def none_config(tmp: Path, ami_port: int, agi_port: int) -> Path:
    """The daemon test's configuration with one ``consent: none`` rule for inbound calls."""
    path = write_config(tmp, ami_port, agi_port)
    text = path.read_text()
    path.write_text(text.replace("consent: explicit, refusal: {hangup: true}", "consent: none"))
    assert "consent: none" in path.read_text()
    return path


class Failing(InbandChannel):
    """Asterisk's AGI with some commands failing on a live channel (``200 result=-1``, and
    ``CHANNEL STATUS`` says the channel is up): ``refuse`` are the variable names whose ``SET
    VARIABLE`` fails; ``mixmonitor_fails``: ``EXEC MixMonitor`` fails."""

    def __init__(self, refuse: tuple[str, ...] = (), *, mixmonitor_fails: bool = False) -> None:
        super().__init__()
        self.refuse, self.mixmonitor_fails = refuse, mixmonitor_fails

    def __call__(self, command: str) -> str | None:
        if command == "CHANNEL STATUS":
            return "200 result=6"  # up: a failure of ours, not the caller's hang-up
        if command.startswith("SET VARIABLE ") and command.split(" ")[2].strip('"') in self.refuse:
            return "200 result=-1"
        if command.startswith("EXEC MixMonitor ") and self.mixmonitor_fails:
            return "200 result=-1"
        return super().__call__(command)


async def run_call(tmp_path: Path, channel: Failing) -> tuple[list[str], AmiPeer, object]:
    agi_port = free_port()
    async with AmiPeer() as peer:
        async with daemon_running(none_config(tmp_path, peer.port, agi_port)) as daemon:
            await start_call(peer)
            commands = await asyncio.to_thread(converse, agi_port, ENV, channel)
            await until(lambda: daemon.app.callbook.state(CALL) in ("recording", "not_recorded"))
            await asyncio.sleep(0.2)  # a stop over AMI, if any, goes out now
            snapshot = daemon.app.callbook.snapshot(CALL)
            return commands, peer, snapshot


async def test_result_lost_after_the_start_stops_and_discards_the_recording(tmp_path: Path) -> None:
    """The reviewer's case: the MixMonitor runs, no ``PBXREC_RESULT`` reaches the channel."""
    channel = Failing(("PBXREC_RESULT", "PBXREC_CONSENT"))
    commands, peer, snap = await run_call(tmp_path, channel)
    assert "PBXREC_RESULT" not in channel.variables  # the snippet takes its fail direction ...
    (mixmonitor,) = channel.mixmonitors
    # ... whose StopMixMonitor(${PBXREC_DIALOGUE_MMID}) stops this MixMonitor, recorder dead or not
    assert mixmonitor["options"].startswith("i(PBXREC_DIALOGUE_MMID)")
    mmid = channel.variables["PBXREC_DIALOGUE_MMID"]
    # and the recorder stopped it itself (over AMI: the AGI channel would not take commands)
    assert [a.get("mixmonitorid") for a in peer.actions("StopMixMonitor")] == [mmid]
    assert isinstance(snap, dict)
    assert snap["state"] == "not_recorded" and snap["consent_decision"] == "failed"
    assert snap["consent_evidence"]["decision"] == "failed"
    assert all(r["state"] == "discarded" for r in snap["recordings"]), snap["recordings"]


async def test_result_set_then_a_failure_stays_recorded(tmp_path: Path) -> None:
    """``PBXREC_RESULT=record`` reached the channel (the core's in-band set), then the session's
    own ``PBXREC_CONSENT`` failed: the call IS recorded and the dialplan says so; nothing stops."""
    channel = Failing(("PBXREC_CONSENT",))
    commands, peer, snap = await run_call(tmp_path, channel)
    assert channel.variables["PBXREC_RESULT"] == "record"
    assert len(channel.mixmonitors) == 1 and not peer.actions("StopMixMonitor")
    assert not any(c.startswith("EXEC StopMixMonitor") for c in commands)
    assert isinstance(snap, dict)
    assert snap["state"] == "recording" and snap["consent_decision"] == "not_required"


async def test_core_result_lost_then_confirmed_by_the_session(tmp_path: Path) -> None:
    """The core's in-band ``PBXREC_RESULT`` failed, the session's own set went through: recorded."""

    class FirstResultFails(Failing):
        def __call__(self, command: str) -> str | None:
            if command.startswith("SET VARIABLE PBXREC_RESULT") and "PBXREC_RESULT" not in self.refuse:
                self.refuse = ("PBXREC_RESULT",)  # the first one fails, the next goes through
                reply = super().__call__(command)
                return reply
            if command.startswith("SET VARIABLE PBXREC_RESULT"):
                self.refuse = ()
            return super().__call__(command)

    channel = FirstResultFails()
    _, peer, snap = await run_call(tmp_path, channel)
    assert channel.variables["PBXREC_RESULT"] == "record" and not peer.actions("StopMixMonitor")
    assert isinstance(snap, dict) and snap["state"] == "recording"


async def test_failed_mixmonitor_never_says_record(tmp_path: Path) -> None:
    """The reverse lie: MixMonitor failed, yet the core's ``PBXREC_RESULT=record`` went out in band
    after it and the dialplan said recorded while the catalog said not recorded."""
    channel = Failing(mixmonitor_fails=True)
    commands, _, snap = await run_call(tmp_path, channel)
    assert channel.variables.get("PBXREC_RESULT", "") == ""  # the snippet's fail direction: true
    assert isinstance(snap, dict) and snap["state"] == "not_recorded" and snap["result"] == "failed"


# -- the quick decision before answer (consent/early_decide.py) -------------------------------

SNIPPET = Path(__file__).resolve().parents[2] / "dialplan" / "asterisk" / "pbx-recorder.conf"


def snippet_lines() -> list[str]:
    return [line.split(";", 1)[0].strip() for line in SNIPPET.read_text().splitlines()
            if line.strip().startswith(("exten", "same"))]


async def test_decide_failed_after_the_hand_over_then_the_consent_session_starts_it(tmp_path: Path) -> None:
    """The quick decision handed the MixMonitor to the dialplan (``PBXREC_EARLY_ARGS``), then
    failed before ``PBXREC_RESULT`` reached the channel: the snippet answers and runs the consent
    AGI, which says "record" (the core decided, and waits for the snippet's start).  That branch
    must run the handed-over MixMonitor: it used to ``Return`` with nothing recording while the
    dialplan and the catalog said recorded."""
    agi_port = free_port()
    async with AmiPeer() as peer:
        async with daemon_running(none_config(tmp_path, peer.port, agi_port)) as daemon:
            await peer.emit({"Event": "Newchannel", "Channel": CHANNEL, "Uniqueid": "100.1",
                             "Linkedid": "100.1", "ChannelState": "4", "CallerIDNum": "4915112345678",
                             "Exten": "4930123456", "Context": "from-trunk"})
            ringing = Failing(("PBXREC_RESULT", "PBXREC_CONSENT"))
            decide_env = env_block(["direction=inbound", "dialed=4930123456", "linkedid=100.1"],
                                   channel=CHANNEL, uniqueid="100.1", script="decide")
            await asyncio.to_thread(converse, agi_port, decide_env, ringing)
            assert "PBXREC_EARLY_ARGS" in ringing.variables and "PBXREC_RESULT" not in ringing.variables
            await peer.emit({"Event": "Newstate", "Channel": CHANNEL, "Uniqueid": "100.1",
                             "Linkedid": "100.1", "ChannelState": "6", "ChannelStateDesc": "Up"})
            answered = Failing()
            answered.variables.update(ringing.variables)  # the same channel: its variables stay
            commands = await asyncio.to_thread(converse, agi_port, ENV, answered)
            assert answered.variables["PBXREC_RESULT"] == "record"
            assert not any(c.startswith("EXEC MixMonitor") for c in commands)  # handed over, not started
            call = daemon.app.callbook.find(CALL)
            assert call is not None and call.state == "recording"
            (rec,) = call.recordings
            assert rec.early and rec.pbx_started_at is None  # the snippet's MixMonitor is awaited
    lines = snippet_lines()
    consent_agi = next(i for i, line in enumerate(lines) if "/consent," in line)
    record = next(line for line in lines[consent_agi:] if '"record"]?' in line)
    assert record.endswith("?decided)")  # the consent AGI's "record" runs the early block ...
    decided = next(i for i, line in enumerate(lines) if "n(decided)" in line)
    assert lines[decided + 1] == 'same => n,GotoIf($["${PBXREC_EARLY_ARGS}" = ""]?done)'
    assert lines[decided + 2] == "same => n,MixMonitor(${PBXREC_EARLY_ARGS})"  # ... which starts it
    assert lines[decided + 3].startswith("same => n,UserEvent(PbxrecEarlyStart,")
