"""``calls pause|resume`` over the AMI peer, and ``pbx-recorder run`` stopping on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest
from ami_peer import AmiPeer
from test_daemon import CALL, CHANNEL, free_port, write_config

from pbx_recorder.catalog import Catalog
from pbx_recorder.cli import main


def snapshot(channel: str) -> dict[str, object]:
    """As the daemon writes it: the recording's MixMonitorStart seen, the only one on the channel."""
    return {
        "call_id": CALL,
        "state": "recording",
        "legs": {"100.1": channel},
        "live": ["100.1"],
        "recordings": [
            {"recording_id": f"{CALL}_call001", "channel": channel, "state": "recording", "start_seen": True},
            {"recording_id": f"{CALL}_consent001", "channel": "PJSIP/old-1", "state": "finalized"},
        ],
        "mixmonitors": {channel: [f"{CALL}_call001"]},
        "mixmonitors_known": True,
    }


async def test_pause_and_resume_mute_the_live_recording_channel(tmp_path: Path) -> None:
    async with AmiPeer() as peer:
        cfg = write_config(tmp_path, peer.port, free_port())
        catalog = Catalog(tmp_path / "catalog.db")
        catalog.save_live_call(CALL, snapshot(CHANNEL))
        catalog.close()
        assert await asyncio.to_thread(main, ["--config", str(cfg), "calls", "pause", CALL]) == 0
        assert await asyncio.to_thread(main, ["--config", str(cfg), "calls", "resume", CALL]) == 0
        mutes = peer.actions("MixMonitorMute")
        assert [(m["channel"], m["state"], m["direction"]) for m in mutes] == [
            (CHANNEL, "1", "both"),
            (CHANNEL, "0", "both"),
        ]
        catalog = Catalog(tmp_path / "catalog.db")
        actions = [e["action"] for e in catalog.audit_entries()]
        catalog.close()
        assert sorted(actions) == ["pause", "resume"]
        assert (
            await asyncio.to_thread(main, ["--config", str(cfg), "calls", "pause", "pbx1_999.9"]) == 6
        )  # NotFound


async def test_pause_by_channel_finds_the_live_call(tmp_path: Path) -> None:
    endpoint = CHANNEL.rsplit("-", 1)[0]  # e.g. PJSIP/caller: what an agent desktop knows
    async with AmiPeer() as peer:
        cfg = write_config(tmp_path, peer.port, free_port())
        catalog = Catalog(tmp_path / "catalog.db")
        catalog.save_live_call(CALL, snapshot(CHANNEL))
        catalog.close()
        args = ["--config", str(cfg), "calls", "pause", "--channel", endpoint]
        assert await asyncio.to_thread(main, args) == 0
        assert [(m["channel"], m["state"]) for m in peer.actions("MixMonitorMute")] == [(CHANNEL, "1")]
        missing = ["--config", str(cfg), "calls", "resume", "--channel", "PJSIP/nobody"]
        assert await asyncio.to_thread(main, missing) == 6  # NotFound
        both = ["--config", str(cfg), "calls", "resume", CALL, "--channel", endpoint]
        assert await asyncio.to_thread(main, both) == 2  # usage: one or the other


async def test_pause_with_hostile_channel_is_refused(tmp_path: Path) -> None:
    async with AmiPeer() as peer:
        cfg = write_config(tmp_path, peer.port, free_port())
        catalog = Catalog(tmp_path / "catalog.db")
        catalog.save_live_call(CALL, snapshot("PJSIP/x\r\nAction: Originate"))
        catalog.close()
        assert (
            await asyncio.to_thread(main, ["--config", str(cfg), "calls", "pause", CALL]) == 3
        )  # AmiActionError
        assert peer.actions("MixMonitorMute") == [] and peer.actions("Originate") == []


