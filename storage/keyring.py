"""Versioned master keys (KEKs) kept as files in one directory.

Layout: ``<key_dir>/<key_id>.key`` holds exactly 32 random bytes (AES-256), mode 0600.
``retire(key_id)`` moves a key to ``<key_dir>/retired/`` so it is no longer loaded;
destroying it for good is an operator decision, never done by code.  Key ids are
short names (``[A-Za-z0-9._-]``, not starting with a dot), e.g. ``k2026a``.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from pbx_recorder.errors import CryptoError
from storage import file_modes
from storage.atomic import create_exclusive, fsync_dir

KEY_BYTES = 32
SUFFIX = ".key"
RETIRED = "retired"
_KEY_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")


def check_key_id(key_id: str) -> str:
    if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
        raise CryptoError(f"invalid key id {key_id!r}: 1-64 of [A-Za-z0-9._-], not starting with '.'")
    return key_id


class KeyRing:
    """Loads master keys on demand from ``key_dir``; never logs or prints key bytes."""

    def __init__(self, key_dir: str | Path) -> None:
        self.key_dir = Path(key_dir)

    @classmethod
    def from_config_path(cls, path: str | Path) -> KeyRing:
        """``encryption.master_key_file`` may name a key file (its directory is the ring) or a dir."""
        p = Path(path)
        return cls(p if p.is_dir() or not p.suffix else p.parent)

    def path_for(self, key_id: str) -> Path:
        return self.key_dir / (check_key_id(key_id) + SUFFIX)

    def has(self, key_id: str) -> bool:
        return self.path_for(key_id).is_file()

    def ids(self) -> list[str]:
        if not self.key_dir.is_dir():
            return []
        return sorted(p.name[: -len(SUFFIX)] for p in self.key_dir.iterdir()
                      if p.is_file() and p.name.endswith(SUFFIX) and _KEY_ID.match(p.name[: -len(SUFFIX)]))

    def get(self, key_id: str) -> bytes:
        path = self.path_for(key_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise CryptoError(f"master key {key_id!r} not found in {self.key_dir}") from exc
        except OSError as exc:
            raise CryptoError(f"master key {key_id!r} unreadable: {exc.strerror}") from exc
        if len(data) != KEY_BYTES:
            raise CryptoError(f"master key {key_id!r} must be {KEY_BYTES} bytes, found {len(data)}")
        return data

    def generate(self, key_id: str) -> Path:
        """Write a new random 32-byte key atomically (0600).  Refuses to overwrite: a lost key
        is lost audio."""
        target = self.path_for(key_id)
        file_modes.private_dir(self.key_dir)
        if target.exists() or (self.key_dir / RETIRED / target.name).exists():
            raise CryptoError(f"master key {key_id!r} already exists; pick a new id")
        try:
            create_exclusive(target, secrets.token_bytes(KEY_BYTES), file_modes.FILE_MODE)
        except FileExistsError as exc:
            raise CryptoError(f"master key {key_id!r} already exists; pick a new id") from exc
        except OSError as exc:
            raise CryptoError(f"cannot write master key {key_id!r}: {exc.strerror}") from exc
        return target

    def retire(self, key_id: str) -> Path:
        """Move the key out of the active ring (to ``retired/``); returns the new path."""
        src = self.path_for(key_id)
        dest_dir = self.key_dir / RETIRED
        file_modes.private_dir(dest_dir)
        dest = dest_dir / src.name
        try:
            os.replace(src, dest)
        except FileNotFoundError as exc:
            raise CryptoError(f"master key {key_id!r} not found") from exc
        fsync_dir(self.key_dir)
        fsync_dir(dest_dir)
        return dest

    def unretire(self, key_id: str) -> Path:
        """Move a retired key back into the ring (a retirement found unsafe); returns its path."""
        dest = self.path_for(key_id)
        src = self.key_dir / RETIRED / dest.name
        if dest.exists():
            raise CryptoError(f"master key {key_id!r} is already in the ring")
        try:
            os.replace(src, dest)
        except FileNotFoundError as exc:
            raise CryptoError(f"master key {key_id!r} is not in {src.parent}") from exc
        fsync_dir(self.key_dir)
        fsync_dir(src.parent)
        return dest
