"""Catalog backup and restore.

``backup`` copies the live SQLite catalog with sqlite3's online backup API into a temp
file (consistent even while the daemon writes), hashes it, and puts it to a tier under
``catalog-backups/<UTC timestamp>.db`` with a ``.sha256`` sidecar.  ``restore`` fetches
it, verifies the hash (sidecar or given), checks ``PRAGMA integrity_check`` and
atomically publishes it at the target path.
"""

from __future__ import annotations

import io
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pbx_recorder.errors import CatalogError, IntegrityError, NotFound
from storage import atomic
from storage.base import PutOptions, Tier
from storage.hashing import digests_equal, hash_file, untag

PREFIX = "catalog-backups/"


@dataclass(frozen=True, slots=True)
class BackupInfo:
    tier: str
    key: str
    sha256: str
    size: int


def backup_key(now: float) -> str:
    return PREFIX + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + ".db"


def backup(db_path: str | Path, tier: Tier, now: float) -> BackupInfo:
    db_path = Path(db_path)
    if not db_path.exists():
        raise NotFound(f"no catalog at {db_path}")
    fd, tmp_name = tempfile.mkstemp(prefix=".catalog-backup-", suffix=".db")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            src = sqlite3.connect(str(db_path))
            dst = sqlite3.connect(str(tmp))
            with dst:
                src.backup(dst)
            dst.close()
            src.close()
        except sqlite3.Error as exc:
            raise CatalogError(f"catalog backup failed: {exc}") from exc
        digest = hash_file(tmp)
        key = backup_key(now)
        stored = tier.put(key, tmp, sha256=digest, options=PutOptions(metadata={"sha256": digest}))
        tier.put(key + ".sha256", io.BytesIO(f"{digest}  {Path(key).name}\n".encode()))
        return BackupInfo(tier=tier.name, key=key, sha256=digest, size=stored.size)
    finally:
        tmp.unlink(missing_ok=True)


def expected_hash(tier: Tier, key: str) -> str:
    try:
        with tier.open(key + ".sha256") as f:
            return untag(f.read().decode().split()[0])
    except (NotFound, IndexError, ValueError) as exc:
        raise IntegrityError(f"no usable hash sidecar for {key}; pass --sha256") from exc


def restore(tier: Tier, key: str, to_path: str | Path, *, sha256: str | None = None) -> str:
    """Fetch ``key``, verify, publish at ``to_path``; return the verified hex digest."""
    want = untag(sha256) if sha256 else expected_hash(tier, key)
    to_path = Path(to_path)
    to_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_path_for(to_path)
    try:
        with tier.open(key) as stream:
            digest, _ = atomic.write_stream(tmp, atomic.read_chunks(stream))
        if not digests_equal(digest, want):
            raise IntegrityError(f"backup {key} hash {digest} != expected {want}")
        try:
            conn = sqlite3.connect(str(tmp))
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
            conn.close()
        except sqlite3.Error as exc:
            raise IntegrityError(f"backup {key} is not a usable SQLite database: {exc}") from exc
        if ok != "ok":
            raise IntegrityError(f"backup {key} fails integrity_check: {ok}")
        os.replace(tmp, to_path)
        atomic.fsync_dir(to_path.parent)
        return digest
    finally:
        tmp.unlink(missing_ok=True)


def list_backups(tier: Tier) -> list[str]:
    return sorted(o.key for o in tier.list(PREFIX) if o.key.endswith(".db"))
