"""A WAV left by a killed writer (FreeSWITCH SIGKILLed mid-call: libsndfile writes the sizes on
close only) gets its RIFF/data sizes from what the file holds, so the stored file plays."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

from pbx_recorder.recording.audio import fix_wav_sizes, probe_duration


def killed_writer_wav(path: Path, seconds: float) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x10\x00" * int(8000 * seconds))
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", 36)  # what the header said before any sample was written
    data[40:44] = struct.pack("<I", 0)
    path.write_bytes(bytes(data))


def test_sizes_are_repaired_in_place(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    killed_writer_wav(path, 2.5)
    before = probe_duration(path)
    assert before.header_repaired and before.duration_s == 2.5
    assert fix_wav_sizes(path) is True
    with wave.open(str(path), "rb") as w:
        assert w.getnframes() == 20_000
    after = probe_duration(path)
    assert after.duration_s == 2.5 and not after.header_repaired
    assert fix_wav_sizes(path) is False  # idempotent


def test_not_a_wav_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"not riff at all")
    assert fix_wav_sizes(path) is False and path.read_bytes() == b"not riff at all"
