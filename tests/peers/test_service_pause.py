"""PCI pause from the console (issue 8: "any agent can pause any colleague's call"): POST
/api/calls/{id}/pause|resume over the in-process AMI peer, every role x every live call."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from ami_peer import AmiPeer
from test_daemon import free_port, write_config

from pbx_recorder.catalog.scopes import Scope
from pbx_recorder.cli.live_calls import LiveCall
from pbx_recorder.config import load_config
from pbx_recorder.service.api_pause import endpoint_of, may_pause
from tests.peers.service_support import USERS

#: live call -> (its agent in the snapshot, its channel)
LIVE = {"L-alice": ("alice", "PJSIP/alice-00000001"),
        "L-bob": ("", "PJSIP/bob-00000002"),  # no agent known yet: found by its endpoint
        "L-carol": ("carol", "PJSIP/carol-00000003")}
PAUSE_OK = {"root-admin": set(LIVE), "lead-red": {"L-alice", "L-bob"}, "alice": {"L-alice"}}


def _snapshot(call_id: str, agent: str, channel: str) -> dict[str, object]:
    """As the daemon writes it: its recording's MixMonitorStart seen, the only one on the channel."""
    rid = f"{call_id}_call001"
    return {"call_id": call_id, "state": "recording", "agent": agent, "legs": {"1.1": channel},
            "live": ["1.1"], "recordings": [{"recording_id": rid, "channel": channel,
                                             "state": "recording", "start_seen": True}],
            "mixmonitors": {channel: [rid]}, "mixmonitors_known": True}


def _prepare(service, peer_port: int, tmp: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp / "cfg").mkdir()
    service.ctx.config = load_config(write_config(tmp / "cfg", peer_port, free_port()))
    for call_id, (agent, channel) in LIVE.items():
        service.ctx.catalog.save_live_call(call_id, _snapshot(call_id, agent, channel))


def _expected(name: str, call_id: str) -> int:
    if name not in PAUSE_OK:
        return 403
    return 200 if call_id in PAUSE_OK[name] else 404


@pytest.mark.parametrize("name", sorted(USERS))
async def test_pause_matrix_every_role_every_live_call(seeded_service, tmp_path, name) -> None:  # type: ignore[no-untyped-def]
    async with AmiPeer() as peer:
        _prepare(seeded_service, peer.port, tmp_path)
        client, csrf = await asyncio.to_thread(seeded_service.login, name)
        for call_id in sorted(LIVE):
            answer = await asyncio.to_thread(client.post, f"/api/calls/{call_id}/pause",
                                             headers={"X-CSRF-Token": csrf})
            assert answer.status_code == _expected(name, call_id), (name, call_id, answer.text)
            last = seeded_service.audit_rows(name)[-1]
            if answer.status_code == 200:
                assert last["action"] == "pause" and last["target"] == call_id
            else:
                assert last["action"] == "denied:calls.pause" and last["target"] == call_id
                assert "192.0.2.7" in last["detail"]
        muted = sorted(str(m["channel"]) for m in peer.actions("MixMonitorMute"))
        assert muted == sorted(LIVE[c][1] for c in PAUSE_OK.get(name, set()))


