"""The daemon end to end over in-process peers: AMI peer + a fake Asterisk speaking FastAGI.

Consent (explicit, caller presses 1) -> consent segment + call MixMonitor in band (``EXEC
MixMonitor`` on the caller's own AGI socket; the consent segment is stopped over AMI by its ID) ->
files "written by Asterisk" (+ the .closed markers its post-command touches) -> Hangup + Cdr ->
spool -> shipper -> hot tier + catalog; live_calls persisted while the call lives; a
restarted daemon restores the call and does not start a second MixMonitor.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ami_peer import AmiPeer
from fake_asterisk_agi import InbandChannel, converse, env_block

from pbx_recorder.app import build_app
from pbx_recorder.config import load_config
from pbx_recorder.core.naming import make_call_id
from pbx_recorder.daemon import Daemon

CALL = make_call_id("pbx1", "100.1")
CHANNEL = "PJSIP/alice-00000001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, ami_port: int, agi_port: int) -> Path:
    path = tmp / "pbx-recorder.yaml"
    for prompt in ("consent-question", "consent-retry", "refusal-goodbye", "recording-notice"):
        write_wav(str(tmp / "prompts" / "en" / f"{prompt}.wav"), 0.1)
    path.write_text(f"""
node: pbx1
pbx:
  type: asterisk
  pause_confirm_s: 0.3
  ami: {{host: 127.0.0.1, port: {ami_port}, username: recorder, secret: s3cret,
        reconnect_min_s: 0.05, reconnect_max_s: 0.2}}
  agi: {{host: 127.0.0.1, port: {agi_port}, max_sessions: 4}}
  monitor_dir: {tmp}/monitor
spool: {{dir: {tmp}/spool, min_free_mb: 0, closure_timeout_s: 3, stable_ms: 100, discard_timeout_s: 1}}
catalog: {{path: {tmp}/catalog.db}}
signing: {{key_file: {tmp}/keys/signing.ed25519}}
privacy: {{hash_key_file: {tmp}/keys/hash.key}}
storage:
  tiers:
    hot: {{type: local, path: {tmp}/hot}}
    cold: {{type: local, path: {tmp}/cold}}
consent: {{timeout_s: 2, max_attempts: 2, prompts_dir: {tmp}/prompts}}
rules:
  - name: record-inbound
    match: {{direction: [inbound]}}
    action: {{record: yes, consent: explicit, refusal: {{hangup: true}}}}
""")
    return path


def write_wav(path: str, seconds: float = 1.0) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x10\x00" * int(8000 * seconds))


def close_like_asterisk(action: dict[str, Any]) -> None:
    """Write the file MixMonitor would, then run its post-command's effect (touch markers)."""
    write_wav(str(action["file"]))
    for marker in str(action["command"]).split()[1:]:
        Path(marker).touch()


@contextlib.asynccontextmanager
async def daemon_running(config_path: Path) -> AsyncIterator[Daemon]:
    app = build_app(load_config(config_path))
    daemon = Daemon(app, tick_s=0.1, install_signals=False)
    task = asyncio.create_task(daemon.run())
    try:
        assert await app.ami.wait_ready(5)
        yield daemon
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 30)


