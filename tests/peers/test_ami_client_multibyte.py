"""ami.client over TCP: a multi-byte character split between two reads reaches the core whole
(issue 10: ``张三`` arrived as ``三`` because each read was decoded on its own)."""

from __future__ import annotations

import asyncio

from ami_peer import AmiPeer
from test_ami_client import CHANNEL, next_events, running

from pbx_recorder.core import events as ev

NAME = "张三"


def newchannel(uniqueid: str) -> bytes:
    fields = {**CHANNEL, "CallerIDName": NAME, "Uniqueid": uniqueid, "Linkedid": uniqueid}
    head = "Event: Newchannel\r\nPrivilege: call,all\r\n"  # as Asterisk writes every event
    return (head + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n").encode()


async def test_caller_name_split_at_every_byte_arrives_whole() -> None:
    async with AmiPeer() as peer:
        async with running(peer) as client:
            assert await client.wait_ready(5)
            await next_events(client, 1)  # ResyncCompleted
            sample = newchannel("300.0")
            first = sample.index(NAME.encode())
            cuts = range(first - 1, first + len(NAME.encode()) + 1)  # before, inside and after both
            for n, cut in enumerate(cuts):
                frame = newchannel(f"300.{n}")
                await peer.send_raw(frame[:cut])
                await asyncio.sleep(0.05)  # two separate reads on the client side
                await peer.send_raw(frame[cut:])
                (created,) = await next_events(client, 1)
                assert isinstance(created, ev.ChannelCreated), created
                assert (created.channel_id, created.caller_name) == (f"300.{n}", NAME), cut
            assert client.connected
