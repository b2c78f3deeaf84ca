"""Over TCP: a caller that forges remainders again and again (each one asks for a resync) gets the
live channels read once at once, then once more after the pacing interval, not once per forgery."""

from __future__ import annotations

import asyncio

from ami_peer import AmiPeer
from test_ami_client import CHANNEL, next_events, running

from pbx_recorder.core import events as ev
from tests.unit.test_ami_framing_forged_after_remainder import fake_remainder_stream


async def test_repeated_forged_remainders_give_coalesced_paced_resyncs() -> None:
    async with AmiPeer() as peer:
        peer.channels = [CHANNEL]
        async with running(peer) as client:
            assert await client.wait_ready(5)
            await next_events(client, 2)  # the connect's LiveChannel, ResyncCompleted
            client.resync_pacer.interval = 0.5
            before, remainder = fake_remainder_stream()
            for _ in range(10):
                await peer.send_raw(before + remainder)
                await asyncio.sleep(0.01)
            await peer.wait_action("CoreShowChannels", count=2)
            await asyncio.sleep(0.2)
            assert client.resyncs_asked == 10
            assert len(peer.actions("CoreShowChannels")) == 2  # before: up to one per ask
            await peer.wait_action("CoreShowChannels", count=3, timeout=3)  # the coalesced one: not lost
            await asyncio.sleep(0.7)
            assert len(peer.actions("CoreShowChannels")) == 3
            got = await next_events(client, 14)
            lost = [e for e in got if isinstance(e, ev.PbxEventsLost)]
            assert len(lost) == 10  # each forgery tells the core where events may have been lost
            rest = [e for e in got if not isinstance(e, ev.PbxEventsLost)]
            assert [type(e) for e in rest] == [ev.LiveChannel, ev.ResyncCompleted] * 2, got
            assert rest[-1].complete  # the coalesced resync read after the last forgery is whole
            assert client.connected and client.connects == 1