async def test_run_stops_on_sigterm_with_exit_0_and_refuses_new_agi(tmp_path: Path) -> None:
    agi_port = free_port()
    async with AmiPeer() as peer:
        cfg = write_config(tmp_path, peer.port, agi_port)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from pbx_recorder.cli import run_main; run_main()",
            "--config",
            str(cfg),
            "-v",
            "run",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(tmp_path),
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
        try:
            await peer.wait_action("CoreShowChannels", 1, timeout=20)

            async def agi_listening() -> None:
                while True:
                    try:
                        _, w = await asyncio.open_connection("127.0.0.1", agi_port)
                        w.close()
                        return
                    except OSError:
                        await asyncio.sleep(0.05)

            await asyncio.wait_for(agi_listening(), 10)
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode()[-2000:]
        assert b"stop requested" in err and b"stopped: events=" in err
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", agi_port)) != 0


async def test_pause_by_an_agent_does_not_echo_a_number_in_a_channel_name(tmp_path: Path, capsys,
                                                                          monkeypatch) -> None:
    number = "4915112345678"
    channel = f"SIP/{number}-00000007"  # chan_sip names the channel after the peer: the caller's number
    async with AmiPeer() as peer:
        cfg = write_config(tmp_path, peer.port, free_port())
        cfg.write_text(cfg.read_text() + "\naccess:\n  users: {adam: agent, sue: supervisor}\n")
        catalog = Catalog(tmp_path / "catalog.db")
        catalog.save_live_call(CALL, snapshot(channel))
        catalog.close()
        capsys.readouterr()
        monkeypatch.setenv("PBX_RECORDER_USER", "adam")
        monkeypatch.setattr("pbx_recorder.cli.DEFAULT_CONFIG", str(cfg))  # the installation's config
        assert await asyncio.to_thread(main, ["--config", str(cfg), "calls", "pause", CALL]) == 0
        out = capsys.readouterr()
        assert number not in out.out + out.err and "SIP/491******5678-00000007" in out.out
        assert [m["channel"] for m in peer.actions("MixMonitorMute")] == [channel]  # the PBX gets it whole
        monkeypatch.setenv("PBX_RECORDER_USER", "sue")  # a role that may see numbers
        monkeypatch.setattr("pbx_recorder.cli.DEFAULT_CONFIG", str(cfg))  # the installation's config
        assert await asyncio.to_thread(main, ["--config", str(cfg), "calls", "resume", CALL]) == 0
        assert channel in capsys.readouterr().out


@pytest.mark.parametrize(("version", "doubt"), [
    ("16.28.0", "pbx_own_mixmonitor"), ("16.16.0", "no_mixmonitor_events"), ("22.10.1", None)])
async def test_a_pause_beside_a_mixmonitor_of_the_pbxs_own_is_refused_on_an_asterisk_that_mutes_the_first(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str, doubt: str | None) -> None:
    """core/mixmonitor_order.py: on 16.28 the mute would silence the PBX's own MixMonitor, so
    ``calls pause`` exits 5 before sending anything, says why (version major.minor only) and audits
    the refusal; before 16.17 nothing can be known; 22 mutes every MixMonitor: paused."""
    snap = snapshot(CHANNEL)
    snap["mixmonitors"] = {CHANNEL: ["", f"{CALL}_call001"]}
    async with AmiPeer() as peer:
        peer.asterisk_version = f"{version}~dfsg-0+deb11u4"
        cfg = write_config(tmp_path, peer.port, free_port())
        catalog = Catalog(tmp_path / "catalog.db")
        catalog.save_live_call(CALL, snap)
        catalog.close()
        code = await asyncio.to_thread(main, ["--config", str(cfg), "calls", "pause", CALL])
        catalog = Catalog(tmp_path / "catalog.db")
        entries = catalog.audit_entries()
        catalog.close()
        if doubt is None:
            assert code == 0 and [m["channel"] for m in peer.actions("MixMonitorMute")] == [CHANNEL]
            return
        assert code == 5 and peer.actions("MixMonitorMute") == []
        err = capsys.readouterr().err
        assert "pause refused" in err and "dfsg" not in err, err
        assert [(e["action"], e["detail"]["reason"]) for e in entries] == [
            ("denied:calls.pause", doubt)]
        # a resume is never refused: an unmute cannot record a card number
        assert await asyncio.to_thread(main, ["--config", str(cfg), "calls", "resume", CALL]) == 0
        assert [(m["channel"], m["state"]) for m in peer.actions("MixMonitorMute")] == [(CHANNEL, "0")]
