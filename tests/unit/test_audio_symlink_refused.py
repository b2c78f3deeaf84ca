"""The PBX account owns its drop folder: a ``.raw`` or ``.wav`` it replaced with a symlink to a
file the recorder can read (a key, the catalog) must never be copied into a stored WAV nor
written to (pbx_recorder/recording/audio.py ``open_regular``, ``wrap_raw_as_wav``,
``fix_wav_sizes``); the pipeline treats it as that recording's failure and goes on."""

from __future__ import annotations

import logging
import os
import struct
import wave
from pathlib import Path

import pytest

from pbx_recorder.core.commands import FinalizeRecording
from pbx_recorder.errors import StorageError
from pbx_recorder.recording.audio import fix_wav_sizes, wrap_raw_as_wav
from pbx_recorder.recording.closure import marker_path
from pbx_recorder.recording.pipeline import Pipeline
from pbx_recorder.recording.spool import Spool

SECRET = b"SECRET-KEY-MATERIAL-0123456789ab" * 64
CALL = "pbx1_L1"
META = {"linkedid": "L1", "uniqueids": ["L1"], "kind": "call", "mode": "stereo",
        "cdr": {"src": "100", "dst": "200", "billsec": "5"}, "recorded_from": 1000.0, "recorded_to": 1005.0}


def _all_bytes(root: Path) -> list[bytes]:
    return [p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def _planted(tmp_path: Path, name: str, content: bytes = SECRET) -> tuple[Path, Path, Path]:
    """(drop folder, the symlink in it, its target outside)."""
    keys = tmp_path / "keys"
    keys.mkdir()
    secret = keys / "master.key"
    secret.write_bytes(content)
    drop = tmp_path / "monitor"
    drop.mkdir()
    link = drop / name
    os.symlink(secret, link)
    return drop, link, secret


def test_wrapping_a_symlinked_raw_is_refused_and_copies_nothing(tmp_path: Path) -> None:
    drop, link, secret = _planted(tmp_path, "pbx1_L1_call001_20260101T000000Z.raw")
    with pytest.raises(StorageError, match="pbx1_L1_call001_20260101T000000Z.raw is a symbolic link"):
        wrap_raw_as_wav(link, channels=2)
    assert sorted(p.name for p in drop.iterdir()) == [link.name]  # no .wav, no temp file left
    assert secret.read_bytes() == SECRET


def test_wrapping_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pbx1_L1_call001_20260101T000000Z.raw"
    os.mkfifo(fifo)
    with pytest.raises(StorageError, match="is not a regular file"):
        wrap_raw_as_wav(fifo, channels=2)


def _zero_size_wav(path: Path) -> bytes:
    """A WAV whose header says 0 data bytes (a killed writer): fix_wav_sizes would rewrite it."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x00" * 800)
    data = bytearray(path.read_bytes())
    data[40:44] = struct.pack("<I", 0)
    path.write_bytes(bytes(data))
    return bytes(data)


def test_header_repair_through_a_symlinked_wav_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    drop, link, secret = _planted(tmp_path, "pbx1_L1_call001_20260101T000000Z.wav")
    before = _zero_size_wav(secret)  # a target the repair would otherwise change
    with pytest.raises(StorageError, match="pbx1_L1_call001_20260101T000000Z.wav is a symbolic link"):
        fix_wav_sizes(link)
    assert secret.read_bytes() == before


def test_regular_files_are_still_wrapped_and_repaired(tmp_path: Path) -> None:
    raw = tmp_path / "a.raw"
    raw.write_bytes(b"\x01\x00\x02\x00" * 800)
    with wave.open(str(wrap_raw_as_wav(raw, channels=2)), "rb") as w:
        assert w.getnframes() == 800
    wav = tmp_path / "b.wav"
    _zero_size_wav(wav)
    assert fix_wav_sizes(wav) is True


async def test_pipeline_keeps_a_symlinked_raw_out_and_goes_on(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    drop, link, secret = _planted(tmp_path, "pbx1_L1_call001_20260101T000000Z.raw")
    marker_path(link).write_text("")
    good = drop / "pbx1_L2_call001_20260101T000000Z.raw"
    good.write_bytes(b"\x01\x00\x02\x00" * 8000 * 5)
    marker_path(good).write_text("")
    spool = Spool(tmp_path / "spool")
    pipe = Pipeline(spool, stable_ms=10, closure_timeout_s=2, poll_ms=5)

    with caplog.at_level(logging.ERROR, logger="pbx_recorder.recording.pipeline"):
        bad = await pipe.finalize(FinalizeRecording(call_id=CALL, recording_id=f"{CALL}_call001",
                                                    paths=(str(link),), metadata=META))
    assert bad is None and f"{CALL}_call001" in pipe.deferred  # that recording only, retried later
    assert any(f"{CALL}_call001" in r.getMessage() and "symbolic link" in r.getMessage()
               for r in caplog.records)
    entry = await pipe.finalize(FinalizeRecording(call_id="pbx1_L2", recording_id="pbx1_L2_call001",
                                                  paths=(str(good),), metadata={**META, "linkedid": "L2"}))
    assert entry is not None and spool.is_complete("pbx1_L2_call001")  # the next one is not held up
    assert not any(b"SECRET-KEY" in data for data in _all_bytes(tmp_path / "spool"))
    assert not any(b"SECRET-KEY" in data for data in _all_bytes(drop))
    assert secret.read_bytes() == SECRET


def test_a_hard_link_to_another_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "master.key"
    secret.write_bytes(SECRET)
    linked = tmp_path / "pbx1_L1_call001_20260101T000000Z.raw"
    os.link(secret, linked)
    with pytest.raises(StorageError, match="2 links: refused"):
        wrap_raw_as_wav(linked, channels=2)
    assert not linked.with_suffix(".wav").exists() and secret.read_bytes() == SECRET
