"""Catalog backup and restore, encrypted.

``backup`` copies the live SQLite catalog with sqlite3's online backup API (consistent even
while the daemon writes) into an owner-only temp file beside the catalog, encrypts it in the
PBXR envelope under the current backup key (:mod:`pbx_recorder.lifecycle.backup_keys`; the
storage key is the associated data, so one backup cannot be passed off as another), hashes the
ciphertext and puts it to a tier as ``catalog-backups/<UTC timestamp>.db.pbxr`` with a
``.sha256`` sidecar.  No plaintext copy of the catalog ever leaves the catalog's directory.

``restore`` fetches it, verifies the hash (sidecar or given), decrypts it (a backup whose key
an erasure destroyed is refused: it was crypto-shredded), checks ``PRAGMA integrity_check``,
re-applies the erasure tombstones (:mod:`pbx_recorder.lifecycle.tombstones`) so no erased
subject comes back, and atomically publishes it, owner-only, at the target path.
Backups written before encryption (``.db``) are unauthenticated: anyone who can write the
backup tier can plant one, with a matching ``.sha256`` beside it.  ``restore`` refuses them unless
the caller says ``legacy_plaintext`` and gives the hash it obtained elsewhere (never the
sidecar); ``catalog backups`` marks them.  Every restored SQLite file, encrypted or not, must hold
only objects the schema defines (:mod:`pbx_recorder.lifecycle.backup_schema`): a trigger or view
planted in it is refused before the scrub's first write could fire it.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbx_recorder.catalog import engine
from pbx_recorder.errors import CatalogError, CryptoError, IntegrityError, NotFound
from pbx_recorder.lifecycle.backup_keys import BackupKeys
from storage import atomic, file_modes
from storage.base import PutOptions, Tier
from storage.envelope import decrypt_stream, encrypt_stream
from storage.hashing import digests_equal, hash_file, untag

log = logging.getLogger(__name__)

PREFIX = "catalog-backups/"
SUFFIX = ".db.pbxr"
LEGACY_SUFFIX = ".db"  # plaintext backups from before encryption
PG_SUFFIX = ".pgdump.pbxr"  # a PostgreSQL catalog's pg_dump (lifecycle.backup_postgres)

#: re-applies the erasure tombstones to a restored database (``Tombstones.apply`` bound to the key)
Scrub = Callable[[Any], int]  # a sqlite3 or PostgreSQL catalog connection


@dataclass(frozen=True, slots=True)
class BackupInfo:
    tier: str
    key: str
    sha256: str  # of the stored (encrypted) bytes
    size: int
    key_id: str = ""  # the backup key it is encrypted under
    engine: str = "sqlite"  # which engine's backup: "sqlite" (.db.pbxr) or "postgresql" (.pgdump.pbxr)


def backup_key(now: float) -> str:
    return PREFIX + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + SUFFIX


def _unused(tier: Tier, key: str, suffix: str) -> str:
    """``key``, or ``<stamp>_<nn><suffix>`` when a backup of the same second is already there (a
    backup never replaces another: an erasure's fresh backup right after the hourly one); the
    names still sort in the order the backups were taken."""
    stem = key[: -len(suffix)]
    n = 1
    while tier.stat(key) is not None:
        n += 1
        key = f"{stem}_{n:02d}{suffix}"
    return key


WORK_PREFIX = ".catalog-backup-"  #: a backup's or restore's owner-only work folder beside the catalog
_IN_USE = ".in-use"  #: the lock file a live run holds (flock) in its work folder
_UNLOCKED_GRACE_S = 60.0  #: a work folder without its lock file yet is left alone this long


@contextmanager
def _workdir(near: Path) -> Iterator[str]:
    """An owner-only (0700) work folder in ``near``, removed afterwards; its run holds the lock
    of ``.in-use`` in it, so that :func:`sweep_leftovers` tells it from a killed run's."""
    file_modes.private_dir(near, tighten=False)
    sweep_leftovers(near)
    with tempfile.TemporaryDirectory(prefix=WORK_PREFIX, dir=near) as work:
        fd = os.open(Path(work) / _IN_USE, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield work
        finally:
            os.close(fd)


def sweep_leftovers(near: Path, now: float | None = None) -> list[Path]:
    """Remove the work folders of backups and restores that were killed (SIGKILL, power loss,
    a stop that outwaited the unit's timeout): each may hold a plaintext copy of the catalog
    (every wrapped data key, the numbers under the catalog key), which would still open an
    erased subject's audio in an archive after the erasure said its keys were shredded.  Run
    before every backup and restore (an erasure's shredding takes a fresh backup, so it runs
    there too).  A folder whose lock a live run holds stays; the removed ones are returned."""
    removed: list[Path] = []
    now = time.time() if now is None else now
    for folder in sorted(near.glob(WORK_PREFIX + "*")):
        if folder.is_symlink() or not folder.is_dir():
            continue
        try:
            fd = os.open(folder / _IN_USE, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:  # made, not locked yet (a run starting), or killed right then
            try:
                if now - folder.stat().st_mtime < _UNLOCKED_GRACE_S:
                    continue
            except OSError:  # removed meanwhile by another sweep
                continue
            fd = -1
        except OSError:
            continue
        try:
            if fd >= 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live run's
            shutil.rmtree(folder)
            removed.append(folder)
            log.warning("removed %s: the work folder of a catalog backup or restore that was killed "
                        "(it may have held a plaintext copy of the catalog)", folder)
        except OSError as exc:  # another sweep removed it first; one this user cannot remove
            if folder.exists():
                log.error("cannot remove %s, the work folder of a killed catalog backup or restore "
                          "(it may hold a plaintext copy of the catalog): %s", folder, exc)
        finally:
            if fd >= 0:
                os.close(fd)
    return removed


def backup(db_path: str | Path, tier: Tier, now: float, *, keys: BackupKeys,
           work_near: str | Path | None = None) -> BackupInfo:
    """Back up the catalog at ``db_path``: a SQLite file, or a PostgreSQL URL (``pg_dump``, in
    an owner-only folder made under ``work_near``, the node's local catalog folder)."""
    if engine.is_url(db_path):
        if work_near is None:
            raise CatalogError("a PostgreSQL catalog backup needs a local work folder (catalog.path)")
        return _backup_postgres(str(db_path), tier, now, keys=keys, work_near=Path(work_near))
    db_path = Path(db_path)
    if not db_path.exists():
        raise NotFound(f"no catalog at {db_path}")
    key = _unused(tier, backup_key(now), SUFFIX)
    key_id = keys.current(now)
    with _workdir(db_path.parent) as work:
        plain, sealed = Path(work) / "catalog.db", Path(work) / "catalog.db.pbxr"
        file_modes.prepare_sqlite(plain)
        try:
            src = sqlite3.connect(str(db_path))
            dst = sqlite3.connect(str(plain))
            with dst:
                src.backup(dst)
            dst.close()
            src.close()
        except sqlite3.Error as exc:
            raise CatalogError(f"catalog backup failed: {exc}") from exc
        return _seal_and_put(plain, sealed, key, key_id, tier, keys)


def _backup_postgres(url: str, tier: Tier, now: float, *, keys: BackupKeys, work_near: Path) -> BackupInfo:
    from pbx_recorder.lifecycle import backup_postgres

    key = _unused(tier, backup_key(now)[: -len(SUFFIX)] + PG_SUFFIX, PG_SUFFIX)
    key_id = keys.current(now)
    with _workdir(work_near) as work:
        plain, sealed = Path(work) / "catalog.pgdump", Path(work) / "catalog.pgdump.pbxr"
        backup_postgres.dump(url, plain)
        return _seal_and_put(plain, sealed, key, key_id, tier, keys, engine_name="postgresql")


def _seal_and_put(plain: Path, sealed: Path, key: str, key_id: str, tier: Tier, keys: BackupKeys,
                  engine_name: str = "sqlite") -> BackupInfo:
    encrypt_stream(plain, sealed, keys.ring, key_id, key, key_in_header=True)
    plain.unlink()
    digest = hash_file(sealed)
    meta = {"sha256": digest} if engine_name == "sqlite" else {"sha256": digest, "engine": engine_name}
    stored = tier.put(key, sealed, sha256=digest, options=PutOptions(metadata=meta))
    tier.put(key + ".sha256", io.BytesIO(f"{digest}  {Path(key).name}\n".encode()))
    return BackupInfo(tier=tier.name, key=key, sha256=digest, size=stored.size, key_id=key_id,
                      engine=engine_name)


def expected_hash(tier: Tier, key: str) -> str:
    try:
        with tier.open(key + ".sha256") as f:
            return untag(f.read().decode().split()[0])
    except (NotFound, IndexError, ValueError) as exc:
        raise IntegrityError(f"no usable hash sidecar for {key}; pass --sha256") from exc


def _check_and_scrub(path: Path, key: str, scrub: Scrub | None) -> int:
    from pbx_recorder.lifecycle.backup_schema import unexpected_objects

    try:
        conn = sqlite3.connect(str(path), isolation_level=None)
        try:
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if ok != "ok":
                raise IntegrityError(f"backup {key} fails integrity_check: {ok}")
            foreign = unexpected_objects(conn)  # before any write: a planted trigger would fire
            if foreign:
                raise IntegrityError(f"backup {key} holds objects the catalog schema does not define "
                                     f"({', '.join(foreign[:5])}); refused, nothing restored")
            removed = 0
            if scrub is not None:
                conn.execute("PRAGMA secure_delete=ON")
                removed = scrub(conn)
                conn.execute("VACUUM")  # no erased byte left in free pages
            return removed
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise IntegrityError(f"backup {key} is not a usable SQLite database: {exc}") from exc


def restore(tier: Tier, key: str, to_path: str | Path, *, keys: BackupKeys, sha256: str | None = None,
            scrub: Scrub | None = None, work_near: str | Path | None = None,
            legacy_plaintext: bool = False) -> tuple[str, int]:
    """Fetch ``key``, verify, decrypt, scrub erased subjects, publish at ``to_path`` (a new
    SQLite file; for a PostgreSQL backup, the URL of an empty schema, see ``backup_postgres``).
    A plaintext ``.db`` needs ``legacy_plaintext`` and ``sha256`` (see the module doc).

    Returns (the verified hex digest of the stored bytes, calls removed by the tombstones)."""
    if is_unauthenticated(key):
        _allow_plaintext(key, legacy_plaintext, sha256)
    want = untag(sha256) if sha256 else expected_hash(tier, key)
    if engine.is_url(to_path) or key.endswith(PG_SUFFIX):
        return _restore_postgres(tier, key, str(to_path), keys=keys, want=want, scrub=scrub,
                                 work_near=work_near)
    to_path = Path(to_path)
    if to_path.is_symlink() or to_path.exists():
        raise CatalogError(f"{to_path} exists: restore writes a new file only")
    with _workdir(to_path.parent) as work:
        fetched, plain = Path(work) / "fetched", Path(work) / "catalog.db"
        digest = _fetch_and_open(tier, key, want, fetched, plain, keys)
        removed = _check_and_scrub(plain, key, scrub)
        file_modes.make_private(plain)
        try:
            os.link(plain, to_path)  # never replaces a file that appeared meanwhile
        except FileExistsError as exc:
            raise CatalogError(f"{to_path} exists: restore writes a new file only") from exc
        atomic.fsync_dir(to_path.parent)
    return digest, removed


def is_unauthenticated(key: str) -> bool:
    """A plaintext backup from before encryption: nothing proves who wrote it."""
    return key.endswith(LEGACY_SUFFIX)


def _allow_plaintext(key: str, legacy_plaintext: bool, sha256: str | None) -> None:
    if not legacy_plaintext:
        raise IntegrityError(f"{key} is an unauthenticated plaintext backup (.db): anyone who can write "
                             "the backup tier can plant one, its .sha256 sidecar included; restore it only "
                             "with --legacy-plaintext --sha256 <its hash, from records kept off that tier>")
    if not sha256:
        raise IntegrityError(f"--legacy-plaintext needs --sha256 <hash of {key} from records kept off the "
                             "backup tier>: the .sha256 sidecar sits on the same tier and proves nothing")


def _fetch_and_open(tier: Tier, key: str, want: str, fetched: Path, plain: Path, keys: BackupKeys) -> str:
    """Fetch ``key`` to ``fetched``, check its hash, decrypt it to ``plain``; the stored digest."""
    with tier.open(key) as stream:
        digest, _ = atomic.write_stream(fetched, atomic.read_chunks(stream))
    if not digests_equal(digest, want):
        raise IntegrityError(f"backup {key} hash {digest} != expected {want}")
    if key.endswith(LEGACY_SUFFIX):
        os.replace(fetched, plain)
        return digest
    try:
        decrypt_stream(fetched, plain, keys.ring, expected_aad=key)
    except CryptoError as exc:
        raise CryptoError(f"backup {key} cannot be decrypted ({exc}); a backup taken before an "
                          "erasure is crypto-shredded: restore a newer one") from exc
    fetched.unlink()
    return digest


def _restore_postgres(tier: Tier, key: str, url: str, *, keys: BackupKeys, want: str, scrub: Scrub | None,
                      work_near: str | Path | None) -> tuple[str, int]:
    from pbx_recorder.lifecycle import backup_postgres

    if not key.endswith(PG_SUFFIX):
        raise CatalogError(f"{key} is a SQLite backup: restore it to a new file, not to a database")
    if not engine.is_url(url):
        raise CatalogError(f"{key} is a PostgreSQL backup: restore it to a postgresql:// URL, not a file")
    if work_near is None:
        raise CatalogError("a PostgreSQL catalog restore needs a local work folder (catalog.path)")
    with _workdir(Path(work_near)) as work:
        fetched, plain = Path(work) / "fetched", Path(work) / "catalog.pgdump"
        digest = _fetch_and_open(tier, key, want, fetched, plain, keys)
        removed = backup_postgres.load(plain, url, key, scrub=scrub)
    return digest, removed


def list_backups(tier: Tier) -> list[str]:
    return sorted(o.key for o in tier.list(PREFIX) if o.key.endswith((SUFFIX, PG_SUFFIX, LEGACY_SUFFIX)))


def legacy_backups(tier: Tier) -> list[str]:
    """Plaintext backups from before encryption: no key to destroy; erasure deletes them."""
    return [k for k in list_backups(tier) if k.endswith(LEGACY_SUFFIX)]
