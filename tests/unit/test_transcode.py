from __future__ import annotations

import hashlib
import subprocess

import pytest

from pbx_recorder.errors import ConfigError
from pbx_recorder.manifest import Manifest, ManifestFile
from storage import transcode


def make_wav(path, seconds=3.5):
    subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-b",
            "16",
            str(path),
            "synth",
            str(seconds),
            "sine",
            "300-900",
            "vol",
            "0.3",
        ],
        check=True,
    )
    return path


def test_flac_preserves_duration_and_samples_and_records_original_hash(tmp_path):
    wav = make_wav(tmp_path / "mixed.wav")
    original_sha = hashlib.sha256(wav.read_bytes()).hexdigest()
    raw_before = subprocess.run(["sox", str(wav), "-t", "raw", "-"], capture_output=True, check=True).stdout
    m = Manifest(
        recording_id="r1", call_id="c1", files=(ManifestFile("mixed.wav", wav.stat().st_size, original_sha),)
    )
    out, m2 = transcode.Transcoder("flac", keep_original=False)(wav, m)
    assert out.suffix == ".flac" and out.exists() and not wav.exists()
    assert transcode.duration_s(out) == pytest.approx(3.5, abs=1e-3)
    info = m2.processing["transcode"]["mixed.wav"]
    assert m2.processing["format"] == "flac" and info["original_sha256"] == original_sha
    assert info["duration_in_s"] == info["duration_out_s"] == pytest.approx(3.5)
    assert m2.files[0].sha256 == original_sha  # the manifest keeps the original's hash
    assert info["size"] < info["original_size"]
    raw_after = subprocess.run(["sox", str(out), "-t", "raw", "-"], capture_output=True, check=True).stdout
    assert raw_after == raw_before  # lossless


def test_keep_original_and_passthrough(tmp_path):
    wav = make_wav(tmp_path / "a.wav", 1.0)
    out, m = transcode.Transcoder("flac", keep_original=True)(wav, {"recording_id": "r"})
    assert wav.exists() and out.exists() and m["processing"]["transcode"]["a.wav"]["original_kept"] is True
    same, m3 = transcode.Transcoder("flac")(out, m)
    assert same == out and m3 is m
    assert transcode.Transcoder("none")(wav, m) == (wav, m)


def test_unavailable_format_is_a_config_error_that_says_so():
    if "opus" in transcode.available_formats():
        assert transcode.Transcoder("opus").fmt == "opus"
    else:
        with pytest.raises(ConfigError, match="not available on this machine"):
            transcode.Transcoder("opus")
    with pytest.raises(ConfigError):
        transcode.Transcoder("mp3")
