"""``calls pause|resume`` on FreeSWITCH: ``uuid_record <uuid> mask|unmask <path>`` per recording.

The CLI is its own process: it opens a short inbound ESL connection (no event subscription,
no resync), masks every file of the call's active recordings as the daemon's live snapshot
lists them (the channel uuid and the paths), then announces the change with ``sendevent
CUSTOM pbxrec::mask`` because FreeSWITCH sends no event for a mask: the daemon turns that
event into ``RecordingMuted`` and keeps the pause interval for the manifest.  While masked,
FreeSWITCH writes silence: the timeline is kept.
"""

from __future__ import annotations

import asyncio
from typing import Any

from esl import commands as esc
from esl.client import EslClient
from esl.normalize import EslNormalizer
from pbx_recorder.errors import PbxDisconnected


def masked_files(snapshot: dict[str, Any]) -> list[tuple[str, str]]:
    """(channel uuid, file) of every active recording in a live-call snapshot."""
    out: list[tuple[str, str]] = []
    for rec in snapshot.get("recordings", []):
        if rec.get("state") not in ("recording", "paused"):
            continue
        for path in [rec.get("path", ""), *rec.get("leg_paths", [])]:
            if path and rec.get("channel"):
                out.append((str(rec["channel"]), str(path)))
    return out


async def mask_call(config: Any, call_id: str, snapshot: dict[str, Any], muted: bool) -> list[str]:
    """Mask (or unmask) the call's recordings; returns the channels done."""
    esl = config.pbx.esl
    files = masked_files(snapshot)
    if not files:
        return []
    client = EslClient(
        host=esl.host,
        port=esl.port,
        password=esl.password.reveal() if esl.password else "",
        normalizer=EslNormalizer(config.node),
        api_timeout=esl.api_timeout_s,
        connect_timeout=esl.connect_timeout,
        events=(),
        resync=False,
    )
    task = asyncio.create_task(client.run())
    try:
        if not await client.wait_ready(esl.connect_timeout + 10):
            raise PbxDisconnected(f"ESL {esl.host}:{esl.port} not reachable", call_id=call_id)
        action = "mask" if muted else "unmask"
        for channel, path in files:
            await client.api(esc.uuid_record(channel, action, path, call_id=call_id), call_id=call_id)
        channels = list(dict.fromkeys(channel for channel, _ in files))
        for channel in channels:
            await client.send(esc.mask_event(channel, muted, call_id), call_id=call_id)
        return channels
    finally:
        await client.close()
        await asyncio.wait_for(task, 5)
