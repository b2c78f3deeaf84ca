"""Over TCP: a fake remainder (a caller ID without the 79-byte bound) and the forged block after
it are dropped, the link stays up, and the client reads the live channels again (CoreShowChannels)
because the blocks it dropped may have held genuine events."""

from __future__ import annotations

import asyncio

from ami_peer import AmiPeer
from test_ami_client import CHANNEL, next_events, running

from pbx_recorder.core import events as ev
from tests.unit.test_ami_framing_forged_after_remainder import VICTIM, fake_remainder_stream


async def test_a_fake_remainder_is_dropped_and_the_live_channels_are_read_again() -> None:
    async with AmiPeer() as peer:
        peer.channels = [CHANNEL]
        async with running(peer) as client:
            assert await client.wait_ready(5)
            await next_events(client, 2)  # LiveChannel, ResyncCompleted
            before, remainder = fake_remainder_stream()
            await peer.send_raw(before + remainder)
            await peer.wait_action("CoreShowChannels", count=2)
            got = await next_events(client, 3)
            # the core hears where events may have been lost (its MixMonitor counts), then the resync
            assert [type(e) for e in got] == [ev.PbxEventsLost, ev.LiveChannel, ev.ResyncCompleted], got
            assert got[2].complete
            assert not any(getattr(e, "channel_id", "") == VICTIM for e in got)
            assert client.framing.forged >= 1 and client.resyncs_asked == 1
            assert client.connected and client.connects == 1
            await asyncio.sleep(0.05)
            assert client._queue.empty()  # nothing for the victim's call was queued
