"""Replay of bytes captured from a real FreeSWITCH 1.11.1 (tests/fixtures/esl/, see its README):
the parser at many split points, the normalizer on real events, the client on a real shutdown."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import pytest

from esl.client import EslClient
from esl.frames import EslFrame, EslParser
from esl.normalize import EslNormalizer
from pbx_recorder.config.model import RuleAction, RuleConfig, RuleMatch
from pbx_recorder.core import events as E
from pbx_recorder.core.calls import CallBook
from pbx_recorder.core.commands import FinalizeRecording, StartRecording, UpsertCall

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "esl"
CAPTURES = [
    "call_recorded_masked_stereo",
    "queue_bridge_blind_transfer",
    "queue_attended_transfer",
    "hostile_caller_ids",
    "outbound_consent_session",
    "shutdown_disconnect_notice",
]


def capture(name: str) -> bytes:
    return (FIXTURES / f"{name}.esl").read_bytes()


def frames_of(name: str) -> list[EslFrame]:
    return EslParser().feed(capture(name))


def normalized(name: str) -> tuple[list, EslNormalizer]:
    n = EslNormalizer("pbx1")
    out = []
    for frame in frames_of(name):
        event = frame.event()
        if event is not None:
            out += n.normalize(event, 0.0)
    return out, n


def snapshot(frames: list[EslFrame]) -> list[tuple[dict[str, str], bytes]]:
    return [(dict(f.headers), f.body) for f in frames]


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_parses_the_same_at_any_split(name: str) -> None:
    data = capture(name)
    whole = snapshot(EslParser().feed(data))
    assert whole and whole[-1][0]["Content-Type"] == "text/disconnect-notice"
    rnd = random.Random(name)
    cuts = sorted({*range(1, min(len(data), 400)), *(rnd.randrange(1, len(data)) for _ in range(300))})
    for cut in cuts:
        parser = EslParser()
        assert snapshot(parser.feed(data[:cut]) + parser.feed(data[cut:])) == whole, cut
    parser = EslParser()
    pieces = [parser.feed(data[i : i + 7]) for i in range(0, len(data), 7)]
    assert snapshot([f for p in pieces for f in p]) == whole


def test_recorded_call_gives_one_call_with_its_cdr() -> None:
    out, _ = normalized("call_recorded_masked_stereo")
    assert [type(e).__name__ for e in out] == [
        "ChannelCreated",
        "ChannelAnswered",
        "RecordingStopped",
        "ChannelHungUp",
        "CdrPosted",
    ]
    assert len({e.call_id for e in out}) == 1
    cdr = out[-1]
    assert isinstance(cdr, E.CdrPosted)
    assert cdr.fields["disposition"] == "ANSWERED" and cdr.fields["hangup_cause"] == "NORMAL_CLEARING"
    assert cdr.fields["billsec"].isdigit() and cdr.fields["sip_call_id"]
    assert cdr.fields["userfield"] == "unreachable"  # PBXREC_UNAVAILABLE: the recorder was down
    job = next(
        f.event()
        for f in frames_of("call_recorded_masked_stereo")
        if f.event() is not None and f.event().name == "BACKGROUND_JOB"
    )  # type: ignore[union-attr]
    assert job is not None and job.body.strip() and job.get("Job-UUID")


def test_queue_call_agent_and_blind_transfer_stay_one_call() -> None:
    out, _ = normalized("queue_bridge_blind_transfer")
    kinds = [type(e).__name__ for e in out]
    assert kinds.index("QueueCallerJoined") < kinds.index("AgentConnected") < kinds.index("Bridged")
    assert len({e.call_id for e in out}) == 1  # member, agent and the transfer: one call
    agent = next(e for e in out if isinstance(e, E.AgentConnected))
    assert agent.agent == "agent1@default" and agent.queue == "support@default" and agent.agent_channel
    transferred = [e for e in out if isinstance(e, E.Transferred)]
    assert len(transferred) == 1 and transferred[0].kind == "blind"
    assert transferred[0].channel == agent.agent_channel  # the agent transferred the caller away
    cdrs = [e for e in out if isinstance(e, E.CdrPosted)]
    assert len(cdrs) == 1 and cdrs[0].channel_id == agent.channel_id  # the member's (root) CDR


def test_queue_call_attended_transfer_stays_one_call() -> None:
    """att_xfer by the agent (caller held, agent consults the colleague, the agent hangs up):
    the agent's leg, the consultation leg and the colleague are all legs of the caller's call;
    one attended Transferred, by the agent, to the colleague; the caller's leg keeps its root."""
    out, _ = normalized("queue_attended_transfer")
    assert len({e.call_id for e in out}) == 1
    agent = next(e for e in out if isinstance(e, E.AgentConnected))
    member = agent.channel_id
    created = [e.channel_id for e in out if isinstance(e, E.ChannelCreated)]
    assert len(created) == 3 and created[:2] == [member, agent.agent_channel]
    colleague = created[2]  # originated by att_xfer from the agent's leg (the consultation)
    transferred = [e for e in out if isinstance(e, E.Transferred)]
    assert [(t.kind, t.channel, t.target_channel) for t in transferred] == [
        ("attended", agent.agent_channel, colleague)
    ]
    bridges = [e for e in out if isinstance(e, E.Bridged)]
    assert out.index(transferred[0]) == out.index(bridges[-1]) - 1  # reported with the completing bridge
    cdrs = [e for e in out if isinstance(e, E.CdrPosted)]
    assert len(cdrs) == 1 and cdrs[0].channel_id == member


