"""ami.client over TCP against the in-process AMI peer: a caller ID that repeats envelope headers
(``1\\r\\nEvent: x``, ``1\\r\\nActionID: x`` ...) neither closes the link nor hides the genuine event,
and the recordings table only holds recordings that have not ended.

Before the fix, panoramisk's ``handle_message`` raised out of ``data_received`` on such a block
(``list.lower()`` / an unhashable ActionID), asyncio closed the transport, the rest of the read
was lost and every pending action failed; a CoreShowChannels resync died on every reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from ami_peer import AmiPeer
from test_ami_client import next_events, running

from ami.client import AmiClient
from ami.framing_guard import FramingGuard
from pbx_recorder.core import commands as cmds
from pbx_recorder.core import events as ev
from pbx_recorder.core.naming import make_call_id, make_recording_id

NUMBER = "13812345678"  # logged only as 138****5678
MASKED = "138****5678"
#: the caller-controlled tails: each makes panoramisk (or its list handling) go wrong
HOSTILE = {
    "event": NUMBER + "\r\nEvent: x",
    "event-case": NUMBER + "\r\nevent: Hangup",
    "actionid": NUMBER + "\r\nActionID: x",
    "actionid-twice": NUMBER + "\r\nActionID: x\r\nActionID: y",
    "response": NUMBER + "\r\nResponse: Success",
    "subevent": NUMBER + "\r\nSubEvent: End",
    "commandid": NUMBER + "\r\nCommandID: x\r\nCommandID: y",
    "message": NUMBER + "\r\nMessage: x\r\nMessage: y",
}


def snap(channel: str, uid: str, caller: str = "100") -> dict[str, str]:
    """A channel snapshot in Asterisk's order (ast_manager_build_channel_state_string_prefix)."""
    return {"Channel": channel, "ChannelState": "6", "ChannelStateDesc": "Up", "CallerIDNum": caller,
            "CallerIDName": "Alice", "ConnectedLineNum": "<unknown>", "ConnectedLineName": "<unknown>",
            "Language": "en", "AccountCode": "", "Context": "from-trunk", "Exten": "8001", "Priority": "1",
            "Uniqueid": uid, "Linkedid": uid}


