"""Backup keys: the keys catalog backups are encrypted under, one "epoch" at a time.

A catalog backup holds every number, the audit log and the wrapped data keys of every
recording.  Each backup is a PBXR envelope whose data key is wrapped under the current
backup key (``<encryption.backup_key_dir>/<id>.key``, 32 random bytes, 0600).  An erasure
starts a new epoch: a new backup key, a fresh backup under it, then every older backup key is
destroyed -- which crypto-shreds every older backup wherever its copies are (an Object Lock
bucket, a replica), so the erased number is in no backup that can still be read.  The keys
live outside the backups (with the other keys: escrow this directory, not the backups' keys
of past epochs).

Ids are ``b<microseconds since the epoch>``: they sort in creation order; the newest is current.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pbx_recorder.errors import CryptoError
from storage import file_modes
from storage.atomic import fsync_dir
from storage.keyring import KeyRing

log = logging.getLogger(__name__)

PREFIX = "b"


class BackupKeys:
    def __init__(self, key_dir: str | Path) -> None:
        self.ring = KeyRing(key_dir)

    @property
    def key_dir(self) -> Path:
        return self.ring.key_dir

    def ids(self) -> list[str]:
        return sorted((k for k in self.ring.ids() if k.startswith(PREFIX) and k[1:].isdigit()),
                      key=lambda k: int(k[1:]))

    def current(self, now: float) -> str:
        """The newest backup key; the first one is made when there is none (first backup)."""
        ids = self.ids()
        return ids[-1] if ids else self.new_epoch(now)

    def new_epoch(self, now: float) -> str:
        """Make a new backup key, newer than every existing one; returns its id."""
        file_modes.private_dir(self.key_dir)
        stamp = int(now * 1_000_000)
        ids = self.ids()
        if ids:
            stamp = max(stamp, int(ids[-1][1:]) + 1)
        key_id = f"{PREFIX}{stamp:017d}"
        self.ring.generate(key_id)
        log.info("new backup key %s", key_id)
        return key_id

    def destroy_except(self, keep: str) -> list[str]:
        """Destroy every backup key but ``keep`` (overwritten, fsynced, unlinked): the backups
        taken under them can no longer be decrypted by anyone.  Returns the destroyed ids."""
        if keep not in self.ids():
            raise CryptoError(f"backup key {keep!r} does not exist; refusing to destroy the others")
        return self._destroy([k for k in self.ids() if k != keep])

    def destroy_all(self) -> list[str]:
        """Destroy every backup key of this node (its part of an erasure's shred when another node
        took the fresh backup: ``backup_shred.share``); its next backup starts a new epoch."""
        return self._destroy(self.ids())

    def _destroy(self, key_ids: list[str]) -> list[str]:
        destroyed = []
        for key_id in key_ids:
            path = self.ring.path_for(key_id)
            try:
                with open(path, "r+b") as f:
                    f.write(b"\0" * max(path.stat().st_size, 32))
                    f.flush()
                    os.fsync(f.fileno())
                path.unlink()
            except OSError as exc:
                raise CryptoError(f"cannot destroy backup key {key_id}: {exc.strerror}") from exc
            destroyed.append(key_id)
        if destroyed:
            fsync_dir(self.key_dir)
            log.warning("destroyed backup keys %s: backups taken under them are unreadable", destroyed)
        return destroyed
