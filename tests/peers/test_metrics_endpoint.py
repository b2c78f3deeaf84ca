"""The daemon with metrics on: /metrics over HTTP shows the AMI link and a shipped recording."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

from ami_peer import AmiPeer
from fake_asterisk_agi import InbandChannel, converse, env_block
from test_daemon import (
    CALL,
    CHANNEL,
    close_like_asterisk,
    free_port,
    start_call,
    until,
    write_config,
)

from pbx_recorder.app import build_app
from pbx_recorder.config import load_config
from pbx_recorder.daemon import Daemon

CDR = {"Event": "Cdr", "AccountCode": "", "Source": "4915112345678", "Destination": "4930123456",
       "DestinationContext": "from-trunk", "CallerID": "4915112345678", "Channel": CHANNEL,
       "DestinationChannel": "", "LastApplication": "Hangup", "LastData": "",
       "StartTime": "2024-11-21 15:00:00",
       "AnswerTime": "2024-11-21 15:00:01", "EndTime": "2024-11-21 15:00:03", "Duration": "3",
       "BillableSeconds": "2", "Disposition": "ANSWERED", "AMAFlags": "DOCUMENTATION", "UniqueID": "100.1",
       "UserField": ""}


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def test_metrics_endpoint_shows_ami_up_and_a_shipped_recording(tmp_path: Path) -> None:
    agi_port, metrics_port = free_port(), free_port()
    async with AmiPeer() as peer:
        cfg = write_config(tmp_path, peer.port, agi_port)
        cfg.write_text(cfg.read_text() + f"metrics: {{port: {metrics_port}, host: 127.0.0.1}}\n")
        app = build_app(load_config(cfg))
        daemon = Daemon(app, tick_s=0.1, install_signals=False, metrics_every_s=0.1)
        task = asyncio.create_task(daemon.run())
        try:
            assert await app.ami.wait_ready(5)
            await until(lambda: app.metrics.value("pbxrec_ami_connected") == 1, 5)
            first = await asyncio.to_thread(scrape, metrics_port)
            assert first["pbxrec_ami_connected"] == 1
            assert first['pbxrec_calls_total{outcome="recorded"}'] == 0
            await start_call(peer)
            env = env_block(["direction=inbound", "dialed=4930123456", "linkedid=100.1"],
                            channel=CHANNEL, uniqueid="100.1")
            channel = InbandChannel("1")
            await asyncio.to_thread(converse, agi_port, env, channel)
            for action in channel.mixmonitors:  # started in band, on the AGI socket
                close_like_asterisk(action)
            await peer.emit({"Event": "Hangup", "Channel": CHANNEL, "Uniqueid": "100.1",
                             "Linkedid": "100.1", "Cause": "16"})
            await peer.emit(CDR)  # complete, as Asterisk sends it: no framing-injection suspicion
            await until(lambda: app.metrics.value("pbxrec_recordings_shipped_total") == 2, 20)
            await until(lambda: app.metrics.value("pbxrec_spool_pending") == 0, 5)
            after = await asyncio.to_thread(scrape, metrics_port)
        finally:
            daemon.request_stop()
            await asyncio.wait_for(task, 30)
    assert after["pbxrec_recordings_shipped_total"] == 2  # the consent segment and the call
    assert after['pbxrec_calls_total{outcome="recorded"}'] == 1
    assert after['pbxrec_consent_total{decision="granted"}'] == 1
    assert after["pbxrec_mixmonitor_start_lag_seconds_count"] == 2
    assert after["pbxrec_ami_injection_attempts_total"] == 0
    assert after["pbxrec_live_calls"] == 0
    assert 0 < after['pbxrec_hot_tier_used_ratio{tier="hot"}'] <= 1
    assert CALL in {r["call_id"] for r in app.catalog.recordings_for_call(CALL)}
    # stopped with the daemon: the port is free again
    try:
        await asyncio.to_thread(scrape, metrics_port)
        raise AssertionError("metrics still served after shutdown")
    except OSError:
        pass
