import errno
import os

import pytest

from pbx_recorder.errors import SpoolFull, StorageError
from pbx_recorder.recording.manifest import Manifest, ManifestFile
from pbx_recorder.recording.spool import INTENT, MANIFEST, Spool
from storage import atomic
from storage.hashing import hash_file

RID = "n1_1.1_call001"


def manifest(*names):
    return Manifest(recording_id=RID, call_id="n1_1.1", created_at=5.0,
                    files=tuple(ManifestFile(n, 0, "", 1.0) for n in names))


def pbx_file(tmp_path, name, data=b"audio"):
    d = tmp_path / "monitor"
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_bytes(data)
    return p


def test_spool_moves_files_and_writes_manifest_last(tmp_path):
    spool = Spool(tmp_path / "spool")
    src = pbx_file(tmp_path, "a.wav")
    expected = hash_file(src)
    entry = spool.spool_recording(RID, [src], manifest("a.wav"))
    assert not src.exists()
    assert entry.manifest.files[0].sha256 == expected and entry.manifest.files[0].size == 5
    assert sorted(p.name for p in entry.directory.iterdir()) == ["a.wav", MANIFEST]
    assert [e.recording_id for e in spool.pending()] == [RID]
    assert spool.pending()[0].manifest == entry.manifest


def test_idempotent_by_recording_id(tmp_path):
    spool = Spool(tmp_path / "spool")
    first = spool.spool_recording(RID, [pbx_file(tmp_path, "a.wav")], manifest("a.wav"))
    again = pbx_file(tmp_path, "a.wav", b"different")  # a duplicate finalize
    second = spool.spool_recording(RID, [again], manifest("a.wav"))
    assert second.manifest == first.manifest
    assert again.exists()  # untouched: the second call is a no-op
    assert len(spool.pending()) == 1


def test_missing_source_is_flagged(tmp_path):
    spool = Spool(tmp_path / "spool")
    a = pbx_file(tmp_path, "a-rx.wav")
    missing = tmp_path / "monitor" / "a-tx.wav"
    entry = spool.spool_recording(RID, [a, missing], manifest("a-rx.wav", "a-tx.wav"))
    assert [f.name for f in entry.manifest.files] == ["a-rx.wav"]
    assert "file_missing" in entry.manifest.flags


def test_incomplete_entry_with_intent_is_repaired(tmp_path):
    spool = Spool(tmp_path / "spool")
    d = spool.entry_dir(RID)
    d.mkdir()
    atomic.write_bytes(d / INTENT, manifest("a.wav").to_json())
    (d / "a.wav").write_bytes(b"audio")  # crash after the move, before manifest.json
    (d / ".a.wav.tmp-dead").write_bytes(b"half")  # and a temp file
    assert spool.pending() == []
    repaired, incomplete = spool.recover()
    assert repaired == [RID] and incomplete == []
    [entry] = spool.pending()
    assert "spool_repaired" in entry.manifest.flags
    assert entry.manifest.files[0].sha256 == hash_file(d / "a.wav")
    assert not (d / ".a.wav.tmp-dead").exists() and not (d / INTENT).exists()


def test_entry_without_anything_is_reported_not_dropped(tmp_path):
    spool = Spool(tmp_path / "spool")
    d = spool.entry_dir("n1_2.2_call001")
    d.mkdir()
    (d / "x.wav").write_bytes(b"orphan")
    repaired, incomplete = spool.recover()
    assert repaired == [] and incomplete == ["n1_2.2_call001"]
    assert (d / "x.wav").read_bytes() == b"orphan"


def test_enospc_on_manifest_rolls_back(tmp_path):
    calls = []

    def full_writer(path, data):
        calls.append(path.name)
        if path.name == MANIFEST:
            raise OSError(errno.ENOSPC, "No space left on device")
        return atomic.write_bytes(path, data)

    spool = Spool(tmp_path / "spool", writer=full_writer)
    other_manifest = Manifest(recording_id="n1_9.9_call001", call_id="n1_9.9")
    other = Spool(tmp_path / "spool").spool_recording("n1_9.9_call001", [pbx_file(tmp_path, "o.wav")],
                                                       other_manifest)
    src = pbx_file(tmp_path, "a.wav")
    with pytest.raises(SpoolFull, match="spool .* is full"):
        spool.spool_recording(RID, [src], manifest("a.wav"))
    assert src.read_bytes() == b"audio"  # put back where the PBX left it
    assert not spool.entry_dir(RID).exists()
    assert [e.recording_id for e in spool.pending()] == [other.recording_id]  # others untouched
    assert other.file_path("o.wav").read_bytes() == b"audio"


def test_enospc_during_cross_fs_copy_leaves_source(tmp_path):
    def full_mover(src, dst):
        raise SpoolFull("no space left on device while writing")

    spool = Spool(tmp_path / "spool", mover=full_mover)
    src = pbx_file(tmp_path, "a.wav")
    with pytest.raises(SpoolFull):
        spool.spool_recording(RID, [src], manifest("a.wav"))
    assert src.exists() and not spool.entry_dir(RID).exists()


def test_min_free_mb(tmp_path):
    spool = Spool(tmp_path / "spool", min_free_mb=100, free_bytes=lambda p: 50 * 1024 * 1024)
    src = pbx_file(tmp_path, "a.wav")
    with pytest.raises(SpoolFull, match="min_free_mb=100"):
        spool.spool_recording(RID, [src], manifest("a.wav"))
    assert src.exists()


def test_remove_and_unsafe_ids(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.spool_recording(RID, [pbx_file(tmp_path, "a.wav")], manifest("a.wav"))
    spool.remove(RID)
    assert spool.pending() == [] and os.listdir(spool.root) == []
    for bad in ("../x", "", ".hidden", "a/b"):
        with pytest.raises(StorageError):
            spool.entry_dir(bad)