def test_attended_transfer_capture_through_the_core_keeps_one_recording() -> None:
    """The same frames drive the core: one call, one recording on the caller's leg from the
    agent's bridge to the caller's hang-up (not stopped by the consultation or the transfer),
    the call flagged transferred, every leg (consultation included) in its uniqueids."""
    out, _ = normalized("queue_attended_transfer")
    rule = RuleConfig("all", RuleMatch(), RuleAction(record="yes", start_on="bridge"))
    book = CallBook("pbx1", "/var/rec", [rule], gosub_grace_s=0.0)
    commands: list = []
    for item in out:
        commands += book.handle(item, item.at)
        commands += book.tick(item.at + 0.1)
    starts = [c for c in commands if isinstance(c, StartRecording)]
    member = next(e for e in out if isinstance(e, E.AgentConnected)).channel_id
    assert [c.channel for c in starts] == [member]
    finals = [c for c in commands if isinstance(c, FinalizeRecording)]
    assert len(finals) == 1
    rows = [c.row for c in commands if isinstance(c, UpsertCall)]
    assert {r["call_id"] for r in rows} == {out[0].call_id}
    assert "transferred" in json.loads(rows[-1]["flags"])
    assert len(json.loads(rows[-1]["uniqueids"])) == 3
    hangup = next(e for e in out if isinstance(e, E.ChannelHungUp) and e.channel_id == member)
    assert finals[0].metadata["recorded_to"] == hangup.at


def test_hostile_caller_ids_are_cut_and_counted() -> None:
    out, n = normalized("hostile_caller_ids")
    created = [e for e in out if isinstance(e, E.ChannelCreated)]
    assert len(created) == 3 and len({e.call_id for e in created}) == 3
    for e in created:
        for value in (e.caller_num, e.caller_name, e.exten):
            assert "\r" not in value and "\n" not in value and len(value) <= 80
    assert n.injections == 1  # the CR LF number
    assert not [
        e
        for e in out
        if not isinstance(e, E.ChannelCreated | E.ChannelAnswered | E.ChannelHungUp | E.CdrPosted)
    ]  # nothing forged


def test_outbound_session_carries_the_channel_data_and_the_digit() -> None:
    frames = frames_of("outbound_consent_session")
    connect = frames[0]
    assert connect.content_type == "command/reply"
    assert connect.headers["Unique-ID"] and connect.headers["variable_PBXREC_DIRECTION"] == "inbound"
    completes = [
        f.event() for f in frames if f.event() is not None and f.event().name == "CHANNEL_EXECUTE_COMPLETE"
    ]  # type: ignore[union-attr]
    pagd = [e for e in completes if e is not None and e.get("Application") == "play_and_get_digits"]
    assert len(pagd) == 1 and pagd[0].get("variable_pbxrec_digit_1") == "1"
    assert all(e is not None and e.get("Application-UUID") for e in completes)  # what the session waits on


async def test_client_survives_a_real_shutdown_notice_and_reconnects() -> None:
    """A server that plays the captured shutdown (auth/request, +OK x2, disconnect notice, close)."""
    data = capture("shutdown_disconnect_notice")
    connections = 0
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        frames = data.split(b"\n\n")
        writer.write(frames[0] + b"\n\n")  # auth/request
        received.append(await reader.readuntil(b"\n\n"))  # auth
        writer.write(b"\n\n".join(frames[1:2]) + b"\n\n")
        received.append(await reader.readuntil(b"\n\n"))  # event plain
        writer.write(b"\n\n".join(frames[2:]))  # +OK event listener, the notice, then close
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = EslClient(
        host="127.0.0.1",
        port=port,
        password="ClueCon",
        normalizer=EslNormalizer("pbx1"),
        backoff_min=0.05,
        backoff_max=0.1,
        api_timeout=2.0,
        connect_timeout=2.0,
    )
    task = asyncio.create_task(client.run())
    try:

        async def two() -> None:
            while connections < 2:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(two(), 10)
        assert client.connects >= 1 and received[0] == b"auth ClueCon\n\n"
        assert received[1].startswith(b"event plain CHANNEL_CREATE")
    finally:
        await client.close()
        await asyncio.wait_for(task, 5)
        server.close()
        await server.wait_closed()
