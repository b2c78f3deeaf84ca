"""ami.client against the in-process AMI peer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
from ami_peer import AmiPeer

from ami.client import AmiClient
from ami.normalize import Normalizer
from pbx_recorder.core import commands as cmds
from pbx_recorder.core import events as ev
from pbx_recorder.core.naming import make_call_id, make_recording_id
from pbx_recorder.errors import AmiActionError, PbxDisconnected
from pbx_recorder.reconnect import backoff_delay

CALL = make_call_id("pbx1", "100.1")
REC = make_recording_id(CALL, "call", 1)
CHANNEL = {
    "Channel": "PJSIP/alice-1",
    "ChannelState": "6",
    "ChannelStateDesc": "Up",
    "CallerIDNum": "100",
    # the whole snapshot, as Asterisk sends it (a cut-short one marks a framing injection)
    "CallerIDName": "Alice",
    "ConnectedLineNum": "<unknown>",
    "ConnectedLineName": "<unknown>",
    "Language": "en",
    "AccountCode": "",
    "Context": "from-trunk",
    "Exten": "8001",
    "Priority": "1",
    "Uniqueid": "100.1",
    "Linkedid": "100.1",
    "BridgeId": "b1",
}


@contextlib.asynccontextmanager
async def running(peer: AmiPeer, **kw: object) -> AsyncIterator[AmiClient]:
    params: dict[str, object] = dict(
        host="127.0.0.1",
        port=peer.port,
        username="recorder",
        secret="s3cret",
        normalizer=Normalizer("pbx1"),
        backoff_min=0.05,
        backoff_max=0.2,
        boot_timeout=2.0,
        action_timeout=2.0,
    )
    params.update(kw)
    client = AmiClient(**params)  # type: ignore[arg-type]
    task = asyncio.create_task(client.run())
    try:
        yield client
    finally:
        await client.close()
        await asyncio.wait_for(task, 5)


async def next_events(client: AmiClient, count: int, timeout: float = 5.0) -> list[object]:
    got: list[object] = []

    async def collect() -> None:
        async for item in client.events():
            got.append(item)
            if len(got) >= count:
                return

    await asyncio.wait_for(collect(), timeout)
    return got


async def test_login_fully_booted_resync_and_event_flow() -> None:
    async with AmiPeer() as peer:
        peer.channels = [CHANNEL]
        peer.variables = {"PJSIP/alice-1": {"PBXREC_RESULT": "record"}}
        async with running(peer) as client:
            assert await client.wait_ready(5)
            assert client.version == "5.0.1"
            live, done = await next_events(client, 2)
            assert isinstance(live, ev.LiveChannel)
            assert (live.call_id, live.channel, live.state, live.bridged) == (
                CALL,
                "PJSIP/alice-1",
                "up",
                True,
            )
            assert live.variables == {"PBXREC_RESULT": "record"}
            assert done == ev.ResyncCompleted(at=done.at, live_call_ids=frozenset({CALL}))  # type: ignore[attr-defined]
            await peer.emit(
                {
                    "Event": "Newstate",
                    "Channel": "PJSIP/alice-1",
                    "ChannelState": "6",
                    "Uniqueid": "100.1",
                    "Linkedid": "100.1",
                }
            )
            await peer.emit({"Event": "PeerStatus", "Peer": "PJSIP/x"})
            await peer.emit(
                {
                    "Event": "Hangup",
                    "Channel": "PJSIP/alice-1",
                    "Uniqueid": "100.1",
                    "Linkedid": "100.1",
                    "Cause": "16",
                    "Cause-txt": "Normal Clearing",
                }
            )
            answered, hung = await next_events(client, 2)
            assert isinstance(answered, ev.ChannelAnswered) and answered.call_id == CALL
            assert isinstance(hung, ev.ChannelHungUp) and hung.cause == 16


async def test_login_waits_for_fully_booted() -> None:
    async with AmiPeer() as peer:
        peer.send_fully_booted = False
        async with running(peer, boot_timeout=10.0) as client:
            await peer.wait_logins(1)
            assert not await client.wait_ready(0.3)  # logged in, but Asterisk is not booted yet
            assert peer.actions("CoreShowChannels") == []
            await peer.emit({"Event": "FullyBooted", "Status": "Fully Booted"})
            assert await client.wait_ready(5)
            await peer.wait_action("CoreShowChannels")


async def test_fully_booted_wait_is_bounded() -> None:
    async with AmiPeer() as peer:
        peer.send_fully_booted = False
        async with running(peer, boot_timeout=0.2) as client:
            assert await client.wait_ready(5)


async def test_start_recording_reports_mixmonitor_id_and_stop_uses_it() -> None:
    async with AmiPeer() as peer:
        peer.channels = [CHANNEL]
        async with running(peer) as client:
            assert await client.wait_ready(5)
            out = await client.execute(
                cmds.StartRecording(
                    call_id=CALL, recording_id=REC, channel="PJSIP/alice-1", path="/tmp/rec/a.wav"
                )
            )
            assert len(out) == 1 and isinstance(out[0], ev.RecordingStarted)
            assert out[0].pbx_ref == "0x00000001" and out[0].recording_id == REC
            await client.execute(cmds.StopRecording(call_id=CALL, recording_id=REC, channel="PJSIP/alice-1"))
            stop = peer.actions("StopMixMonitor")[0]
            assert stop["mixmonitorid"] == "0x00000001"
            mm = peer.actions("MixMonitor")[0]
            assert mm["command"] == "touch /tmp/rec/a.wav.closed"
            assert "commandid" not in mm


async def test_action_error_is_typed_logged_and_client_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async with AmiPeer() as peer:
        peer.channels = [CHANNEL]
        async with running(peer) as client:
            assert await client.wait_ready(5)
            with pytest.raises(AmiActionError) as info:
                await client.execute(
                    cmds.StartRecording(
                        call_id=CALL, recording_id=REC, channel="PJSIP/ghost-9", path="/tmp/rec/a.wav"
                    )
                )
            assert info.value.call_id == CALL and "No such channel" in str(info.value)
            peer.errors["MixMonitorMute"] = "Cannot set mute flag"
            with pytest.raises(AmiActionError, match="Cannot set mute flag"):
                await client.execute(cmds.MuteRecording(call_id=CALL, channel="PJSIP/alice-1", muted=True))
            reply = await client.send({"Action": "Ping"})
            assert reply["Ping"] == "Pong"


async def test_header_injection_is_refused_before_sending() -> None:
    async with AmiPeer() as peer:
        async with running(peer) as client:
            assert await client.wait_ready(5)
            before = len(peer.received)
            with pytest.raises(AmiActionError) as info:
                await client.execute(
                    cmds.SetChannelVar(
                        call_id=CALL,
                        channel="PJSIP/alice-1",
                        name="PBXREC_X",
                        value="1\r\nAction: Originate\r\nChannel: Local/666",
                    )
                )
            assert info.value.call_id == CALL
            await client.send({"Action": "Ping"})
            assert [a["action"] for a in peer.received[before:]] == ["Ping"]
            assert peer.actions("Originate") == []


async def test_malformed_frames_do_not_break_the_connection() -> None:
    async with AmiPeer() as peer:
        async with running(peer) as client:
            assert await client.wait_ready(5)
            await next_events(client, 1)  # ResyncCompleted
            await peer.send_raw(
                b"garbage without colon\r\n\r\nEvent: Hangup\r\nCause: x\r\n\r\n"
                b"Event: Newstate\r\nChannelState: 6\r\n\r\n\xff\xfe\r\n\r\n"
            )
            await peer.emit(
                {
                    "Event": "Newstate",
                    "Channel": "PJSIP/b-2",
                    "ChannelState": "6",
                    "Uniqueid": "200.2",
                    "Linkedid": "200.1",
                }
            )
            (answered,) = await next_events(client, 1)
            assert isinstance(answered, ev.ChannelAnswered) and answered.channel_id == "200.2"
            assert client.connected


async def test_disconnect_fails_pending_actions_then_reconnects_with_resync() -> None:
    async with AmiPeer() as peer:
        peer.channels = [CHANNEL]
        async with running(peer) as client:
            assert await client.wait_ready(5)
            await next_events(client, 2)  # first resync
            peer.hold.add("MixMonitor")
            pending = asyncio.create_task(
                client.execute(
                    cmds.StartRecording(
                        call_id=CALL, recording_id=REC, channel="PJSIP/alice-1", path="/tmp/r/a.wav"
                    )
                )
            )
            await peer.wait_action("MixMonitor")
            await peer.drop()
            with pytest.raises(PbxDisconnected) as info:
                await asyncio.wait_for(pending, 3)
            assert info.value.call_id == CALL
            with pytest.raises(PbxDisconnected):
                await client.send({"Action": "Ping"})
            peer.channels = []
            await peer.wait_logins(2)
            assert await client.wait_ready(5)
            lost, done = await next_events(client, 2)
            assert isinstance(lost, ev.PbxLinkLost)  # the core learns the link went down
            assert done == ev.ResyncCompleted(at=done.at, live_call_ids=frozenset())  # type: ignore[attr-defined]
            assert len(peer.actions("MixMonitor")) == 1  # never re-sent after the reconnect
            assert client.connects == 2


async def test_login_failure_backs_off_and_retries(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ami.client")
    async with AmiPeer(secret="other") as peer:
        async with running(peer) as client:

            async def three() -> None:
                while len(peer.actions("Login")) < 3:
                    await asyncio.sleep(0.02)

            await asyncio.wait_for(three(), 5)
            assert not client.connected
    assert "login refused" in caplog.text and "reconnect in" in caplog.text
    assert "other" not in caplog.text and "s3cret" not in caplog.text


async def test_unreachable_pbx_does_not_hang() -> None:
    async with AmiPeer() as peer:
        port = peer.port
    client = AmiClient(
        host="127.0.0.1",
        port=port,
        username="u",
        secret="s",
        normalizer=Normalizer("n"),
        backoff_min=0.01,
        backoff_max=0.05,
    )
    task = asyncio.create_task(client.run())
    with pytest.raises(PbxDisconnected):
        await client.send({"Action": "Ping"})
    await asyncio.sleep(0.1)
    await client.close()
    await asyncio.wait_for(task, 2)
    assert not client.connected


def test_backoff_grows_is_capped_and_jittered() -> None:
    lows = [backoff_delay(a, 0.5, 30.0, lambda: 0.0) for a in range(10)]
    highs = [backoff_delay(a, 0.5, 30.0, lambda: 1.0) for a in range(10)]
    assert highs[:4] == [0.5, 1.0, 2.0, 4.0] and highs[-1] == 30.0
    assert lows[:3] == [0.25, 0.5, 1.0] and lows[-1] == 15.0
    assert all(lo <= hi for lo, hi in zip(lows, highs, strict=True))
    assert backoff_delay(1000, 0.5, 30.0, lambda: 0.5) == 22.5


async def test_call_ids_carry_the_pbx_start_time_and_change_with_a_restart() -> None:
    async with AmiPeer() as peer:
        peer.startup = ("2026-12-01", "15:00:00")
        peer.channels = [CHANNEL]
        async with running(peer) as client:
            assert await client.wait_ready(5)
            booted, live, _ = await next_events(client, 3)
            assert booted == ev.PbxBooted(at=booted.at, boot="20261201150000")  # type: ignore[attr-defined]
            assert live.call_id == make_call_id("pbx1", "100.1", "20261201150000")  # type: ignore[attr-defined]
            peer.startup = ("2026-12-01", "15:00:07")  # a fast restart: linkedid 100.1 comes back
            await peer.drop()
            await peer.wait_logins(2)
            lost, booted, live, _ = await next_events(client, 4)
            assert isinstance(lost, ev.PbxLinkLost) and booted.boot == "20261201150007"  # type: ignore[attr-defined]
            assert live.call_id == make_call_id("pbx1", "100.1", "20261201150007")  # type: ignore[attr-defined]


async def test_slow_ping_on_a_busy_link_keeps_the_connection() -> None:
    """Under load a Ping reply can take longer than the action timeout while Asterisk keeps
    sending events: reconnecting then (and resyncing every live channel) only adds load."""
    async with AmiPeer() as peer, running(peer, ping_interval=0.2, action_timeout=0.3) as client:
        assert await client.wait_ready(5)
        peer.hold.add("Ping")
        for _ in range(20):  # 2 s of a busy link: events keep coming, Ping never answers
            await peer.emit({"Event": "Newstate", "Channel": "PJSIP/a-1", "Uniqueid": "1.1",
                             "Linkedid": "1.1", "ChannelState": "6"})
            await asyncio.sleep(0.1)
        assert client.connects == 1 and client.connected
        await asyncio.sleep(1.0)  # silence and no Ping reply: the link is dead, reconnect
        assert client.connects >= 2


class _LateReplyPeer(AmiPeer):
    """Asterisk answers MixMonitor at once, but the recorder reads the answer 4 s late, behind an
    event Asterisk stamped just before it (a starved recorder host)."""

    def __init__(self, now: list[float]) -> None:
        super().__init__()
        self.now = now

    def _reply(self, name: str, aid: str, frame: dict[str, object]) -> list[list[tuple[str, str]]]:
        replies = super()._reply(name, aid, frame)
        if name.lower() != "mixmonitor":
            return replies
        started = self.now[0] + 0.2
        self.now[0] += 4.0  # what the recorder's clock says when it reads these frames
        event = [("Event", "Newstate"), ("Privilege", "call,all"), ("Timestamp", f"{started:.6f}"),
                 *CHANNEL.items()]
        return [event, *replies]


async def test_a_start_confirmed_late_is_timed_back_by_the_streams_lag() -> None:
    now = [1_732_200_000.0]
    async with _LateReplyPeer(now) as peer:
        peer.channels = [CHANNEL]
        async with running(peer, clock=lambda: now[0]) as client:
            assert await client.wait_ready(5)
            sent = now[0]
            out = await client.execute(
                cmds.StartRecording(call_id=CALL, recording_id=REC, channel="PJSIP/alice-1",
                                    path="/tmp/a.wav"))
            (started,) = out
            assert isinstance(started, ev.RecordingStarted)
            # not the 4 s late read time: the reply came right after the event stamped sent + 0.2 s
            assert started.at == pytest.approx(sent + 0.2, abs=0.01), (started.at - sent)
