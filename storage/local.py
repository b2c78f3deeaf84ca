"""Local-disk tier (the hot tier, or an archive directory).

Keys map to paths under ``root`` with strict containment: absolute keys, ``..``,
empty segments, backslashes and NUL are refused.  ``put`` streams once while
hashing into a temp file beside the target and publishes it atomically only if the
hash matches.  Objects are owner-only (0600, directories 0700: :mod:`storage.file_modes`);
in ``read_only`` mode stored files are made 0400.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pbx_recorder.errors import NotFound, StorageError, TierUnavailable
from storage import atomic, file_modes
from storage.base import ObjectInfo, PutOptions, StoredObject
from storage.hashing import digests_equal, hash_file, hash_stream

MAX_KEY = 1024


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise StorageError."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        raise StorageError("invalid storage key: empty or too long")
    if "\x00" in key or "\\" in key or any(ord(c) < 32 for c in key):
        raise StorageError("invalid storage key: control character or backslash")
    if key.startswith("/") or (len(key) > 1 and key[1] == ":"):
        raise StorageError("invalid storage key: absolute")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise StorageError("invalid storage key: empty, '.' or '..' segment")
    if atomic.is_temp_name(parts[-1]):
        raise StorageError("invalid storage key: reserved temp-file name")
    return key


class LocalTier:
    def __init__(self, name: str, root: str | Path, *, read_only: bool = False,
                 create: bool = True) -> None:
        self.name = name
        self.root = Path(root)
        self.read_only = read_only
        if create:
            file_modes.private_dir(self.root)

    # -- paths -------------------------------------------------------------------
    def path_for(self, key: str) -> Path:
        check_key(key)
        root = self.root.resolve()
        path = (root / key).resolve()
        if path == root or not path.is_relative_to(root):
            raise StorageError("invalid storage key: escapes the tier root")
        return path

    def _ensure_root(self) -> None:
        if not self.root.is_dir():
            raise TierUnavailable(f"tier {self.name}: root {self.root} is not available")

    # -- Tier protocol -----------------------------------------------------------
    def put(self, key: str, source: Path | BinaryIO, *, sha256: str | None = None,
            options: PutOptions | None = None) -> StoredObject:
        self._ensure_root()
        path = self.path_for(key)
        try:
            file_modes.private_dir(path.parent, tighten=False)
            if path.exists() and self.read_only:
                os.chmod(path, file_modes.FILE_MODE)  # replacing a read-only object we wrote ourselves
            mode = file_modes.READ_ONLY_FILE_MODE if self.read_only else file_modes.FILE_MODE
            digest, size = atomic.write_stream(path, atomic.read_chunks(source), expected_sha256=sha256,
                                               mode=mode)
        except FileNotFoundError as exc:
            raise StorageError(f"tier {self.name}: source missing for {key}") from exc
        except PermissionError as exc:
            raise TierUnavailable(f"tier {self.name}: permission denied for {key}") from exc
        return StoredObject(tier=self.name, key=key, size=size, sha256=digest,
                            storage_class=(options.storage_class if options else ""))

    def open(self, key: str) -> BinaryIO:
        path = self.path_for(key)
        try:
            return open(path, "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"tier {self.name}: no object {key}") from exc
        except OSError as exc:
            raise StorageError(f"tier {self.name}: cannot open {key}: {exc.strerror}") from exc

    def stat(self, key: str) -> ObjectInfo | None:
        path = self.path_for(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return ObjectInfo(tier=self.name, key=key, size=st.st_size)

    def verify(self, key: str, sha256: str) -> bool:
        with self.open(key) as f:
            digest, _ = hash_stream(f)
        return digests_equal(digest, sha256)

    def hash(self, key: str) -> str:
        return hash_file(self.path_for(key))

    def delete(self, key: str) -> int:
        path = self.path_for(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StorageError(f"tier {self.name}: cannot delete {key}: {exc.strerror}") from exc
        atomic.fsync_dir(path.parent)
        return 1

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        root = self.root.resolve()
        for dirpath, _dirs, files in os.walk(root):
            for fname in sorted(files):
                if atomic.is_temp_name(fname):
                    continue
                full = Path(dirpath) / fname
                key = full.relative_to(root).as_posix()
                if key.startswith(prefix):
                    yield ObjectInfo(tier=self.name, key=key, size=full.stat().st_size)

    def set_legal_hold(self, key: str, on: bool) -> bool:
        return False  # the catalog enforces holds for local tiers

    def restore(self, key: str, days: int = 7) -> str:
        return "done"  # always online

    def usage(self) -> tuple[int, int] | None:
        try:
            du = shutil.disk_usage(self.root)
        except OSError as exc:
            raise TierUnavailable(f"tier {self.name}: {exc.strerror}") from exc
        return du.used, du.total
