"""Peaks of what the product stores: a 1-hour encrypted WAV computed streaming (memory bounded,
measured with tracemalloc), FLAC and Opus through their decoders, and the WAV reader fed in
arbitrary cuts (a header split anywhere, a pipe's unknown data size)."""

from __future__ import annotations

import hashlib
import io
import struct
import tracemalloc
from pathlib import Path

import pytest

from pbx_recorder.recording.waveform import MAX_BUCKETS, WaveformError, WavPeaks
from pbx_recorder.service import peaks as peak_store
from storage import envelope, transcode
from storage.keyring import KeyRing
from storage.local import LocalTier
from tests.peers.player_support import tone_blocks

HOUR = 3600


class _Blocks(io.RawIOBase):
    """A read-only stream over generated blocks (the 1-hour WAV never exists whole)."""

    def __init__(self, blocks) -> None:  # type: ignore[no-untyped-def]
        self._blocks, self._rest = iter(blocks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        while not self._rest:
            self._rest = next(self._blocks, b"")
            if not self._rest:
                return 0
        n = min(len(buf), len(self._rest))
        buf[:n], self._rest = self._rest[:n], self._rest[n:]
        return n


def test_one_hour_encrypted_recording_peaks_in_bounded_memory(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    ring.generate("k1")
    enc = tmp_path / "r-hour.wav.pbxr"
    src = io.BufferedReader(_Blocks(tone_blocks(HOUR, 1, caller_from=1800, block_s=60)), 1 << 16)
    info = envelope.encrypt_stream(src, enc, ring, "k1", "r-hour", key_in_header=False, role="audio")
    tier = LocalTier("hot", tmp_path / "hot")
    tier.put("r-hour.wav.pbxr", enc, sha256=info.ciphertext_sha256)
    enc.unlink()
    plain_size = HOUR * 8000 * 2 + 44
    rec = {"recording_id": "r-hour", "storage_key": "r-hour.wav.pbxr", "encrypted": 1, "format": "wav",
           "key_id": info.key_id, "wrapped_key": info.wrapped_key, "duration_s": float(HOUR),
           "size": tier.stat("r-hour.wav.pbxr").size}  # type: ignore[union-attr]
    tracemalloc.start()
    try:
        result = peak_store.compute(rec, tier, ring)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result["duration"] == HOUR and result["channels"] == 1
    assert len(result["peaks"]) == MAX_BUCKETS  # 3.33 per second
    half = MAX_BUCKETS // 2
    assert max(result["peaks"][:half]) == 0 and min(result["peaks"][half:]) >= 45
    # 57.6 MB of audio; the reader holds a segment and a bucket at a time (plus the result list)
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes for a {plain_size}-byte recording"


@pytest.mark.parametrize("fmt", ["flac", "opus"])
def test_transcoded_formats_are_decoded(tmp_path: Path, fmt: str) -> None:
    wav = tmp_path / "in.wav"
    wav.write_bytes(b"".join(tone_blocks(6, 2, caller_from=3)))
    out = tmp_path / f"out.{fmt}"
    transcode.encode(wav, out, fmt)
    tier = LocalTier("hot", tmp_path / "hot")
    data = out.read_bytes()
    tier.put(f"r.{fmt}", io.BytesIO(data), sha256=hashlib.sha256(data).hexdigest())
    rec = {"recording_id": "r", "storage_key": f"r.{fmt}", "format": fmt, "size": len(data),
           "sha256": hashlib.sha256(data).hexdigest(), "duration_s": 6.0}
    result = peak_store.compute(rec, tier, None)
    assert result["channels"] == 2 and abs(result["duration"] - 6.0) < 0.1
    caller = result["channel_peaks"][0]
    assert max(caller[:25]) <= 2 and min(caller[35:55]) >= 35  # lossy Opus: near, not exact


def test_unknown_format_and_broken_decoder_input_fail_clearly(tmp_path: Path) -> None:
    tier = LocalTier("hot", tmp_path / "hot")
    tier.put("r.flac", io.BytesIO(b"not flac at all"), sha256=hashlib.sha256(b"not flac at all").hexdigest())
    rec = {"recording_id": "r", "storage_key": "r.flac", "format": "flac", "size": 15}
    with pytest.raises(WaveformError):
        peak_store.compute(rec, tier, None)
    with pytest.raises(WaveformError):
        peak_store.compute({**rec, "format": "mp9"}, tier, None)


@pytest.mark.parametrize("cut", [1, 7, 44, 45, 1000, 4093])
def test_wav_reader_takes_any_block_cuts_and_an_unknown_data_size(cut: int) -> None:
    whole = b"".join(tone_blocks(3, 2, caller_from=1))
    piped = whole[:40] + struct.pack("<I", 0xFFFFFFFF) + whole[44:]  # sox's header on a pipe
    for data in (whole, piped):
        acc = WavPeaks(3.0)
        for at in range(0, len(data), cut):
            acc.feed(data[at:at + cut])
        result = acc.result()
        assert result["duration"] == 3.0 and len(result["peaks"]) == 30
        assert result["channel_peaks"][0][:10] == [0] * 10 and min(result["channel_peaks"][0][10:]) >= 45


def test_wav_reader_refuses_what_is_not_pcm_wav() -> None:
    with pytest.raises(WaveformError):
        WavPeaks().feed(b"OggS" + b"\0" * 60)
    acc = WavPeaks()
    acc.feed(b"RIFF\0\0\0\0WAVE")
    with pytest.raises(WaveformError):
        acc.result()
    gsm = bytearray(b"".join(tone_blocks(1, 1)))
    gsm[20:22] = struct.pack("<H", 49)  # WAV49 (GSM in a WAV): not PCM
    with pytest.raises(WaveformError):
        WavPeaks().feed(bytes(gsm))