def raw(headers: list[tuple[str, str]] | Mapping[str, str]) -> bytes:
    pairs = list(headers.items()) if isinstance(headers, Mapping) else headers
    return ("".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n").encode()


def event(name: str, fields: Mapping[str, str], *extra: tuple[str, str]) -> bytes:
    return raw([("Event", name), ("Privilege", "call,all"), *fields.items(), *extra])


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def link_intact(client: AmiClient, peer: AmiPeer) -> None:
    protocol = client._protocol
    assert protocol is not None and not protocol.closed and not protocol.transport.is_closing()
    assert client.connected and client.connects == 1 and peer.connections == 1


async def test_hostile_blocks_in_one_read_keep_the_link_the_action_and_the_genuine_events(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ami.client")
    async with AmiPeer() as peer, running(peer) as client:
        assert await client.wait_ready(5)
        await next_events(client, 1)  # ResyncCompleted
        peer.hold.add("Ping")
        ping = asyncio.create_task(client.send({"Action": "Ping"}))
        (action,) = await peer.wait_action("Ping")
        uids = {kind: f"700.{n}" for n, kind in enumerate(HOSTILE)}
        data = b"".join(event("Newchannel", snap(f"PJSIP/mallory-{uids[k]}", uids[k], caller))
                        for k, caller in HOSTILE.items())
        data += raw([("Response", "Success"), ("ActionID", str(action["actionid"])), ("Ping", "Pong")])
        data += event("Newchannel", snap("PJSIP/alice-1", "100.1"))  # another call, same read
        await peer.send_raw(data)
        reply = await asyncio.wait_for(ping, 5)  # the pending action resolves
        assert reply["Ping"] == "Pong"
        got = await next_events(client, len(HOSTILE) + 1)
        assert all(isinstance(e, ev.ChannelCreated) for e in got), got
        by_uid = {e.channel_id: e for e in got}  # type: ignore[attr-defined]
        for kind, uid in uids.items():  # the genuine event of each hostile call, with its own ids
            created = by_uid[uid]
            assert created.call_id == make_call_id("pbx1", uid), kind
            assert (created.channel, created.caller_num) == (f"PJSIP/mallory-{uid}", NUMBER), kind
        assert by_uid["100.1"].call_id == make_call_id("pbx1", "100.1")
        link_intact(client, peer)
        # all but the lone ActionID (no list, no action of ours under "x": panoramisk dispatches it)
        assert client.envelopes_repaired == len(HOSTILE) - 1 and client.blocks_failed == 0
        # later events of those calls still flow, and the link still answers
        await peer.send_raw(event("Newstate", snap("PJSIP/mallory-700.0", "700.0", HOSTILE["event"])))
        peer.hold.clear()
        (answered,) = await next_events(client, 1)
        assert isinstance(answered, ev.ChannelAnswered) and answered.channel_id == "700.0"
        assert (await client.send({"Action": "Ping"}))["Ping"] == "Pong"
        link_intact(client, peer)
    assert "AMI header injection" in caplog.text and "call=pbx1_700.0" in caplog.text
    assert MASKED in caplog.text and NUMBER not in caplog.text


async def test_resync_survives_hostile_list_items_on_every_reconnect() -> None:
    """The CoreShowChannels list of a reconnect: hostile items neither kill the reply (TypeError on
    a list ActionID) nor end it early (an injected ``Response``/``SubEvent``), so the calls listed
    after them are in the resync and AMI-started recordings of other calls work."""
    async with AmiPeer() as peer:
        hostile = [snap(f"PJSIP/mallory-{n}", f"700.{n}", caller)
                   for n, caller in enumerate(HOSTILE.values())]
        alice = {**snap("PJSIP/alice-1", "100.1"), "BridgeId": ""}
        peer.channels = [*hostile, alice]
        peer.variables = {"PJSIP/alice-1": {"PBXREC_RESULT": "record", "PBXREC_RECORDING_ID": "r1"}}
        expected = frozenset(make_call_id("pbx1", ch["Uniqueid"]) for ch in peer.channels)
        async with running(peer) as client:
            for connect in (1, 2):
                assert await client.wait_ready(5)
                got = await next_events(client, len(peer.channels) + (connect - 1) + 1)
                done = got[-1]
                assert isinstance(done, ev.ResyncCompleted) and done.live_call_ids == expected, connect
                live = [e for e in got if isinstance(e, ev.LiveChannel)]
                assert {e.channel_id for e in live} == {ch["Uniqueid"] for ch in peer.channels}
                # read as a list item, not as a stray event after a list cut short: its variables too
                (alice_live,) = [e for e in live if e.channel_id == "100.1"]
                assert alice_live.variables == {"PBXREC_RESULT": "record", "PBXREC_RECORDING_ID": "r1"}
                assert client.connects == connect and client.blocks_failed == 0
                call = make_call_id("pbx1", "100.1")
                rid = make_recording_id(call, "call", connect)
                (started,) = await client.execute(cmds.StartRecording(
                    call_id=call, recording_id=rid, channel="PJSIP/alice-1", path=f"/tmp/rec/{connect}.wav"))
                assert isinstance(started, ev.RecordingStarted) and started.pbx_ref
                if connect == 1:
                    await peer.drop()  # a reconnect while the hostile calls are still up
                    await peer.wait_logins(2)
            assert peer.connections == 2


class _Exploding(FramingGuard):
    """Stands for any handling bug a block could still hit."""

    def accept(self, keys: Mapping[str, Any]) -> bool:
        if keys.get("uniqueid") == "666.6":
            raise RuntimeError("boom")
        return super().accept(keys)


async def test_a_block_that_still_fails_is_logged_with_its_ids_and_skipped(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ami.client")
    async with AmiPeer() as peer, running(peer) as client:
        assert await client.wait_ready(5)
        await next_events(client, 1)
        client.framing = _Exploding()
        peer.hold.add("Ping")
        ping = asyncio.create_task(client.send({"Action": "Ping"}))
        (action,) = await peer.wait_action("Ping")
        await peer.send_raw(event("Newchannel", snap("PJSIP/x-6", "666.6", NUMBER))
                            + raw([("Response", "Success"), ("ActionID", str(action["actionid"])),
                                   ("Ping", "Pong")])
                            + event("Newchannel", snap("PJSIP/alice-1", "100.1")))
        assert (await asyncio.wait_for(ping, 5))["Ping"] == "Pong"
        lost, created = await next_events(client, 2)
        # the skipped block may have been an event: the core hears where (its MixMonitor counts)
        assert isinstance(lost, ev.PbxEventsLost) and lost.reason == "a block failed to parse"
        assert isinstance(created, ev.ChannelCreated) and created.channel_id == "100.1"
        await peer.wait_action("CoreShowChannels", count=2)  # and the live channels are read again
        link_intact(client, peer)
        assert client.blocks_failed == 1
    skipped = [r for r in caplog.records if "AMI block skipped" in r.getMessage()]
    assert len(skipped) == 1 and skipped[0].exc_info is not None
    line = skipped[0].getMessage()
    assert "call=pbx1_666.6" in line and "uniqueid=666.6" in line and "channel=PJSIP/x-6" in line
    assert MASKED in line and NUMBER not in caplog.text


async def test_the_mixmonitor_table_holds_only_recordings_that_have_not_ended() -> None:
    """N recordings ended every way the client can see: our StopRecording, the channel's Hangup
    (by name, or by Uniqueid for a renamed channel), a forged Hangup (refuted: kept), a link lost
    across the hang-up (the resync's complete list no longer has the channel)."""
    async with AmiPeer() as peer, running(peer) as client:
        assert await client.wait_ready(5)
        await next_events(client, 1)
        n = 12
        chans = {i: (f"PJSIP/c-{i:08x}", f"300.{i}") for i in range(n)}
        rids = {}
        for name, uid in chans.values():
            await peer.emit([("Event", "Newchannel"), *snap(name, uid).items()])
        await until(lambda: all(client.normalizer.uniqueid_of(name) for name, _ in chans.values()))
        for i, (name, uid) in chans.items():
            call = make_call_id("pbx1", uid)
            rids[i] = make_recording_id(call, "call", 1)
            await client.execute(cmds.StartRecording(call_id=call, recording_id=rids[i], channel=name,
                                                     path=f"/tmp/rec/{i}.wav"))
        assert len(client._mmids) == n
        for i in (0, 1, 2):  # stopped by the core
            await client.execute(cmds.StopRecording(call_id=make_call_id("pbx1", chans[i][1]),
                                                    recording_id=rids[i], channel=chans[i][0]))
        for i in range(3, 9):  # hung up; 6-8 renamed before their Hangup (known by Uniqueid)
            name, uid = chans[i]
            await peer.emit([("Event", "Hangup"), *snap(name if i < 6 else name + "<ZOMBIE>", uid).items(),
                             ("Cause", "16"), ("Cause-txt", "Normal Clearing")])
        for i in (9, 10):  # forged Hangups: Asterisk still has the channel
            name, uid = chans[i]
            peer.variables[uid] = {"UNIQUEID": uid}
            await peer.emit([("Event", "Hangup"), *snap(name, uid).items(), ("Cause", "16")])
        await until(lambda: client.hangups_refuted == 2 and len(client._mmids) == 3)
        assert client._mmids.ids() == {rids[9], rids[10], rids[11]}
        # 9 and 10 hang up while the link is down; 11 is still live after the reconnect
        peer.channels = [{**snap(*chans[11]), "BridgeId": ""}]
        await peer.drop()
        await peer.wait_logins(2)
        await until(lambda: client.connects == 2 and len(client._mmids) == 1)
        assert client._mmids.ids() == {rids[11]}
        await client.execute(cmds.StopRecording(call_id=make_call_id("pbx1", chans[11][1]),
                                                recording_id=rids[11], channel=chans[11][0]))
        stop = peer.actions("StopMixMonitor")[-1]
        assert stop["mixmonitorid"] == "0x0000000c"  # the table still served the live one
        assert len(client._mmids) == 0
        assert client._mmids._by_channel == {} and client._mmids._by_call == {}