async def test_an_agent_pauses_their_own_call_not_a_colleagues(seeded_service, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with AmiPeer() as peer:
        _prepare(seeded_service, peer.port, tmp_path)
        client, csrf = await asyncio.to_thread(seeded_service.login, "alice")
        hdr = {"X-CSRF-Token": csrf}
        other = await asyncio.to_thread(client.post, "/api/calls/L-carol/pause", headers=hdr)
        absent = await asyncio.to_thread(client.post, "/api/calls/L-nobody/pause", headers=hdr)
        assert other.status_code == absent.status_code == 404 and other.content == absent.content
        assert peer.actions("MixMonitorMute") == []  # nothing reached the PBX
        paused = await asyncio.to_thread(client.post, "/api/calls/L-alice/pause", headers=hdr)
        resumed = await asyncio.to_thread(client.post, "/api/calls/L-alice/resume", headers=hdr)
        assert paused.status_code == resumed.status_code == 200, paused.text
        assert paused.json()["paused"] is True and resumed.json()["paused"] is False
        assert [(m["channel"], m["state"]) for m in peer.actions("MixMonitorMute")] == [
            ("PJSIP/alice-00000001", "1"), ("PJSIP/alice-00000001", "0")]
        assert "s3cret" not in paused.text + resumed.text
        actions = [r["action"] for r in seeded_service.audit_rows("alice")]
        assert actions[-4:] == ["denied:calls.pause", "denied:calls.pause", "pause", "resume"]


async def test_pause_needs_the_csrf_token(seeded_service, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with AmiPeer() as peer:
        _prepare(seeded_service, peer.port, tmp_path)
        client, _ = await asyncio.to_thread(seeded_service.login, "alice")
        answer = await asyncio.to_thread(client.post, "/api/calls/L-alice/pause")
        assert answer.status_code == 403 and peer.actions("MixMonitorMute") == []
        assert seeded_service.audit_rows("alice")[-1]["action"] == "denied:csrf"


def test_the_pause_scope_is_the_row_scope_of_the_live_call() -> None:
    call = LiveCall("c1", 0.0, "recording", "", "", "", ("PJSIP/bob-0000000a", "SIP/4915112345678-01"),
                    "recording")
    assert endpoint_of("PJSIP/bob-0000000a") == "bob" and endpoint_of("PJSIP/bob") == "bob"
    assert may_pause(Scope.everything(), call)
    assert may_pause(Scope.of_agents({"bob"}), call)
    assert not may_pause(Scope.of_agents({"alice"}), call)
    assert not may_pause(Scope.of_reviewer("qa1"), call) and not may_pause(Scope.nothing(), call)
    # a caller cannot become "an agent's endpoint" by a name that only starts like it
    assert not may_pause(Scope.of_agents({"bo"}), call)


@pytest.mark.parametrize(("version", "refused"), [("16.28.0", True), ("", True), ("22.10.1", False)])
async def test_a_pause_the_pbx_would_give_to_its_own_mixmonitor_is_refused(  # type: ignore[no-untyped-def]
        seeded_service, tmp_path, version, refused) -> None:
    """The snapshot says a MixMonitor of the PBX's own runs on the channel (core/mixmonitor_order.py):
    on an Asterisk that mutes only the first (16; unknown counts as such) the console refuses with
    409 and nothing reaches the PBX; on one that mutes every MixMonitor (22) the pause goes out."""
    async with AmiPeer() as peer:
        peer.asterisk_version = version or None
        _prepare(seeded_service, peer.port, tmp_path)
        snapshot = _snapshot("L-alice", *LIVE["L-alice"])
        snapshot["mixmonitors"] = {LIVE["L-alice"][1]: ["", "L-alice_call001"]}
        seeded_service.ctx.catalog.save_live_call("L-alice", snapshot)
        client, csrf = await asyncio.to_thread(seeded_service.login, "alice")
        answer = await asyncio.to_thread(client.post, "/api/calls/L-alice/pause",
                                         headers={"X-CSRF-Token": csrf})
        last = seeded_service.audit_rows("alice")[-1]
        if refused:
            assert answer.status_code == 409, answer.text
            assert "the PBX's own" in answer.json()["error"], answer.text
            assert "16.28" in answer.text or "version unknown" in answer.text
            assert peer.actions("MixMonitorMute") == []
            assert last["action"] == "denied:calls.pause" and '"pbx_own_mixmonitor"' in last["detail"]
        else:
            assert answer.status_code == 200, answer.text
            assert [m["channel"] for m in peer.actions("MixMonitorMute")] == [LIVE["L-alice"][1]]
            assert last["action"] == "pause"


async def test_the_answer_says_when_the_pause_ends_and_a_call_whose_pause_time_is_spent_is_refused(  # type: ignore[no-untyped-def]
        seeded_service, tmp_path) -> None:
    """``pbx.pause_max_s`` (300 s by default) is for all of a call's pauses together
    (core/call_book_recording.py): the answer carries what is left, and a call that has used it
    is refused with 409 before anything reaches the PBX (the recorder would end the pause at once
    and the card number be recorded)."""
    async with AmiPeer() as peer:
        _prepare(seeded_service, peer.port, tmp_path)
        client, csrf = await asyncio.to_thread(seeded_service.login, "alice")
        hdr = {"X-CSRF-Token": csrf}
        snapshot = _snapshot("L-alice", *LIVE["L-alice"])
        snapshot["pause_spent"] = 100.0
        seeded_service.ctx.catalog.save_live_call("L-alice", snapshot)
        paused = await asyncio.to_thread(client.post, "/api/calls/L-alice/pause", headers=hdr)
        assert paused.status_code == 200 and paused.json()["resumes_after_s"] == 200.0, paused.text
        resumed = await asyncio.to_thread(client.post, "/api/calls/L-alice/resume", headers=hdr)
        assert resumed.json()["resumes_after_s"] is None
        snapshot["pause_spent"] = 300.0
        seeded_service.ctx.catalog.save_live_call("L-alice", snapshot)
        spent = await asyncio.to_thread(client.post, "/api/calls/L-alice/pause", headers=hdr)
        assert spent.status_code == 409 and "pause time" in spent.json()["error"], spent.text
        assert [m["state"] for m in peer.actions("MixMonitorMute")] == ["1", "0"]  # not a third
        last = seeded_service.audit_rows("alice")[-1]
        assert last["action"] == "denied:calls.pause" and '"pause_time_spent"' in last["detail"]
