import wave

import pytest

from pbx_recorder.catalog import Catalog
from pbx_recorder.core.commands import DiscardRecording, FinalizeRecording
from pbx_recorder.recording.closure import CLOSED_MARKER, FILE_MISSING, Closure, marker_path
from pbx_recorder.recording.pipeline import Pipeline, manifest_from_metadata
from pbx_recorder.recording.spool import Spool

CALL = "n1_1700000000.1"
RID = CALL + "_call001"


def make_wav(path, seconds):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * int(8000 * seconds))
    return path


def closed_marker_waiter(path):
    async def wait(p):
        return Closure(str(p), CLOSED_MARKER, size=1)
    return wait


META = {"linkedid": "1700000000.1", "uniqueids": ["1700000000.1"], "kind": "call", "mode": "mixed",
        "cdr": {"src": "13812345678", "dst": "100", "billsec": "5", "lastapp": "Dial"}, "rule": "all",
        "tags": ["vip"], "recorded_from": 1000.0, "recorded_to": 1005.0, "pauses": [[1001.0, 1002.0]],
        "unknown_key": "ignored"}


async def test_finalize_spools_with_duration_and_manifest(tmp_path):
    mon = tmp_path / "mon"
    mon.mkdir()
    wav = make_wav(mon / "a.wav", 5.0)
    marker_path(wav).write_text("")
    spool = Spool(tmp_path / "spool")
    pipe = Pipeline(spool, stable_ms=10, closure_timeout_s=2, poll_ms=5)
    entry = await pipe.finalize(FinalizeRecording(call_id=CALL, recording_id=RID, paths=(str(wav),),
                                                  metadata=META))
    assert entry is not None and spool.is_complete(RID)
    m = entry.manifest
    assert m.files[0].duration_s == pytest.approx(5.0) and m.files[0].sha256
    assert m.cdr == {"src": "13812345678", "dst": "100", "billsec": "5"}
    assert m.tags == ("vip",) and m.pauses == ((1001.0, 1002.0),) and m.flags == ("silent",)  # zeros
    assert not wav.exists() and not marker_path(wav).exists()


async def test_finalize_flags_mismatch_and_missing_cdr(tmp_path):
    wav = make_wav(tmp_path / "a.wav", 2.0)
    spool = Spool(tmp_path / "spool")
    pipe = Pipeline(spool, waiter=closed_marker_waiter(wav))
    meta = {"recorded_from": 1000.0, "recorded_to": 1060.0}
    entry = await pipe.finalize(FinalizeRecording(call_id=CALL, recording_id=RID, paths=(str(wav),),
                                                  metadata=meta))
    assert set(entry.manifest.flags) == {"cdr_missing", "duration_mismatch", "silent"}


async def test_finalize_missing_file_writes_catalog_row(tmp_path):
    spool = Spool(tmp_path / "spool")
    catalog = Catalog(tmp_path / "cat.db")
    pipe = Pipeline(spool, catalog=catalog, stable_ms=10, closure_timeout_s=0.05, poll_ms=10)
    result = await pipe.finalize(FinalizeRecording(call_id=CALL, recording_id=RID,
                                                   paths=(str(tmp_path / "never.wav"),), metadata=META))
    assert result is None and spool.pending() == []
    row = catalog.get_recording(RID)
    assert row["state"] == "missing" and "file_missing" in row["flags"]
    assert catalog.get_call(CALL) is not None  # the call row exists even without audio
    catalog.close()


async def test_finalize_error_is_contained_and_logged(tmp_path, caplog):
    wav = make_wav(tmp_path / "a.wav", 1.0)
    spool = Spool(tmp_path / "spool")
    pipe = Pipeline(spool, waiter=closed_marker_waiter(wav))
    result = await pipe.finalize(FinalizeRecording(call_id=CALL, recording_id="../evil", paths=(str(wav),)))
    assert result is None
    assert CALL in caplog.text and "../evil" in caplog.text
    assert wav.exists()


async def test_discard_removes_files_and_markers(tmp_path, caplog):
    caplog.set_level("INFO")
    a = make_wav(tmp_path / "a-rx.wav", 1.0)
    b = make_wav(tmp_path / "a-tx.wav", 1.0)
    marker_path(a).write_text("")
    marker_path(b).write_text("")

    async def waiter(p):
        return Closure(str(p), CLOSED_MARKER)

    pipe = Pipeline(Spool(tmp_path / "spool"), waiter=waiter)
    removed = await pipe.discard(DiscardRecording(call_id=CALL, recording_id=RID, paths=(str(a), str(b)),
                                                  reason="consent refused"))
    assert removed == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spool"]
    assert "consent refused" in caplog.text and RID in caplog.text