async def until(predicate: Any, timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def start_call(peer: AmiPeer) -> None:
    base = {"Channel": CHANNEL, "Uniqueid": "100.1", "Linkedid": "100.1"}
    await peer.emit(
        {
            "Event": "Newchannel",
            **base,
            "ChannelState": "4",
            "CallerIDNum": "4915112345678",
            "Exten": "4930123456",
            "Context": "from-trunk",
        }
    )
    await peer.emit({"Event": "Newstate", **base, "ChannelState": "6", "ChannelStateDesc": "Up"})


def agi_vars(commands: list[str]) -> dict[str, str]:
    out = {}
    for c in commands:
        if c.startswith("SET VARIABLE"):
            _, _, name, value = c.split(" ", 3)
            out[name.strip('"')] = value.strip('"')
    return out


async def test_consented_call_is_recorded_spooled_shipped_and_catalogued(tmp_path: Path) -> None:
    agi_port = free_port()
    async with AmiPeer() as peer:
        peer.channels = [
            {
                "Channel": CHANNEL,
                "ChannelState": "6",
                "ChannelStateDesc": "Up",
                "Uniqueid": "100.1",
                "Linkedid": "100.1",
            }
        ]
        cfg = write_config(tmp_path, peer.port, agi_port)
        async with daemon_running(cfg) as daemon:
            peer.channels = []  # resync done: the MixMonitor check accepts any channel now
            await start_call(peer)
            env = env_block(
                ["direction=inbound", "dialed=4930123456", "linkedid=100.1", "lang=en"],
                channel=CHANNEL,
                uniqueid="100.1",
            )
            channel = InbandChannel("1")
            commands = await asyncio.to_thread(converse, agi_port, env, channel)
            results = agi_vars(commands)
            assert results["PBXREC_CONSENT"] == "granted" and results["PBXREC_RESULT"] == "record"
            assert results["PBXREC_RECORDING_ID"].endswith("call002")  # set in band for a resync
            assert commands[0].startswith("EXEC MixMonitor ")  # the consent segment before the question
            asks = [c for c in commands if c.startswith("STREAM FILE ") and c.endswith(" 0123456789*#")]
            assert len(asks) == 1 and "consent-question" in asks[0]  # the question, with barge-in
            mixmonitors = channel.mixmonitors
            assert not peer.actions("MixMonitor")  # nothing started over AMI
            assert "consent" in mixmonitors[0]["file"] and "call" in mixmonitors[1]["file"]
            # the consent segment is stopped by its ID, in band too (after the call recording started)
            assert "EXEC StopMixMonitor 0x00000001" in commands and not peer.actions("StopMixMonitor")
            assert commands.index("EXEC StopMixMonitor 0x00000001") > [
                i for i, c in enumerate(commands) if c.startswith("EXEC MixMonitor ")][1]
            live = daemon.app.catalog.load_live_calls
            await until(lambda: live().get(CALL, {}).get("state") == "recording")
            for action in mixmonitors:
                close_like_asterisk(action)
            await peer.emit(
                {
                    "Event": "Hangup",
                    "Channel": CHANNEL,
                    "Uniqueid": "100.1",
                    "Linkedid": "100.1",
                    "Cause": "16",
                    "Cause-txt": "Normal Clearing",
                }
            )
            await peer.emit(
                {
                    "Event": "Cdr",
                    "Source": "4915112345678",
                    "Destination": "4930123456",
                    "Channel": CHANNEL,
                    "Disposition": "ANSWERED",
                    "Duration": "3",
                    "BillableSeconds": "2",
                    "UniqueID": "100.1",
                    "StartTime": "2024-11-21 15:00:00",
                }
            )
            catalog = daemon.app.catalog

            def shipped() -> bool:
                rows = catalog.recordings_for_call(CALL)
                return len(rows) >= 2 and all(r["state"] not in ("recording", "spooled") for r in rows)

            await until(shipped, 20)
            await until(lambda: CALL not in catalog.load_live_calls(), 5)
            rows = {r["kind"]: r for r in catalog.recordings_for_call(CALL)}
            assert set(rows) == {"call", "consent"}
            assert rows["call"]["sha256"] and rows["call"]["tier"] == "hot"
            call_row = catalog.get_call(CALL)
            assert call_row is not None and call_row["consent_decision"] == "granted"
        assert daemon.summary.finalized == 2 and daemon.summary.command_errors == 0
        assert list((tmp_path / "hot").rglob("*.wav"))


async def test_restart_restores_the_call_and_never_records_twice(tmp_path: Path) -> None:
    agi_port = free_port()
    async with AmiPeer() as peer:
        cfg = write_config(tmp_path, peer.port, agi_port)
        async with daemon_running(cfg) as daemon:
            await start_call(peer)
            env = env_block(
                ["direction=inbound", "dialed=4930123456", "linkedid=100.1"],
                channel=CHANNEL,
                uniqueid="100.1",
            )
            channel = InbandChannel("1")
            await asyncio.to_thread(converse, agi_port, env, channel)
            assert len(channel.mixmonitors) == 2
            await until(
                lambda: daemon.app.catalog.load_live_calls().get(CALL, {}).get("state") == "recording"
            )
            snapshot = daemon.app.catalog.load_live_calls()[CALL]
        # the daemon is gone; the PBX still has the call, recording (variables set by the first daemon)
        rec = next(r for r in snapshot["recordings"] if r["kind"] == "call")
        peer.channels = [
            {
                "Channel": CHANNEL,
                "ChannelState": "6",
                "ChannelStateDesc": "Up",
                "Uniqueid": "100.1",
                "Linkedid": "100.1",
            }
        ]
        peer.variables = {
            CHANNEL: {
                "PBXREC_RESULT": "record",
                "PBXREC_REC_ID": rec["recording_id"],
                "PBXREC_REC_PATH": rec["path"],
            }
        }
        before = len(peer.actions("MixMonitor"))
        async with daemon_running(cfg) as second:
            assert second.summary.restored_calls == 1
            await peer.wait_action("Getvar", 1)
            await asyncio.sleep(0.5)
            assert len(peer.actions("MixMonitor")) == before  # not recorded twice
            assert second.app.callbook.state(CALL) == "recording"
            # the call ended while nobody watched: the resync of a third start ends it
        peer.channels = []
        async with daemon_running(cfg) as third:
            await until(lambda: third.app.callbook.state(CALL) in ("ended", "finalized", ""), 5)
        assert len(peer.actions("MixMonitor")) == before


async def test_failed_mixmonitor_fails_the_call_closed_and_the_daemon_goes_on(tmp_path: Path) -> None:
    agi_port = free_port()
    async with AmiPeer() as peer:
        cfg = write_config(tmp_path, peer.port, agi_port)
        async with daemon_running(cfg) as daemon:
            peer.errors["MixMonitor"] = "Could not start monitoring channel"
            await start_call(peer)
            env = env_block(
                ["direction=inbound", "dialed=4930123456", "linkedid=100.1"],
                channel=CHANNEL,
                uniqueid="100.1",
            )
            failing = InbandChannel("1", fail_mixmonitor=True)
            commands = await asyncio.to_thread(converse, agi_port, env, failing)
            assert agi_vars(commands) == {}  # PBXREC_RESULT unset: the snippet's fail direction
            assert not any("consent-question" in c for c in commands)  # no dialogue without its recording
            await until(lambda: daemon.summary.command_errors == 1)
            # ours, not the caller's: settled at once by the failed start as "not recorded:
            # recorder_failed" (the session's own "failed" comes later and changes nothing), never
            # left to become a hang-up
            await until(lambda: daemon.app.callbook.state(CALL) == "not_recorded")
            snap = daemon.app.callbook.snapshot(CALL)
            assert snap["consent_decision"] == "recorder_failed" and snap["result"] == "failed"
            # the daemon goes on: the next call is handled
            del peer.errors["MixMonitor"]
            await peer.emit(
                {
                    "Event": "Newchannel",
                    "Channel": "PJSIP/bob-2",
                    "Uniqueid": "200.1",
                    "Linkedid": "200.1",
                    "ChannelState": "4",
                }
            )
            env2 = env_block(
                ["direction=inbound", "dialed=4930123456", "linkedid=200.1"],
                channel="PJSIP/bob-2",
                uniqueid="200.1",
            )
            commands = await asyncio.to_thread(converse, agi_port, env2, InbandChannel("1"))
            results = agi_vars(commands)
            assert results["PBXREC_CONSENT"] == "granted" and results["PBXREC_RESULT"] == "record"


async def test_refusal_stops_the_consent_segment_in_band_even_with_ami_stuck(tmp_path: Path) -> None:
    """A "no" must stop the consent-evidence recording at once: on the caller's own AGI socket,
    not by an AMI action that a loaded (or lost) AMI link may answer late or never."""
    agi_port = free_port()
    async with AmiPeer() as peer:
        cfg = write_config(tmp_path, peer.port, agi_port)
        async with daemon_running(cfg) as daemon:
            peer.hold.add("StopMixMonitor")  # AMI would never answer a stop
            await start_call(peer)
            env = env_block(["direction=inbound", "dialed=4930123456", "linkedid=100.1"],
                            channel=CHANNEL, uniqueid="100.1")
            channel = InbandChannel("2")
            commands = await asyncio.to_thread(converse, agi_port, env, channel)
            assert [m["file"].rsplit("/", 1)[1].split("_")[2] for m in channel.mixmonitors] == ["consent001"]
            assert "EXEC StopMixMonitor 0x00000001" in commands
            assert agi_vars(commands)["PBXREC_RESULT"] == "refused"
            assert not peer.actions("StopMixMonitor")
            await until(lambda: daemon.app.callbook.state(CALL) == "refused")


async def test_stale_uploads_are_aborted_every_sweep(tmp_path: Path, monkeypatch: Any) -> None:
    """A killed migration or catalog backup left multipart uploads billed until the daemon's next
    restart, and a single node's start aborted every upload (a running backup's too): now only
    those older than STALE_UPLOAD_S go, at start and every UPLOAD_SWEEP_S."""
    from pbx_recorder import daemon as daemon_module

    class UploadsTier:
        def __init__(self) -> None:
            self.asked: list[float] = []

        def abort_stale_uploads(self, older_than_s: float) -> int:
            self.asked.append(older_than_s)
            return 0

    monkeypatch.setattr(daemon_module, "UPLOAD_SWEEP_S", 0.05)
    tier = UploadsTier()
    async with AmiPeer() as peer:
        cfg = write_config(tmp_path, peer.port, free_port())
        async with daemon_running(cfg) as daemon:
            daemon.app.tiers["s3"] = tier  # type: ignore[index]
            await until(lambda: len(tier.asked) >= 2)
    assert set(tier.asked) == {daemon_module.STALE_UPLOAD_S} and daemon_module.STALE_UPLOAD_S >= 3600
