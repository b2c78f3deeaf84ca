"""The inbound ESL client (esl/client.py) against the in-process peer (tests/peers/esl_peer.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from esl.client import EslClient
from esl.normalize import EslNormalizer
from pbx_recorder.core import commands as cmds
from pbx_recorder.core import events as E
from pbx_recorder.errors import EslError, PbxDisconnected
from tests.peers.esl_peer import EslPeer
from tests.unit.esl_samples import A_LEG, B_LEG, T0, ev, inbound_call

CALL = f"pbx1_{A_LEG}"


@pytest.fixture(name="peer")
async def peer_fixture() -> AsyncIterator[EslPeer]:
    """The in-process FreeSWITCH peer, started (also the fixture of test_esl_recording_table.py)."""
    p = EslPeer()
    await p.start()
    try:
        yield p
    finally:
        await p.close()


def client_for(port: int, monitor_dir: str = "", **kw: Any) -> EslClient:
    return EslClient(
        host="127.0.0.1",
        port=port,
        password=kw.pop("password", "ClueCon"),
        normalizer=EslNormalizer("pbx1"),
        monitor_dir=monitor_dir,
        backoff_min=0.05,
        backoff_max=0.2,
        api_timeout=kw.pop("api_timeout", 2.0),
        connect_timeout=2.0,
        **kw,
    )


async def take(client: EslClient, n: int, timeout: float = 5.0) -> list[Any]:
    out: list[Any] = []

    async def collect() -> None:
        async for item in client.events():
            out.append(item)
            if len(out) >= n:
                return

    await asyncio.wait_for(collect(), timeout)
    return out


async def running(client: EslClient) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(client.run())
    assert await client.wait_ready(5)
    return task


async def stop(client: EslClient, task: asyncio.Task[None]) -> None:
    await client.close()
    await asyncio.wait_for(task, 5)


async def test_auth_subscribe_and_an_empty_resync(peer: EslPeer) -> None:
    client = client_for(peer.port)
    task = await running(client)
    (done,) = await take(client, 1)
    assert isinstance(done, E.ResyncCompleted) and done.live_call_ids == frozenset()
    assert peer.received[0] == "auth ClueCon"
    assert (
        peer.received[1].startswith("event plain CHANNEL_CREATE")
        and "CUSTOM callcenter::info" in peer.received[1]
    )
    assert "api show channels as json" in peer.received
    await stop(client, task)


async def test_wrong_password_is_retried_with_backoff(peer: EslPeer) -> None:
    client = client_for(peer.port, password="wrong")
    task = asyncio.get_running_loop().create_task(client.run())
    await asyncio.sleep(0.8)
    assert not client.connected and peer.connections >= 2  # refused, reconnected, refused again
    await stop(client, task)


async def test_resync_reports_live_channels_with_their_variables(peer: EslPeer) -> None:
    rows = [
        {"uuid": A_LEG, "call_uuid": A_LEG, "callstate": "ACTIVE", "cid_num": "5551234"},
        {"uuid": B_LEG, "call_uuid": B_LEG, "callstate": "ACTIVE", "cid_num": "1001"},
    ]
    peer.api["show channels as json"] = json.dumps({"row_count": 2, "rows": rows})
    values = {
        (A_LEG, "PBXREC_RESULT"): "record",
        (A_LEG, "PBXREC_RECORDING_ID"): f"{CALL}_call001",
        (B_LEG, "PBXREC_CALL_ID"): A_LEG,
    }
    peer.api["uuid_getvar"] = lambda line: values.get(tuple(line.split()[1:3]), "_undef_")  # type: ignore
    peer.job_delay = 0.05
    client = client_for(peer.port)
    task = await running(client)
    live_a, live_b, done = await take(client, 3)
    assert isinstance(live_a, E.LiveChannel) and live_a.variables == {
        "PBXREC_RESULT": "record",
        "PBXREC_RECORDING_ID": f"{CALL}_call001",
    }
    assert isinstance(live_b, E.LiveChannel) and live_b.call_id == CALL  # joined by PBXREC_CALL_ID
    assert isinstance(done, E.ResyncCompleted) and done.live_call_ids == frozenset({CALL})
    assert len(peer.commands("bgapi uuid_getvar")) == 8  # 4 variables x 2 channels, in parallel
    await stop(client, task)


async def test_events_are_normalized_and_record_stop_writes_the_marker(peer: EslPeer, tmp_path: Path) -> None:
    rec = tmp_path / "rec.wav"
    rec.write_bytes(b"RIFF")
    client = client_for(peer.port, monitor_dir=str(tmp_path))
    task = await running(client)
    await take(client, 1)  # the resync
    events = inbound_call()
    for headers in events:
        peer.push_event([(k, str(rec) if k == "Record-File-Path" else v) for k, v in headers])
    out = await take(client, 9)
    assert [type(e).__name__ for e in out][:2] == ["ChannelCreated", "ChannelAnswered"]
    assert isinstance(out[-1], E.CdrPosted) and out[-1].call_id == CALL
    assert Path(f"{rec}.closed").exists()
    await stop(client, task)


async def test_record_stop_outside_monitor_dir_writes_nothing(peer: EslPeer, tmp_path: Path) -> None:
    client = client_for(peer.port, monitor_dir=str(tmp_path / "monitor"))
    task = await running(client)
    await take(client, 1)
    outside = tmp_path / "elsewhere.wav"
    peer.push_event(ev("RECORD_STOP", A_LEG, T0, {"Record-File-Path": str(outside)}))
    peer.push_event(ev("CHANNEL_ANSWER", A_LEG, T0))
    await take(client, 2)
    assert not Path(f"{outside}.closed").exists()
    await stop(client, task)


async def test_start_recording_then_stop_and_mask_by_path(peer: EslPeer) -> None:
    client = client_for(peer.port)
    task = await running(client)
    start = cmds.StartRecording(CALL, f"{CALL}_call001", A_LEG, "/m/a.wav", "stereo")
    (started,) = await client.execute(start)
    assert isinstance(started, E.RecordingStarted) and started.pbx_ref == "/m/a.wav"
    (masked,) = await client.execute(cmds.MuteRecording(CALL, A_LEG, True))
    # FreeSWITCH sends no event for a mask: the client tells the core (the core's own unmask of a
    # pause over pbx.pause_max_s must close the pause it shows)
    assert isinstance(masked, E.RecordingMuted) and masked.muted and masked.exact
    assert (masked.call_id, masked.channel) == (CALL, A_LEG)
    await client.execute(cmds.StopRecording(CALL, f"{CALL}_call001", A_LEG))
    assert peer.commands("api uuid_record") == [
        f"api uuid_record {A_LEG} start /m/a.wav 0 {{RECORD_STEREO=true,record_sample_rate=8000}}",
        f"api uuid_record {A_LEG} mask /m/a.wav",
        f"api uuid_record {A_LEG} stop /m/a.wav",
    ]
    await asyncio.sleep(0.1)  # channel variables go out batched, after the start
    assert peer.commands("api uuid_setvar") == [f"api uuid_setvar_multi {A_LEG} PBXREC_CALL_ID={A_LEG}"]
    await stop(client, task)


async def test_err_reply_raises_with_the_call_id(peer: EslPeer) -> None:
    peer.api["uuid_record"] = "-ERR Cannot locate session!\n"
    client = client_for(peer.port)
    task = await running(client)
    with pytest.raises(EslError) as err:
        await client.execute(cmds.StartRecording(CALL, f"{CALL}_call001", A_LEG, "/m/a.wav"))
    assert err.value.call_id == CALL and "Cannot locate session" in str(err.value)
    await stop(client, task)


async def test_bgapi_results_are_matched_by_job_uuid(peer: EslPeer) -> None:
    peer.api["uuid_getvar"] = lambda line: line.split()[2]  # type: ignore[assignment]
    peer.job_delay = 0.1
    client = client_for(peer.port)
    task = await running(client)
    results = await asyncio.gather(*(client.bgapi("uuid_getvar", A_LEG, f"V{i}") for i in range(10)))
    assert results == [f"V{i}" for i in range(10)]
    await stop(client, task)


async def test_pending_requests_fail_with_pbx_disconnected_on_drop(peer: EslPeer) -> None:
    peer.silent.add("api uuid_record")
    client = client_for(peer.port, api_timeout=10.0)
    task = await running(client)
    pending = asyncio.ensure_future(client.api(f"api uuid_record {A_LEG} start /m/a.wav"))
    job = asyncio.ensure_future(client.bgapi("uuid_getvar", A_LEG, "X"))
    peer.silent.add("bgapi")
    await asyncio.sleep(0.2)
    peer.drop()
    with pytest.raises(PbxDisconnected):
        await asyncio.wait_for(pending, 5)
    with pytest.raises(PbxDisconnected):
        await asyncio.wait_for(job, 5)
    await stop(client, task)


async def test_reply_timeout_drops_the_connection_and_it_comes_back(peer: EslPeer) -> None:
    peer.silent.add("api uuid_setvar")
    client = client_for(peer.port, api_timeout=0.3)
    task = await running(client)
    with pytest.raises(EslError):
        await client.api(f"api uuid_setvar {A_LEG} X 1")
    peer.silent.clear()
    await asyncio.sleep(0.1)
    assert await client.wait_ready(5)
    assert peer.connections == 2 and len(peer.commands("api show channels as json")) == 2  # resynced again
    await stop(client, task)


async def test_disconnect_notice_then_reconnect_and_resync(peer: EslPeer) -> None:
    client = client_for(peer.port)
    task = await running(client)
    await take(client, 1)
    peer.push(b"Content-Type: text/disconnect-notice\nContent-Length: 4\n\nbye\n")
    peer.drop()
    (done,) = await take(client, 1)  # the second resync after the reconnect
    assert isinstance(done, E.ResyncCompleted) and peer.connections == 2
    await stop(client, task)


async def test_not_connected_send_fails_at_once() -> None:
    client = client_for(1)
    with pytest.raises(PbxDisconnected):
        await client.api("api status")


async def test_channel_variables_of_one_decision_go_out_as_one_api_call(peer: EslPeer) -> None:
    client = client_for(peer.port)
    task = await running(client)
    await client.execute(cmds.StartRecording(CALL, f"{CALL}_call001", A_LEG, "/m/a.wav"))
    for name, value in (
        ("CDR(recordingfile)", "a.wav"),
        ("PBXREC_RECORDING_ID", f"{CALL}_call001"),
        ("PBXREC_RECORDING_PATH", "/m/a.wav"),
    ):
        assert await client.execute(cmds.SetChannelVar(CALL, A_LEG, name, value)) == []
    with pytest.raises(EslError):  # a bad value is refused at once, not in the batch
        await client.execute(cmds.SetChannelVar(CALL, A_LEG, "PBXREC_RESULT", "a;b"))
    await asyncio.sleep(0.1)
    assert peer.commands("api uuid_setvar") == [
        f"api uuid_setvar_multi {A_LEG} PBXREC_CALL_ID={A_LEG};PBXREC_RECORDING_FILE=a.wav;"
        f"PBXREC_RECORDING_ID={CALL}_call001;PBXREC_RECORDING_PATH=/m/a.wav"
    ]
    await stop(client, task)
