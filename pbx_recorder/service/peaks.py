"""A recording's waveform peaks: computed once from the decrypted audio, kept in ``waveform_peaks``.

The audio is streamed (``audio_access.plaintext_range``: segment by segment, decrypted on the
fly) into :class:`pbx_recorder.recording.waveform.WavPeaks`; a 1-hour recording is never held whole.
The formats the product stores: ``wav`` (read here), ``flac`` and ``gsm`` (decoded by ``sox``,
which the transcoder already uses) and ``opus`` (``opusdec``, from opus-tools beside
``opusenc``); a decoder reads the stream on its stdin and writes WAV on its stdout.

What is cached is the peaks only.  The PCI-paused stretches (the manifest's ``pauses``, epoch
seconds, made relative to ``recorded_from``) and the customer's channel are added per answer:
they are metadata of the row, not of the audio.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from pbx_recorder import audio_access
from pbx_recorder.errors import RecorderError
from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.recording import manifest_copy
from pbx_recorder.recording.recording_objects import AUDIO, leg_role, objects_of
from pbx_recorder.recording.waveform import WaveformError, WavPeaks
from pbx_recorder.service.context import ServiceContext
from storage.base import Tier

log = logging.getLogger(__name__)

DECODERS: Mapping[str, tuple[str, ...]] = {
    "flac": ("sox", "-q", "-t", "flac", "-", "-t", "wav", "-b", "16", "-"),
    "gsm": ("sox", "-q", "-t", "gsm", "-", "-t", "wav", "-b", "16", "-"),
    "opus": ("opusdec", "--quiet", "--rate", "8000", "--force-wav", "-", "-"),
}
LEG_READ, LEG_WRITE = leg_role(0, "read"), leg_role(1, "write")
DECODE_TIMEOUT_S = 600.0
READ_BLOCK = 1 << 16


def _decoded(fmt: str, blocks: Iterator[bytes]) -> Iterator[bytes]:
    """WAV bytes of ``blocks`` (audio in ``fmt``), streamed through the format's decoder."""
    if fmt in ("wav", "sln", "raw", ""):
        yield from blocks
        return
    if fmt not in DECODERS:
        raise WaveformError(f"no decoder for format {fmt!r}")
    proc = subprocess.Popen(DECODERS[fmt], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    failure: list[BaseException] = []

    def feed() -> None:
        try:
            for block in blocks:
                proc.stdin.write(block)  # type: ignore[union-attr]
        except (BrokenPipeError, RecorderError, OSError) as exc:
            failure.append(exc)
        finally:
            try:
                proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass

    writer = threading.Thread(target=feed, name="peaks-decoder-feed", daemon=True)
    writer.start()
    try:
        while block := proc.stdout.read(READ_BLOCK):
            yield block
    finally:
        proc.stdout.close()
        writer.join(DECODE_TIMEOUT_S)
        if proc.wait(DECODE_TIMEOUT_S) != 0 and not failure:
            failure.append(WaveformError(f"{DECODERS[fmt][0]} failed on the {fmt} audio"))
    if failure:
        raise WaveformError(f"decoding {fmt}: {failure[0]}") from failure[0]


def _peaks_of_object(rec: Mapping[str, Any], tier: Tier, keyring: Any, role: str = AUDIO) -> dict[str, Any]:
    """Peaks of the object at ``rec["storage_key"]``, opened as the recording's object ``role``."""
    size = audio_access.plaintext_size(rec, tier, role=role)
    fmt = str(rec.get("format") or "wav").lower()
    acc = WavPeaks(float(rec["duration_s"]) if rec.get("duration_s") else None)
    for block in _decoded(fmt, audio_access.plaintext_range(rec, tier, keyring, 0, size, role=role)):
        acc.feed(block)
    return acc.result()


def _leg(rec: Mapping[str, Any], tier: Tier, key: str, sha256: str) -> dict[str, Any]:
    """``rec`` as if the leg at ``key`` were its main file (a plain one is checked against its hash)."""
    info = tier.stat(key)
    return {**rec, "storage_key": key, "sha256": sha256, "size": int(info.size) if info is not None else 0}


def compute(rec: Mapping[str, Any], tier: Tier, keyring: Any) -> dict[str, Any]:
    """The peaks of ``rec``, read from ``tier`` (streamed; memory independent of the length).
    A dual-mode recording's main file is the mix; its two leg files (``leg:read``, what the
    recorded channel sent, and ``leg:write``, what it heard) give the per-channel peaks."""
    result = _peaks_of_object(rec, tier, keyring)
    if rec.get("mode") == "dual":
        legs = {o.role: o for o in objects_of(rec)}
        if LEG_READ in legs and LEG_WRITE in legs:  # same data key and AAD as the main file: opened by role
            result["channel_peaks"] = [
                _peaks_of_object(_leg(rec, tier, legs[r].key, legs[r].sha256), tier, keyring, r)["peaks"]
                for r in (LEG_READ, LEG_WRITE)]
    return result


def cached(ctx: ServiceContext, recording_id: str) -> dict[str, Any] | None:
    row = ctx.catalog.connection().execute(
        "SELECT peaks FROM waveform_peaks WHERE recording_id = ?", (recording_id,)).fetchone()
    return json.loads(row[0]) if row else None


def peaks_of(ctx: ServiceContext, rec: Mapping[str, Any], tier: Tier) -> dict[str, Any]:
    """The cached peaks of ``rec``, computed and stored on the first request."""
    rid = str(rec["recording_id"])
    found = cached(ctx, rid)
    if found is not None:
        return found
    peaks = compute(rec, tier, ctx.keyring)
    conn = ctx.catalog.connection()
    with Tx(conn):  # two first requests at once: the first row stays (the same peaks)
        conn.execute("INSERT INTO waveform_peaks (recording_id, peaks, created_at) VALUES (?, ?, ?) "
                     "ON CONFLICT (recording_id) DO NOTHING",
                     (rid, json.dumps(peaks, separators=(",", ":")), ctx.clock()))
    log.info("recording %s: waveform peaks computed (%d buckets)", rid, len(peaks["peaks"]))
    return peaks


def pauses_of(rec: Mapping[str, Any]) -> list[list[float]]:
    """The PCI-paused stretches as [start, end] seconds from the recording's start."""
    manifest = manifest_copy.parse(rec.get("manifest"))  # pauses and span: kept in the catalog copy
    origin = manifest.get("recorded_from")
    out = []
    for pair in manifest.get("pauses") or ():
        try:
            start, end = float(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError):
            continue
        if origin is not None:
            start, end = start - float(origin), end - float(origin)
        if end > start >= -1.0:
            out.append([round(max(start, 0.0), 3), round(end, 3)])
    return out


def customer_channel(call: Mapping[str, Any], channel_peaks: list[list[int]]) -> int | None:
    """Index of the customer's channel in ``channel_peaks`` (README "The player"): channel 1
    (index 0; a dual recording's ``read`` leg) carries what the recorded channel sent, the caller
    on an inbound call; on an outbound call the recorded channel is the agent's, so the customer
    is channel 2 (index 1).  None without two channels."""
    if len(channel_peaks) != 2:
        return None
    return 1 if str(call.get("direction") or "") == "outbound" else 0