async def test_discard_missing_files_is_fine(tmp_path):
    async def waiter(p):
        return Closure(str(p), FILE_MISSING)

    pipe = Pipeline(Spool(tmp_path / "spool"), waiter=waiter)
    assert await pipe.discard(DiscardRecording(call_id=CALL, recording_id=RID,
                                               paths=(str(tmp_path / "x.wav"),), reason="no answer")) == 0


def test_manifest_from_metadata_dual_roles():
    m = manifest_from_metadata(CALL, RID, {"mode": "dual", "cdr": {}}, now=7.0)
    assert m.created_at == 7.0 and m.flags == ("cdr_missing",)


async def test_spooled_row_and_duplicate_finalize_is_ignored(tmp_path):
    wav = make_wav(tmp_path / "a.wav", 1.0)
    spool = Spool(tmp_path / "spool")
    catalog = Catalog(tmp_path / "cat.db")
    pipe = Pipeline(spool, catalog=catalog, waiter=closed_marker_waiter(wav))
    cmd = FinalizeRecording(call_id=CALL, recording_id=RID, paths=(str(wav),), metadata=META)
    entry = await pipe.finalize(cmd)
    row = catalog.get_recording(RID)
    assert row["state"] == "spooled" and row["audio_sha256"] == entry.manifest.audio_sha256
    assert await pipe.finalize(cmd) is None  # duplicate: spool entry untouched
    assert spool.pending()[0].manifest == entry.manifest
    spool.remove(RID)
    catalog.mark_state(RID, "verified")
    assert await pipe.finalize(cmd) is None  # shipped already: no 'missing' overwrite
    assert catalog.get_recording(RID)["state"] == "verified"
    catalog.close()


async def test_spool_full_defers_and_retries(tmp_path):
    wav = make_wav(tmp_path / "a.wav", 1.0)
    free = [0]
    spool = Spool(tmp_path / "spool", min_free_mb=1, free_bytes=lambda p: free[0])
    pipe = Pipeline(spool, waiter=closed_marker_waiter(wav))
    cmd = FinalizeRecording(call_id=CALL, recording_id=RID, paths=(str(wav),), metadata=META)
    assert await pipe.finalize(cmd) is None
    assert list(pipe.deferred) == [RID] and wav.exists() and spool.pending() == []
    assert await pipe.retry_deferred(force=True) == 0
    free[0] = 10 * 1024 * 1024
    assert await pipe.retry_deferred(force=True) == 1
    assert pipe.deferred == {} and spool.is_complete(RID) and not wav.exists()


def test_manifest_keeps_the_dialed_number_and_cdr():
    meta = {"linkedid": "1.1", "callee_num": "8001", "did": "8001",
            "cdr": {"dst": "1", "src": "13812345678"}, "recorded_from": 10.0, "recorded_to": 20.0}
    m = manifest_from_metadata(CALL, RID, meta, now=30.0)
    assert (m.callee_num, m.did) == ("8001", "8001")
    assert m.cdr["dst"] == "1"  # the CDR stays as received: evidence
    assert m.recorded_span_s == 10.0


async def test_stereo_raw_is_spooled_as_a_two_channel_wav(tmp_path):
    mon = tmp_path / "mon"
    mon.mkdir()
    raw = mon / "a.raw"
    frames = b"".join(bytes([i % 256, 0, 0, 1]) for i in range(8000 * 5))  # 5 s, L varies, R constant
    raw.write_bytes(frames + b"\x07")  # a torn last frame must not shift the channels
    marker_path(raw).write_text("")
    spool = Spool(tmp_path / "spool")
    pipe = Pipeline(spool, stable_ms=10, closure_timeout_s=2, poll_ms=5)
    entry = await pipe.finalize(FinalizeRecording(call_id=CALL, recording_id=RID, paths=(str(raw),),
                                                  metadata={**META, "mode": "stereo"}))
    assert entry is not None
    (f,) = entry.manifest.files
    assert f.name == "a.wav" and f.duration_s == pytest.approx(5.0)
    with wave.open(str(entry.file_path("a.wav")), "rb") as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        assert w.readframes(3) == frames[:12]
    assert not raw.exists() and not (mon / "a.wav").exists() and not marker_path(raw).exists()
