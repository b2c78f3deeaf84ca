"""The daemon over an in-process AMI peer, where a PCI pause can go wrong without a word from the
PBX: the mute the core sends for a transfer's next segment (which starts paused) is refused by
Asterisk; events are lost inside the AMI client.  In both, what ``calls pause`` and the console
read (the live-call snapshot in the catalog) must say so: no pause claimed for a segment that was
never muted, and a MixMonitor count no longer trusted on an Asterisk that mutes only the first."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ami_peer import AmiPeer
from test_daemon import daemon_running, free_port, until, write_config

from pbx_recorder.core import events as E
from pbx_recorder.core.mixmonitor_order import UNKNOWN, pause_doubt
from pbx_recorder.core.naming import make_call_id
from pbx_recorder.daemon import Daemon
from pbx_recorder.live_persistence import PERSIST_BATCH_S
from tests.catalog_redirect import catalog_url

CALL = make_call_id("pbx1", "300.1")
AGENT, TARGET = "PJSIP/agent-01", "PJSIP/agent-03"


def record_every_call(tmp: Path, ami_port: int, agi_port: int) -> Path:
    path = write_config(tmp, ami_port, agi_port)
    text = path.read_text()
    rules = text[text.index("rules:"):]
    path.write_text(text.replace(rules, """rules:
  - name: record-all
    match: {direction: [inbound, outbound]}
    action: {record: yes, consent: none}
"""))
    return path


async def recorded_and_paused(daemon: Daemon) -> None:
    """An outbound call recorded on the agent's channel and paused (the PBX's mute event seen),
    every event of it seen since the daemon's connect and resync."""
    await until(lambda: daemon.app.callbook.events_seen)  # the connect's resync completed
    assert daemon.app.callbook.mute_all is None  # the peer does not say its version: "the first only"
    for event in (E.ChannelCreated(1, "300.1", "300.1", AGENT, exten="00441234"),
                  E.ConsentRequested(1.1, "300.1", "300.1", AGENT, "outbound", "00441234"),
                  E.ChannelCreated(1.2, "300.1", "300.2", "PJSIP/trunk-02"),
                  E.ChannelAnswered(5, "300.1", "300.2", "PJSIP/trunk-02")):
        await daemon.handle(event)
    call = daemon.app.callbook.find(CALL)
    assert call is not None and [r.state for r in call.recordings] == ["recording"]
    await daemon.handle(E.MixMonitorStarted(5.1, "300.1", "300.1", AGENT))
    await daemon.handle(E.RecordingMuted(30, "300.1", "300.1", AGENT, True))
    assert daemon.app.callbook.state(CALL) == "paused"


def snapshot(daemon: Daemon) -> dict[str, Any]:
    return dict(daemon.app.catalog.load_live_calls().get(CALL, {}))


async def test_a_refused_mute_of_a_transfers_segment_is_no_pause_in_the_snapshot(tmp_path: Path) -> None:
    async with AmiPeer() as peer:
        peer.errors["MixMonitorMute"] = "Cannot set mute flag"
        async with daemon_running(record_every_call(tmp_path, peer.port, free_port())) as daemon:
            await recorded_and_paused(daemon)
            await daemon.handle(E.ChannelCreated(40, "300.1", "300.3", TARGET))
            await daemon.handle(E.Transferred(41, "300.1", "300.1", AGENT, kind="blind",
                                              target_channel=TARGET))
            await daemon.handle(E.ChannelHungUp(41, "300.1", "300.1", AGENT))
            assert [a["channel"] for a in peer.actions("MixMonitor")][-1] == TARGET
            assert [a["channel"] for a in peer.actions("MixMonitorMute")] == [TARGET]  # sent, refused

            def second() -> dict[str, Any]:
                recs = snapshot(daemon).get("recordings", [])
                return dict(recs[1]) if len(recs) > 1 else {}

            await until(lambda: second().get("flags") == ["pause_missed"])
            rec = second()
            assert (rec["state"], rec["pauses"]) == ("recording", [])  # before: paused [[41, None]]
            assert snapshot(daemon)["state"] == "recording"
            assert snapshot(daemon)["recordings"][0]["pauses"] == [[30, 41]]


