"""The daemon says it is up: a heartbeat row in ``catalog_settings`` (what the health page reads),
with the PBX connection state and the spool backlog, and a last row when it stops."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ami_peer import AmiPeer
from test_daemon import daemon_running, free_port, until, write_config

from pbx_recorder import heartbeat
from pbx_recorder.lifecycle.journal import open_catalog


def _beats(db: Path) -> list[dict]:
    conn = open_catalog(db)
    try:
        return heartbeat.read_all(conn)
    finally:
        conn.close()


async def test_the_daemon_beats_while_it_runs_and_says_when_it_stopped(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(heartbeat, "INTERVAL_S", 0.1)
    async with AmiPeer() as peer:
        cfg = write_config(tmp_path, peer.port, free_port())
        async with daemon_running(cfg) as daemon:
            def connected_beat() -> bool:
                beats = _beats(tmp_path / "catalog.db")
                return bool(beats) and beats[0].get("pbx_connected") is True

            await until(connected_beat, 10)
            beat = _beats(tmp_path / "catalog.db")[0]
            assert beat["node"] == "pbx1" and beat["live_calls"] == 0 and beat["spool_pending"] == 0
            assert heartbeat.is_up(beat, daemon.clock(), heartbeat.INTERVAL_S * 20)
        await asyncio.sleep(0)
    (last,) = _beats(tmp_path / "catalog.db")
    assert last["stopped"] is True and not heartbeat.is_up(last, last["at"])
