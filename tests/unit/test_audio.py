import shutil
import struct
import wave

import pytest

from pbx_recorder.recording.audio import duration_mismatch, probe_duration


def make_wav(path, seconds, rate=8000, channels=1):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00" * int(rate * seconds) * channels)
    return path


def test_wav_duration(tmp_path):
    info = probe_duration(make_wav(tmp_path / "a.wav", 3.0))
    assert info.ok and info.duration_s == pytest.approx(3.0) and not info.header_repaired


def test_wav_16k_stereo(tmp_path):
    info = probe_duration(make_wav(tmp_path / "a.wav", 2.0, rate=16000, channels=2))
    assert info.duration_s == pytest.approx(2.0)


def test_killed_asterisk_header_zero_sizes(tmp_path):
    p = make_wav(tmp_path / "a.wav", 4.0)
    raw = bytearray(p.read_bytes())
    struct.pack_into("<I", raw, 4, 0)  # RIFF size 0
    struct.pack_into("<I", raw, 40, 0)  # data size 0 (as Asterisk leaves it when killed)
    p.write_bytes(bytes(raw))
    info = probe_duration(p)
    assert info.ok and info.header_repaired and info.duration_s == pytest.approx(4.0)


def test_truncated_file_with_full_header(tmp_path):
    p = make_wav(tmp_path / "a.wav", 4.0)
    raw = p.read_bytes()
    p.write_bytes(raw[: 44 + 16000])  # header says 4 s, only 1 s of data is there
    info = probe_duration(p)
    assert info.ok and info.header_repaired and info.duration_s == pytest.approx(1.0)


def test_corrupt_wav_is_flagged_not_raised(tmp_path):
    p = tmp_path / "bad.wav"
    p.write_bytes(b"this is not audio at all")
    info = probe_duration(p)
    assert not info.ok and info.duration_s is None and "corrupt" in info.error


def test_empty_wav_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    assert not probe_duration(p).ok


def test_missing_file(tmp_path):
    info = probe_duration(tmp_path / "nope.wav")
    assert info.error == "file missing"


def test_raw_and_sln(tmp_path):
    (tmp_path / "a.raw").write_bytes(b"\x00" * 16000 * 3)
    (tmp_path / "a.sln16").write_bytes(b"\x00" * 32000)
    assert probe_duration(tmp_path / "a.raw").duration_s == pytest.approx(3.0)
    assert probe_duration(tmp_path / "a.raw", channels=2).duration_s == pytest.approx(1.5)
    assert probe_duration(tmp_path / "a.sln16").duration_s == pytest.approx(1.0)
    (tmp_path / "odd.sln").write_bytes(b"\x00" * 3)
    assert probe_duration(tmp_path / "odd.sln").error


def test_other_format_via_soxi(tmp_path):
    assert shutil.which("sox"), "sox is a documented system dependency"
    import subprocess
    src = make_wav(tmp_path / "a.wav", 2.0)
    out = tmp_path / "a.flac"
    subprocess.run(["sox", str(src), str(out)], check=True)
    assert probe_duration(out).duration_s == pytest.approx(2.0, abs=0.01)
    bad = tmp_path / "b.flac"
    bad.write_bytes(b"garbage")
    info = probe_duration(bad)
    assert info.duration_s is None and info.error


def test_duration_mismatch_rule():
    assert not duration_mismatch(60.0, 61.2)  # within 1 s + 0.5 % (1.31 s)
    assert duration_mismatch(60.0, 63.0)  # 3 s off on 63 s (the old 5 % let it pass)
    assert duration_mismatch(10.0, 13.0)
    assert not duration_mismatch(100.0, 101.4)  # 1 s + 0.5 % of 101.4 = 1.51
    assert duration_mismatch(100.0, 104.0)
    assert not duration_mismatch(None, 10.0) and not duration_mismatch(10.0, None)
    # pauses keep the timeline with MixMonitorMute; without it they are subtracted
    assert not duration_mismatch(100.0, 100.0, paused_s=30.0)
    assert not duration_mismatch(70.0, 100.0, paused_s=30.0, pause_keeps_timeline=False)
    assert duration_mismatch(70.0, 100.0, paused_s=30.0)
