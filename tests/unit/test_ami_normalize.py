"""ami.normalize: the dispatch table over fixture transcripts, malformed frames survive."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ami.frames import parse_transcript
from ami.normalize import HANDLERS, Normalizer
from pbx_recorder.core import events as ev
from pbx_recorder.core.naming import make_call_id

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "peers" / "transcripts"
CORE_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
NOW = 1_732_200_000.0


def run(name: str, node: str = "pbx1") -> tuple[Normalizer, list[object]]:
    n = Normalizer(node)
    out: list[object] = []
    for frame in parse_transcript((TRANSCRIPTS / name).read_bytes()):
        out.extend(n.normalize(frame, NOW))
    return n, out


def test_basic_call_events() -> None:
    n, out = run("basic_call.txt")
    cid = make_call_id("pbx1", "1732200000.1")
    kinds = [type(e).__name__ for e in out]
    assert kinds == [
        "ChannelCreated",
        "ChannelAnswered",
        "VariableSet",
        "ChannelCreated",
        "Bridged",
        "MixMonitorStarted",  # every MixMonitor of the channel is counted (core/mixmonitor_order.py)
        "RecordingMuted",
        "RecordingMuted",
        "Unbridged",
        "CdrPosted",
        "ChannelHungUp",
    ]
    assert all(e.call_id == cid for e in out)  # type: ignore[attr-defined]
    created = out[0]
    assert isinstance(created, ev.ChannelCreated)
    assert (created.channel, created.caller_num, created.exten, created.context, created.account_code) == (
        "PJSIP/alice-00000001",
        "4915112345678",
        "4930123456",
        "from-trunk",
        "acct7",
    )
    assert out[2] == ev.VariableSet(
        at=NOW,
        call_id=cid,
        channel_id="1732200000.1",
        channel="PJSIP/alice-00000001",
        name="PBXREC_RESULT",
        value="record",
    )
    bridged = out[4]
    assert (
        isinstance(bridged, ev.Bridged)
        and bridged.bridge_channels == 2
        and bridged.bridge_id == "5e1c-bridge"
    )
    assert [e.muted for e in out if isinstance(e, ev.RecordingMuted)] == [True, False]
    started = out[5]
    assert isinstance(started, ev.MixMonitorStarted) and started.channel == "PJSIP/alice-00000001"
    cdr = out[9]
    assert isinstance(cdr, ev.CdrPosted)
    assert cdr.fields["billsec"] == "60" and cdr.fields["duration"] == "62"
    assert cdr.fields["src"] == "4915112345678" and cdr.fields["dst"] == "4930123456"
    assert cdr.fields["dcontext"] == "from-trunk" and cdr.fields["dstchannel"] == "PJSIP/bob-00000002"
    assert cdr.fields["lastapp"] == "Dial" and cdr.fields["disposition"] == "ANSWERED"
    assert cdr.fields["start"] == "2024-11-21 15:00:00" and cdr.fields["userfield"] == ""
    assert "linkedid" not in cdr.fields
    hangup = out[-1]
    assert (
        isinstance(hangup, ev.ChannelHungUp) and hangup.cause == 16 and hangup.cause_text == "Normal Clearing"
    )
    assert n.uniqueid_of("PJSIP/bob-00000002") == "1732200000.2"


def test_transfers_queue_and_malformed_frames(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ami.normalize")
    n, out = run("transfers_and_junk.txt")
    cid = make_call_id("pbx1", "1732200100.3")
    joined, agent, blind, attended = out[:4]
    assert joined == ev.QueueCallerJoined(
        at=NOW, call_id=cid, channel_id="1732200100.3", channel="PJSIP/carol-00000003", queue="support"
    )
    assert isinstance(agent, ev.AgentConnected)
    assert (agent.agent, agent.agent_channel, agent.queue) == (
        "Agent Seven",
        "PJSIP/agent7-00000004",
        "support",
    )
    assert isinstance(blind, ev.Transferred) and blind.kind == "blind" and blind.call_id == cid
    assert blind.target_channel == "PJSIP/carol-00000003"
    assert isinstance(attended, ev.Transferred) and attended.kind == "attended"
    assert attended.target_call_id == make_call_id("pbx1", "1732200100.6")
    assert attended.target_channel == "PJSIP/dave-00000007"
    # bad numbers: the event survives with 0, the problem is logged
    hangup = next(e for e in out if isinstance(e, ev.ChannelHungUp))
    assert hangup.cause == 0 and hangup.call_id == cid
    bridged = next(e for e in out if isinstance(e, ev.Bridged))
    assert bridged.bridge_channels == 0
    # Cdr without Linkedid is matched by UniqueID; an unknown one is dropped with a warning
    cdrs = [e for e in out if isinstance(e, ev.CdrPosted)]
    assert len(cdrs) == 1 and cdrs[0].call_id == cid and cdrs[0].fields["billsec"] == "38"
    assert n.malformed == 4  # ghost hangup, bad Cause, bad BridgeNumChannels, unknown Cdr
    text = caplog.text
    assert "bad number cause='sixteen'" in text
    assert "malformed AMI Hangup event" in text and "PJSIP/ghost-00000009" in text
    assert "ignored AMI BlindTransfer: transfer result 'Fail'" in text
    assert "ignored AMI PeerStatus" in text


def test_newstate_other_than_up_is_ignored_with_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ami.normalize")
    n = Normalizer("pbx1")
    got = n.normalize({"Event": "Newstate", "ChannelState": "5", "Uniqueid": "1.1", "Linkedid": "1.1"}, NOW)
    assert got == [] and n.ignored == 1
    assert "ChannelState '5' is not Up (6)" in caplog.text


def test_panoramisk_message_is_accepted() -> None:
    from panoramisk.message import Message

    msg = Message.from_line(
        "Event: Newstate\r\nChannel: PJSIP/x-1\r\nChannelState: 6\r\nUniqueid: 7.1\r\nLinkedid: 7.0"
    )
    out = Normalizer("n1").normalize(msg, NOW)
    assert out == [
        ev.ChannelAnswered(at=NOW, call_id=make_call_id("n1", "7.0"), channel_id="7.1", channel="PJSIP/x-1")
    ]


def test_hostile_and_broken_frames_never_raise() -> None:
    n = Normalizer("pbx1")
    hostile = [
        {},
        {"Event": "Hangup"},
        {"Event": "Hangup", "Linkedid": "1.1"},
        {"Event": "Cdr"},
        {"Event": "Newchannel", "Linkedid": ["a", "b"], "Uniqueid": "x\r\nEvent: Evil"},
        {"Event": "Newchannel", "Linkedid": "../../etc/passwd", "Uniqueid": "9.9", "Channel": "\x00"},
        {"Event": "MixMonitorMute", "Linkedid": "1.2", "Uniqueid": "1.2", "State": None},
        {"Event": "AttendedTransfer", "Result": "Success"},
        {"Event": "CoreShowChannel", "Linkedid": "1.3", "Uniqueid": "1.3", "Timestamp": "soon"},
    ]
    results = [n.normalize(frame, NOW) for frame in hostile]
    assert results[:4] == [[], [], [], []]
    created = results[5][0]
    assert isinstance(created, ev.ChannelCreated)
    assert "/" not in created.call_id.split("_", 1)[1]
    assert isinstance(results[6][0], ev.RecordingMuted) and results[6][0].muted is False
    assert results[7] == []
    assert isinstance(results[8][0], ev.LiveChannel) and results[8][0].at == NOW


def test_dispatch_table_names_the_events_we_need() -> None:
    needed = {
        "Newchannel",
        "Newstate",
        "Hangup",
        "BridgeEnter",
        "BridgeLeave",
        "Cdr",
        "MixMonitorStart",
        "MixMonitorStop",
        "MixMonitorMute",
        "VarSet",
        "QueueCallerJoin",
        "AgentConnect",
        "BlindTransfer",
        "AttendedTransfer",
        "FullyBooted",
        "CoreShowChannel",
        "CoreShowChannelsComplete",
    }
    assert needed <= set(HANDLERS)


def test_core_fixture_transcripts_normalize_without_errors() -> None:
    files = sorted(CORE_FIXTURES.glob("*.txt")) + sorted(TRANSCRIPTS.glob("*.txt"))
    total = 0
    for path in files:
        n = Normalizer("pbx1")
        for frame in parse_transcript(path.read_bytes()):
            for item in n.normalize(frame, NOW):
                assert isinstance(item, ev.CallEvent)
                total += 1
    assert total > 0
