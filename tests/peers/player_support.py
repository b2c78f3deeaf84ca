"""Real WAV audio for the player tests: a stereo recording whose channel 1 (the caller) speaks in
the second half only, written in blocks (a 1-hour file is never built in memory)."""

from __future__ import annotations

import hashlib
import io
import math
import struct
from collections.abc import Iterator
from pathlib import Path

from pbx_recorder.catalog import Catalog

RATE = 8000


def wav_header(frames: int, channels: int, rate: int = RATE) -> bytes:
    data = frames * channels * 2
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16) +
            b"data" + struct.pack("<I", data))


def tone_blocks(seconds: int, channels: int, *, caller_from: float = 0.0,
                agent_until: float | None = None, block_s: int = 1) -> Iterator[bytes]:
    """WAV bytes: channel 1 a 440 Hz tone at half scale from ``caller_from`` on, channel 2 (when
    stereo) a 300 Hz tone at a quarter scale until ``agent_until``; silence elsewhere."""
    yield wav_header(seconds * RATE, channels)
    one = [int(16384 * math.sin(2 * math.pi * 440 * i / RATE)) for i in range(RATE)]
    two = [int(8192 * math.sin(2 * math.pi * 300 * i / RATE)) for i in range(RATE)]
    silent = [0] * RATE
    for second in range(0, seconds, block_s):
        ch1 = one if second >= caller_from else silent
        ch2 = two if agent_until is None or second < agent_until else silent
        if channels == 1:
            yield struct.pack(f"<{RATE}h", *ch1) * block_s
        else:
            frame = [v for pair in zip(ch1, ch2, strict=True) for v in pair]
            yield struct.pack(f"<{2 * RATE}h", *frame) * block_s


def put_wav(service, call_id: str, rid: str, seconds: int, channels: int = 2,  # type: ignore[no-untyped-def]
            *, manifest: str = "{}", **tone: float) -> bytes:
    """Store a WAV recording ``rid`` of ``call_id`` on the seeded hot tier; its bytes."""
    data = b"".join(tone_blocks(seconds, channels, **tone))
    key = f"2027/01/{call_id}/{rid}.wav"
    sha = hashlib.sha256(data).hexdigest()
    service.seeded.tier.put(key, io.BytesIO(data), sha256=sha)
    catalog = Catalog(service.seeded.db)
    catalog.upsert_recording({"recording_id": rid, "call_id": call_id, "state": "stored", "size": len(data),
                              "sha256": sha, "tier": "hot", "storage_key": key, "format": "wav",
                              "mode": "stereo" if channels == 2 else "mixed", "duration_s": float(seconds),
                              "manifest": manifest, "created_at": 1_800_000_000.0})
    catalog.close()
    return data


def count_rows(db: Path, sql: str, params: tuple = ()) -> int:  # type: ignore[type-arg]
    from pbx_recorder.lifecycle.journal import open_catalog

    conn = open_catalog(db)
    try:
        return int(conn.execute(sql, params).fetchone()[0])
    finally:
        conn.close()
