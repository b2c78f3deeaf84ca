from __future__ import annotations

import hashlib
import subprocess

import pytest

from pbx_recorder.errors import ConfigError, IntegrityError, StorageError
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from storage import ogg_opus, transcode


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
    assert out.suffix == ".flac" and out.exists() and wav.exists()  # (left for a retry, not stored)
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


def test_missing_encoder_is_a_config_error_that_says_so(tmp_path, monkeypatch):
    assert "flac" in transcode.sox_formats()  # cached while sox is still on PATH
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no opusenc
    with pytest.raises(ConfigError, match="opusenc .Debian package opus-tools.") as err:
        transcode.Transcoder("opus")
    assert err.value.key == "storage.transcode.format"
    with pytest.raises(StorageError, match="opusenc"):
        transcode.encode(tmp_path / "a.wav", tmp_path / "a.opus", "opus")
    with pytest.raises(ConfigError):
        transcode.Transcoder("mp3")


def opus_manifest(wav):
    sha = hashlib.sha256(wav.read_bytes()).hexdigest()
    return Manifest(recording_id="r1", call_id="c1", files=(ManifestFile(wav.name, wav.stat().st_size, sha),))


def decode_opus(path, tmp_path):
    """Independent of the Ogg header reader: decode with opusdec and count the samples."""
    wav = tmp_path / f"{path.stem}.decoded.wav"
    subprocess.run(["opusdec", "--quiet", "--rate", "8000", str(path), str(wav)], check=True)
    n = int(subprocess.run(["soxi", "-s", str(wav)], capture_output=True, text=True, check=True).stdout)
    ch = int(subprocess.run(["soxi", "-c", str(wav)], capture_output=True, text=True, check=True).stdout)
    return wav, n, ch


def channel_rms(wav, channel):
    done = subprocess.run(
        ["sox", str(wav), "-n", "remix", str(channel), "stat"], capture_output=True, text=True
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("RMS     amplitude"))
    return float(line.split(":")[1])


ONE_FRAME_8K = 8000 * transcode.OPUS_FRAME_MS // 1000


def test_opus_round_trip_preserves_duration_within_a_frame(tmp_path):
    wav = make_wav(tmp_path / "mixed.wav", 3.5)
    out, _ = transcode.Transcoder("opus", keep_original=False)(wav, opus_manifest(wav))
    assert out == tmp_path / "mixed.opus" and out.exists() and wav.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mixed.opus", "mixed.wav"]  # no temp files left
    info = ogg_opus.read_info(out)
    assert info.channels == 1 and info.input_rate == 8000 and info.pre_skip > 0
    assert info.samples_48k == 3.5 * 48000  # opusenc trims the end exactly
    _, n, ch = decode_opus(out, tmp_path)
    assert ch == 1 and abs(n - 28000) <= ONE_FRAME_8K
    assert transcode.duration_s(out) == pytest.approx(3.5, abs=transcode.OPUS_FRAME_MS / 1000)


def test_opus_manifest_processing_fields_and_stored_hash(tmp_path):
    wav = make_wav(tmp_path / "mixed.wav", 3.5)
    m = opus_manifest(wav)
    original_sha, original_size = m.files[0].sha256, wav.stat().st_size
    out, m2 = transcode.Transcoder("opus", keep_original=True)(wav, m)
    assert m2.processing["format"] == "opus" and list(m2.processing["transcode"]) == ["mixed.wav"]
    info = m2.processing["transcode"]["mixed.wav"]
    assert info["from"] == "wav" and info["to"] == "opus" and info["tool"] == "opusenc"
    assert info["tool_version"].startswith("opusenc opus-tools") and "libopus" in info["tool_version"]
    assert info["original_sha256"] == original_sha and info["original_size"] == original_size
    assert info["duration_in_s"] == pytest.approx(3.5) and info["duration_out_s"] == pytest.approx(
        3.5, abs=0.06
    )
    assert info["original_kept"] is True and wav.exists()
    stored = out.read_bytes()
    assert info["sha256"] == hashlib.sha256(stored).hexdigest() != original_sha  # hash of the .opus file
    assert info["size"] == len(stored) < original_size / 5
    assert m2.files[0].sha256 == original_sha  # the manifest keeps the original's hash
    same, m3 = transcode.Transcoder("opus")(out, m2)
    assert same == out and m3 is m2  # already Opus: passed through


def test_opus_keeps_stereo_channels_apart(tmp_path):
    wav = tmp_path / "dual.wav"  # left: a tone (caller), right: silence (agent)
    subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            "8000",
            "-b",
            "16",
            "-c",
            "2",
            str(wav),
            "synth",
            "2",
            "sine",
            "440",
            "sine",
            "440",
        ]
        + ["remix", "1", "0"],
        check=True,
    )
    out, m = transcode.Transcoder("opus")(wav, {"recording_id": "r2"})
    assert ogg_opus.read_info(out).channels == 2
    decoded, n, ch = decode_opus(out, tmp_path)
    assert ch == 2 and abs(n - 16000) <= ONE_FRAME_8K
    left, right = channel_rms(decoded, 1), channel_rms(decoded, 2)
    assert left > 0.3 and right < left / 20  # not mixed together
    assert m["processing"]["transcode"]["dual.wav"]["duration_out_s"] == pytest.approx(2.0, abs=0.06)


def test_opus_from_a_format_opusenc_cannot_read(tmp_path):
    gsm = tmp_path / "call.gsm"
    subprocess.run(["sox", str(make_wav(tmp_path / "src.wav", 2.0)), str(gsm)], check=True)
    out, m = transcode.Transcoder("opus")(gsm, {"recording_id": "r3"})
    assert out.suffix == ".opus" and ogg_opus.read_info(out).duration_s == pytest.approx(2.0, abs=0.06)
    assert m["processing"]["transcode"]["call.gsm"]["from"] == "gsm"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.gsm", "call.opus", "src.wav"]


def test_truncated_opus_file_is_an_integrity_error(tmp_path):
    out, _ = transcode.Transcoder("opus")(make_wav(tmp_path / "a.wav", 2.0), {"recording_id": "r4"})
    data = out.read_bytes()
    cut = tmp_path / "cut.opus"
    cut.write_bytes(data[: len(data) - 10])
    with pytest.raises(IntegrityError, match="truncated"):
        ogg_opus.read_info(cut)
    cut.write_bytes(b"RIFF" + data[4:])
    with pytest.raises(IntegrityError, match="no Ogg page"):
        ogg_opus.read_info(cut)
