import errno
import hashlib
import io
import os

import pytest

from pbx_recorder.errors import IntegrityError, SpoolFull
from storage import atomic
from storage.hashing import (
    HashingReader,
    HashingWriter,
    digests_equal,
    hash_file,
    hash_stream,
    tagged,
    untag,
)

DATA = b"hello world" * 1000
HEX = hashlib.sha256(DATA).hexdigest()


def test_hash_file_and_stream(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(DATA)
    assert hash_file(p) == HEX
    assert hash_stream(io.BytesIO(DATA), chunk=7) == (HEX, len(DATA))


def test_hashing_reader_and_writer():
    r = HashingReader(io.BytesIO(DATA))
    while r.read(100):
        pass
    assert (r.hexdigest(), r.size) == (HEX, len(DATA))
    sink = io.BytesIO()
    w = HashingWriter(sink)
    w.write(DATA[:10])
    w.write(DATA[10:])
    assert w.hexdigest() == HEX and sink.getvalue() == DATA


def test_tagged_form_and_compare():
    assert tagged(HEX) == "sha256:" + HEX
    assert tagged(tagged(HEX)) == "sha256:" + HEX
    assert untag("sha256:" + HEX.upper()) == HEX
    assert digests_equal(HEX, "sha256:" + HEX)
    assert not digests_equal(HEX, "0" * 64)
    assert not digests_equal(HEX, "md5:abc")
    with pytest.raises(ValueError):
        untag("sha1:" + HEX)
    with pytest.raises(ValueError):
        untag("zz")


def test_write_bytes_atomic_and_no_temp_left(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    assert atomic.write_bytes(target, DATA) == HEX
    assert target.read_bytes() == DATA
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_write_stream_hash_mismatch_publishes_nothing(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(IntegrityError):
        atomic.write_stream(target, [DATA], expected_sha256="0" * 64)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_crash_leaves_only_temp_file_which_is_cleaned(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def chunks():
        yield b"partial"
        raise KeyboardInterrupt  # a crash in the middle of the write

    with pytest.raises(KeyboardInterrupt):
        atomic.write_stream(target, chunks())
    assert target.read_bytes() == b"old"
    # simulate a hard crash (no finally): a temp file is left behind
    leftover = atomic.temp_path_for(target)
    leftover.write_bytes(b"half")
    assert atomic.is_temp_name(leftover.name)
    assert atomic.clean_temp_files(tmp_path) == [leftover]
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_enospc_becomes_spoolfull(tmp_path):
    def chunks():
        yield b"x"
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(SpoolFull):
        atomic.write_stream(tmp_path / "t", chunks())
    assert list(tmp_path.iterdir()) == []


def test_copy_file(tmp_path):
    src = tmp_path / "a"
    src.write_bytes(DATA)
    assert atomic.copy_file(src, tmp_path / "b") == HEX
    assert (tmp_path / "b").read_bytes() == DATA


def test_move_same_fs(tmp_path):
    src = tmp_path / "a"
    src.write_bytes(DATA)
    assert atomic.move_file(src, tmp_path / "b") == HEX
    assert not src.exists() and (tmp_path / "b").read_bytes() == DATA


def test_move_cross_filesystem_copies_verifies_then_unlinks(tmp_path, monkeypatch):
    src = tmp_path / "a"
    src.write_bytes(DATA)
    dst = tmp_path / "sub" / "b"
    dst.parent.mkdir()
    real_replace = os.replace

    def fake_replace(a, b):
        if str(a) == str(src):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(a, b)

    monkeypatch.setattr(atomic.os, "replace", fake_replace)
    assert atomic.move_file(src, dst) == HEX
    assert not src.exists() and dst.read_bytes() == DATA


def test_move_refuses_a_fifo_without_blocking_and_a_second_hard_link(tmp_path):
    # the PBX account owns the drop folder: a FIFO in place of a finished file must not hang the
    # worker, and a hard link to a file of ours (a key) must never be moved in as a recording
    from pbx_recorder.errors import StorageError

    fifo = tmp_path / "call.wav"
    os.mkfifo(fifo)
    with pytest.raises(StorageError, match="not a regular file"):
        atomic.move_file(fifo, tmp_path / "moved.wav")
    key = tmp_path / "master.key"
    key.write_bytes(DATA)
    linked = tmp_path / "call2.wav"
    os.link(key, linked)
    with pytest.raises(StorageError, match="2 links: refused"):
        atomic.move_file(linked, tmp_path / "moved2.wav")
    assert key.read_bytes() == DATA and linked.exists() and not (tmp_path / "moved2.wav").exists()
