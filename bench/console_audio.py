"""Part (b) of bench_console.py: a 1-hour encrypted recording through ``/api/recordings/{id}/audio``
against the same audio as a plain file served by Starlette's ``FileResponse`` (the baseline), both
from this process: time to the first byte (from the start, after a seek to 50 % and 90 %), the
whole hour's throughput, and what streaming it costs the process in memory."""

from __future__ import annotations

import io
import json
import os
import statistics
import tracemalloc
import wave
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from bench.console_http import Client, LiveServer, PeakRss
from pbx_recorder.catalog import Catalog
from storage import envelope
from storage.keyring import KeyRing
from storage.local import LocalTier

HOUR_RID = "bench-hour-rec"
HOUR_CALL = "bench-hour-call"
RATE, WIDTH = 8000, 2  # 8 kHz, 16-bit mono: 57.6 MB per hour, as the recorder's WAV
SEEKS = 10  # first-byte samples per position and side


@dataclass(frozen=True)
class Hour:
    plain: Path  # the WAV in clear: what the baseline serves
    tier: LocalTier  # holds the encrypted object
    keyring: KeyRing
    size: int  # plaintext bytes


def _write_wav(path: Path, seconds: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(WIDTH)
        out.setframerate(RATE)
        block = os.urandom(RATE * WIDTH)  # one second of noise, repeated: content does not matter
        for _ in range(seconds):
            out.writeframes(block)


def prepare(work: Path, catalog: Catalog, now: float, seconds: int = 3600) -> Hour:
    """The 1-hour WAV, encrypted as the recorder stores it (64 KiB segments, DEK wrapped in the
    catalog), on a local tier, its recording row on a call of the bench's agent (made once)."""
    plain, meta = work / "hour.wav", work / "hour.json"
    ring, tier = KeyRing(work / "keys"), LocalTier("hot", work / "hot")
    key = f"2026/12/{HOUR_CALL}/{HOUR_RID}.wav.pbxr"
    if not meta.exists():
        if not ring.path_for("bench").exists():
            ring.generate("bench")
        _write_wav(plain, seconds)
        blob = io.BytesIO()
        info = envelope.encrypt_stream(plain, blob, ring, "bench", HOUR_RID, key_in_header=False,
                                       role="audio")
        tier.put(key, io.BytesIO(blob.getvalue()), sha256=info.ciphertext_sha256)
        meta.write_text(json.dumps({"size": len(blob.getvalue()), "sha256": info.ciphertext_sha256,
                                    "key_id": info.key_id, "wrapped_key": info.wrapped_key,
                                    "audio_sha256": info.plaintext_sha256}))
    info = json.loads(meta.read_text())
    catalog.upsert_call({"call_id": HOUR_CALL, "agent": "agent007", "caller_num": "+8613800000001",
                         "status": "answered", "started_at": now - 7200, "queue": "sales"})
    catalog.upsert_recording({"recording_id": HOUR_RID, "call_id": HOUR_CALL, "state": "verified",
                              "tier": "hot", "storage_key": key, "format": "wav", "created_at": now,
                              "encrypted": 1, "duration_s": float(seconds), **info})
    return Hour(plain, tier, ring, plain.stat().st_size)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(hour: Hour, client: Client, samples: int = SEEKS) -> None:
    plain_path = hour.plain

    def plain(_: Request) -> Response:
        return FileResponse(plain_path, media_type="audio/wav")

    base = LiveServer(Starlette(routes=[Route("/plain.wav", plain)]))
    try:
        bare = Client(base.port)
        ours = f"/api/recordings/{HOUR_RID}/audio"
        print(f"\naudio: 1-hour WAV ({hour.size / 1e6:.1f} MB), time to first byte in ms "
              f"({samples} samples each, interleaved), service (encrypted, decrypted per 64 KiB segment) "
              "vs FileResponse (plain file)")
        print(f"{'position':12} {'ours p50':>9} {'ours p95':>9} {'plain p50':>10} {'plain p95':>10} "
              f"{'ratio p50':>10}")
        for label, offset in (("start", None), ("seek 50 %", hour.size // 2),
                              ("seek 90 %", hour.size * 9 // 10)):
            mine, theirs = [], []
            for _ in range(samples):
                mine.append(client.first_byte(ours, offset))
                theirs.append(bare.first_byte("/plain.wav", offset))
            print(f"{label:12} {_pct(mine, 50):9.2f} {_pct(mine, 95):9.2f} {_pct(theirs, 50):10.2f} "
                  f"{_pct(theirs, 95):10.2f} {statistics.median(mine) / statistics.median(theirs):9.1f}x")
        for label, who, path in (("service", client, ours), ("FileResponse", bare, "/plain.wav")):
            with PeakRss() as rss:
                seconds, size = who.stream(path)
            if size != hour.size:
                raise SystemExit(f"{label}: streamed {size} bytes of {hour.size}")
            tracemalloc.start()
            who.stream(path)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"whole hour, {label:12}: {seconds:6.2f} s ({size / seconds / 1e6:6.1f} MB/s), "
                  f"RSS grew {rss.grown_mb:5.1f} MiB, Python allocations peak {peak / 2**20:5.2f} MiB "
                  "(tracemalloc, a second stream; client included)")
    finally:
        base.close()