async def test_events_lost_reach_the_snapshot_that_calls_pause_reads(tmp_path: Path) -> None:
    async with AmiPeer() as peer, \
            daemon_running(record_every_call(tmp_path, peer.port, free_port())) as daemon:
        await recorded_and_paused(daemon)
        await until(lambda: snapshot(daemon).get("state") == "paused")
        await asyncio.sleep(3 * PERSIST_BATCH_S)  # nothing of the call left to write
        assert not daemon._dirty and snapshot(daemon)["mixmonitors_known"] is True
        # the framing guard dropped blocks: no event names the call, its snapshot is written again
        # (what arrived from 6 s on may be lost: within GAP_MARGIN_S of the recording's start at 5.1 s)
        await daemon.handle(E.PbxEventsLost(31, reason="the framing guard dropped blocks", since=6))
        await until(lambda: snapshot(daemon).get("mixmonitors_known") is False)
        assert pause_doubt("16.28.0", snapshot(daemon), AGENT) == UNKNOWN


async def recorded(daemon: Daemon) -> None:
    """As :func:`recorded_and_paused`, without the pause; its snapshot written."""
    await until(lambda: daemon.app.callbook.events_seen)
    for event in (E.ChannelCreated(1, "300.1", "300.1", AGENT, exten="00441234"),
                  E.ConsentRequested(1.1, "300.1", "300.1", AGENT, "outbound", "00441234"),
                  E.ChannelCreated(1.2, "300.1", "300.2", "PJSIP/trunk-02"),
                  E.ChannelAnswered(5, "300.1", "300.2", "PJSIP/trunk-02"),
                  E.MixMonitorStarted(5.1, "300.1", "300.1", AGENT)):
        await daemon.handle(event)
    await until(lambda: snapshot(daemon).get("mixmonitors") == {AGENT: [f"{CALL}_call001"]})


def pbx_event(name: str, **more: str) -> dict[str, str]:
    return {"Event": name, "Channel": AGENT, "Uniqueid": "300.1", "Linkedid": "300.1", **more}


async def cli(config: Path, *args: str) -> int:
    from pbx_recorder.cli import main

    return int(await asyncio.to_thread(main, ["--config", str(config), *args]))


def with_confirm(path: Path, seconds: float) -> Path:
    path.write_text(path.read_text().replace("pause_confirm_s: 0.3", f"pause_confirm_s: {seconds}"))
    return path


@contextlib.asynccontextmanager
async def pausing(tmp_path: Path,
                  confirm_s: float) -> AsyncIterator[tuple[AmiPeer, Daemon, asyncio.Task[int]]]:
    """A recorded call and ``calls pause`` run on it, once its mute has reached the PBX."""
    async with AmiPeer() as peer:
        config = with_confirm(record_every_call(tmp_path, peer.port, free_port()), confirm_s)
        async with daemon_running(config) as daemon:
            await recorded(daemon)
            command = asyncio.create_task(cli(config, "calls", "pause", CALL))
            await peer.wait_action("MixMonitorMute")
            yield peer, daemon, command


async def test_calls_pause_waits_for_the_daemon_to_record_the_pause(tmp_path: Path, capsys: Any) -> None:
    async with pausing(tmp_path, 10) as (peer, daemon, command):
        assert not command.done()  # it waits for the daemon's verdict
        await peer.emit(pbx_event("MixMonitorMute", State="1", Direction="both"))
        assert await asyncio.wait_for(command, 15) == 0
        assert "not record" not in capsys.readouterr().err  # no "not confirmed" warning
        assert snapshot(daemon)["recordings"][0]["state"] == "paused"
        (row,) = [e for e in daemon.app.catalog.audit_entries() if e["action"] == "pause"]
        assert row["detail"]["recorder"] == "confirmed"


