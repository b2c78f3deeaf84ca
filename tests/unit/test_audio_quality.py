"""Issue 10: short, silent-only and cut recordings are flagged; the duration check is tight."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

from pbx_recorder.recording.audio import duration_mismatch
from pbx_recorder.recording.audio_quality import has_sound, quality_flags


def _wav(path: Path, seconds: float, amplitude: int) -> Path:
    frames = int(8000 * seconds)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(amplitude * math.sin(n / 5))) for n in range(frames)))
    return path


def test_silent_and_short_files_are_flagged(tmp_path: Path) -> None:
    near_silent = _wav(tmp_path / "a.wav", 0.3, 40)  # about -58 dBFS: line hiss
    assert has_sound(near_silent) is False
    assert quality_flags(0.3, False, False) == ["short", "silent"]
    speech = _wav(tmp_path / "b.wav", 3.0, 8000)
    assert has_sound(speech) is True
    assert quality_flags(3.0, True, False) == []


def test_cut_file_and_unknown_level(tmp_path: Path) -> None:
    assert quality_flags(12.0, None, True) == ["cut"]
    assert has_sound(tmp_path / "missing.wav") is None
    (tmp_path / "x.gsm").write_bytes(b"\0" * 33)
    assert has_sound(tmp_path / "x.gsm") is None


def test_raw_stereo_level(tmp_path: Path) -> None:
    raw = tmp_path / "s.raw"
    raw.write_bytes(b"\0\0" * 16000)
    assert has_sound(raw, channels=2) is False
    raw.write_bytes(b"\0\0" * 16000 + struct.pack("<h", 20000) * 320)
    assert has_sound(raw, channels=2) is True


def test_duration_tolerance_follows_the_pbx_timestamps():
    assert duration_mismatch(600.0, 630.0)  # 30 s of drift on a 10-minute call: no longer passes
    assert duration_mismatch(10.0, 11.7)  # 1.7 s off on 11.7 s
    assert not duration_mismatch(600.0, 603.5)  # 1 s + 0.5 % = 4 s
    assert not duration_mismatch(10.0, 10.8)
