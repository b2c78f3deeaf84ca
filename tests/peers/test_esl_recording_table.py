"""The ESL client's table of recording files (esl/client.py ``_rec_paths``) holds only recordings
that have not ended: a daemon that runs for months no longer keeps every file it ever recorded.

Ways a recording ends that the client sees: our StopRecording, the channel's
CHANNEL_HANGUP_COMPLETE (most calls: no stop at all), a link lost across the hang-up (the
resync's ``show channels`` no longer lists the channel).  Recordings handed to the dialplan
(``expect_start``) are covered the same way.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

from esl.client import EslClient
from pbx_recorder.core import commands as cmds
from tests.peers.esl_peer import EslPeer
from tests.peers.test_esl_client import client_for, peer_fixture, running, stop  # noqa: F401  (the peer fixture)
from tests.unit.esl_samples import T0, ev

HANGUP = {"Channel-State": "CS_REPORTING", "Answer-State": "hangup", "Hangup-Cause": "NORMAL_CLEARING",
          "variable_hangup_cause_q850": "16"}


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def start(n: int, leg: str) -> cmds.StartRecording:
    call = f"pbx1_{leg}"
    return cmds.StartRecording(call, f"{call}_call001", leg, f"/m/{n}.wav")


async def test_the_files_table_holds_only_recordings_that_have_not_ended(peer: EslPeer) -> None:
    client: EslClient = client_for(peer.port)
    task = await running(client)
    legs = [str(uuid.uuid4()) for _ in range(12)]
    starts = [start(n, leg) for n, leg in enumerate(legs)]
    for command in starts[:9]:
        await client.execute(command)
    for command in starts[9:]:  # started by the dialplan at answer (esl/early_start.py)
        client.expect_start(command)
    assert len(client._rec_paths) == 12
    for command in starts[:3]:
        await client.execute(cmds.StopRecording(command.call_id, command.recording_id, command.channel))
    for leg in legs[3:7] + legs[9:10]:  # hung up, no stop
        peer.push_event(ev("CHANNEL_HANGUP_COMPLETE", leg, T0 + 30, HANGUP))
    await until(lambda: len(client._rec_paths) == 4)
    assert client._rec_paths.ids() == {starts[i].recording_id for i in (7, 8, 10, 11)}
    # the mask of a call reads only that call's entry (no scan of the table)
    await client.execute(cmds.MuteRecording(starts[7].call_id, legs[7], True))
    assert peer.commands("api uuid_record")[-1] == f"api uuid_record {legs[7]} mask /m/7.wav"
    # the link drops; 7 and 10 hang up meanwhile, 8 and 11 are still up after the reconnect
    rows = [{"uuid": legs[i], "call_uuid": legs[i], "callstate": "ACTIVE"} for i in (8, 11)]
    peer.api["show channels as json"] = json.dumps({"row_count": 2, "rows": rows})
    peer.drop()
    await until(lambda: len(peer.commands("api show channels as json")) == 2 and len(client._rec_paths) == 2)
    assert client._rec_paths.ids() == {starts[8].recording_id, starts[11].recording_id}
    await client.execute(cmds.StopRecording(starts[8].call_id, starts[8].recording_id, legs[8]))
    peer.push_event(ev("CHANNEL_HANGUP_COMPLETE", legs[11], T0 + 30, HANGUP))
    await until(lambda: len(client._rec_paths) == 0)
    assert client._rec_paths._by_channel == {} and client._rec_paths._by_call == {}
    await stop(client, task)


async def test_a_cut_short_channel_list_forgets_nothing(peer: EslPeer) -> None:
    """``row_count`` says more channels than the rows carry: a live recording might be missing from
    it, so the table is left as it is (a wrong prune would lose the files a stop and a mask need)."""
    client: EslClient = client_for(peer.port)
    task = await running(client)
    leg = str(uuid.uuid4())
    await client.execute(start(1, leg))
    peer.api["show channels as json"] = json.dumps({"row_count": 3, "rows": []})
    peer.drop()
    await until(lambda: len(peer.commands("api show channels as json")) == 2)
    await asyncio.sleep(0.1)
    assert len(client._rec_paths) == 1
    await stop(client, task)