async def test_a_pause_the_daemon_finds_in_doubt_is_undone_and_refused(tmp_path: Path) -> None:
    """The PBX starts a MixMonitor of its own between the command's check and its mute: on an
    Asterisk that mutes only the first, the mute may have silenced that one.  The daemon flags it,
    the command unmutes the channel again and exits 5 (refused), audited with the reason."""
    async with pausing(tmp_path, 10) as (peer, daemon, command):
        await peer.emit(pbx_event("MixMonitorStart"))  # the PBX's own, counted after ours
        await peer.emit(pbx_event("MixMonitorMute", State="1", Direction="both"))
        assert await asyncio.wait_for(command, 15) == 5
        mutes = [(m["channel"], m["state"]) for m in peer.actions("MixMonitorMute")]
        assert mutes == [(AGENT, "1"), (AGENT, "0")]  # unmuted again
        rec = snapshot(daemon)["recordings"][0]
        assert (rec["state"], rec["pauses"], rec["flags"]) == ("recording", [], ["pause_missed"])
        (row,) = [e for e in daemon.app.catalog.audit_entries() if e["action"] == "denied:calls.pause"]
        assert row["detail"]["reason"] == "pbx_own_mixmonitor_after_mute"


async def test_a_pause_nobody_records_is_reported_sent_and_not_confirmed(tmp_path: Path, capsys: Any) -> None:
    async with AmiPeer() as peer:
        config = with_confirm(record_every_call(tmp_path, peer.port, free_port()), 0.5)
        async with daemon_running(config) as daemon:
            await recorded(daemon)
            assert await cli(config, "calls", "pause", CALL) == 0  # no mute event from this PBX
            assert "did not record it within 0.5 s" in capsys.readouterr().err
            (row,) = [e for e in daemon.app.catalog.audit_entries() if e["action"] == "pause"]
            assert row["detail"]["recorder"] == "unconfirmed"


#: the CLI's entry point with Ctrl-C in effect, as in a terminal (a test run started in the
#: background of a non-interactive shell ignores SIGINT, and its children inherit that)
AS_FROM_A_TERMINAL = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                      "sys.argv[0] = 'pbx-recorder'; from pbx_recorder.cli import run_main; run_main()")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
async def test_a_pause_stopped_before_its_verdict_leaves_no_mute_behind(tmp_path: Path, stop: int) -> None:
    """``calls pause`` stopped (Ctrl-C, ``kill``) after its mute reached the PBX and before the
    daemon's verdict: the operator is told nothing, so the channel is unmuted again and the pause
    refused (``aborted``, audited).  Before, the mute stayed, on whichever MixMonitor it reached."""
    async with AmiPeer() as peer:
        config = with_confirm(record_every_call(tmp_path, peer.port, free_port()), 30)
        url = catalog_url(tmp_path / "catalog.db")  # (a PostgreSQL run: the schema the daemon writes)
        if url is not None:
            text, db = config.read_text(), tmp_path / "catalog.db"
            config.write_text(text.replace(f"catalog: {{path: {db}}}",
                                           f"catalog: {{path: {db}, url: {json.dumps(url)}}}"))
            assert url in config.read_text()
        async with daemon_running(config) as daemon:
            await recorded(daemon)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", AS_FROM_A_TERMINAL, "--config", str(config), "calls", "pause", CALL,
                stderr=asyncio.subprocess.PIPE)
            await peer.wait_action("MixMonitorMute")
            proc.send_signal(stop)
            try:
                _, err = await asyncio.wait_for(proc.communicate(), 10)
            except TimeoutError:
                proc.kill()
                _, err = await proc.communicate()
                raise AssertionError(err.decode()) from None
            assert proc.returncode == 5, err.decode()
            assert "unmuted again" in err.decode()
            mutes = [(m["channel"], m["state"]) for m in peer.actions("MixMonitorMute")]
            assert mutes == [(AGENT, "1"), (AGENT, "0")]
            (row,) = [e for e in daemon.app.catalog.audit_entries() if e["action"] == "denied:calls.pause"]
            assert row["detail"]["reason"] == "aborted"
