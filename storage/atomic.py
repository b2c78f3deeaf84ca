"""Atomic file writes: temp file in the same directory, fsync, os.replace, fsync the directory.

A crash leaves at most a ``.<name>.tmp-<random>`` file behind, never a half-written
target; :func:`clean_temp_files` removes such leftovers.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from pbx_recorder.errors import IntegrityError, SpoolFull, StorageError
from storage import file_modes
from storage.hashing import CHUNK, HashingWriter, digests_equal, hash_file, hash_stream

TEMP_MARK = ".tmp-"


def temp_path_for(target: Path) -> Path:
    return target.with_name(f".{target.name}{TEMP_MARK}{secrets.token_hex(4)}")


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and TEMP_MARK in name


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_exclusive(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` atomically with ``mode`` and ``data``; never overwrite an existing file
    (key material: a lost key is lost audio).  Raises FileExistsError if ``path`` exists
    (also when a concurrent writer won the race), other OSErrors as they come."""
    tmp = temp_path_for(path)
    try:
        fd = file_modes.open_new(tmp, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)  # unlike rename, link fails when the target exists
        fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def _translate(exc: OSError, what: str) -> StorageError:
    if exc.errno == errno.ENOSPC:
        return SpoolFull(f"no space left on device while {what}")
    return StorageError(f"{what}: {exc.strerror or exc}")


def write_stream(target: str | Path, chunks: Iterable[bytes], *, expected_sha256: str | None = None,
                 mode: int = file_modes.FILE_MODE) -> tuple[str, int]:
    """Write ``chunks`` atomically to ``target``; return (hex sha256, size).

    The file is created with exactly ``mode`` (owner-only by default, whatever the umask:
    :mod:`storage.file_modes`) before the first byte is written.

    If ``expected_sha256`` is given and the bytes differ, nothing is published and
    IntegrityError is raised.  OSError becomes StorageError (SpoolFull for ENOSPC).
    """
    target = Path(target)
    tmp = temp_path_for(target)
    try:
        with os.fdopen(file_modes.open_new(tmp, mode), "wb") as raw:
            writer = HashingWriter(raw)
            for block in chunks:
                writer.write(block)
            raw.flush()
            os.fsync(raw.fileno())
        digest = writer.hexdigest()
        if expected_sha256 is not None and not digests_equal(digest, expected_sha256):
            raise IntegrityError(f"hash mismatch writing {target.name}: got sha256:{digest}")
        os.replace(tmp, target)
        fsync_dir(target.parent)
        return digest, writer.size
    except OSError as exc:
        raise _translate(exc, f"writing {target.name}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def read_chunks(source: str | Path | BinaryIO, chunk: int = CHUNK) -> Iterable[bytes]:
    if isinstance(source, str | Path):
        with open(source, "rb") as f:
            yield from iter(lambda: f.read(chunk), b"")
    else:
        yield from iter(lambda: source.read(chunk), b"")


def write_bytes(target: str | Path, data: bytes) -> str:
    """Atomically replace ``target`` with ``data``; return the hex SHA-256."""
    return write_stream(target, [data])[0]


def copy_file(src: str | Path, dst: str | Path, *, expected_sha256: str | None = None) -> str:
    """Atomic copy with the hash computed while streaming; return hex SHA-256."""
    try:
        return write_stream(dst, read_chunks(src), expected_sha256=expected_sha256)[0]
    except FileNotFoundError as exc:
        raise StorageError(f"source missing: {Path(src).name}") from exc


def move_file(src: str | Path, dst: str | Path) -> str:
    """Move ``src`` to ``dst`` and return its hex SHA-256.

    The destination is always an owner-only file of this process's user
    (:mod:`storage.file_modes`).  The source must be a regular file: it is opened without
    following a symlink (a PBX account could plant one pointing at the catalog or a key), and
    the bytes hashed are the bytes moved; a FIFO or a file with a second hard link is
    refused.  A source we own (or any, as root) on the same
    filesystem is renamed and narrowed -- after checking that the renamed entry is still the
    inode hashed; a source another account owns (a PBX file in its drop folder) or one on
    another filesystem is copied from that same descriptor into a new file, re-read and
    compared, then unlinked: the other account keeps no handle on our copy.
    """
    src, dst = Path(src), Path(dst)
    try:
        # (O_NONBLOCK: a FIFO planted in its place opens at once and is refused below, instead
        # of hanging the worker; no effect on a regular file)
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StorageError(f"{src.name} is a symbolic link: refused") from exc
        raise _translate(exc, f"moving {src.name}") from exc
    with os.fdopen(fd, "rb") as source:
        st = os.fstat(source.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise StorageError(f"{src.name} is not a regular file: refused")
        if st.st_nlink != 1:  # a hard link to another file (a key, the catalog): never a recording
            raise StorageError(f"{src.name} has {st.st_nlink} links: refused (a recording file has one)")
        source_hash, _ = hash_stream(source)
        if os.geteuid() == 0 or st.st_uid == os.geteuid():
            try:
                os.replace(src, dst)
                moved = dst.lstat()
                if (moved.st_dev, moved.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(moved.st_mode):
                    dst.unlink()
                    raise IntegrityError(f"{src.name} was replaced while being moved: refused")
                file_modes.make_private(dst)
                fsync_dir(dst.parent)
                return source_hash
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise _translate(exc, f"moving {src.name}") from exc
        source.seek(0)
        write_stream(dst, read_chunks(source), expected_sha256=source_hash)
    if not digests_equal(hash_file(dst), source_hash):
        dst.unlink()
        raise IntegrityError(f"copy of {src.name} does not verify")
    src.unlink()
    fsync_dir(src.parent)
    return source_hash


def clean_temp_files(directory: str | Path) -> list[Path]:
    """Remove temp files a crash left in ``directory``; return what was removed."""
    removed = []
    for p in Path(directory).iterdir():
        if p.is_file() and is_temp_name(p.name):
            p.unlink()
            removed.append(p)
    return removed
