"""Build the lifecycle jobs from the Config: the one place the CLI commands share.

Everything below this module takes plain parameters; only this file reads the Config.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.errors import ConfigError, PolicyRefusal, StorageError
from pbx_recorder.hash_key import read_hash_key
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.lifecycle.journal import audit, open_catalog
from storage.base import Tier

if TYPE_CHECKING:  # the jobs are imported by the method that builds one: `hold list` needs none of them
    from pbx_recorder.lifecycle import policy
    from pbx_recorder.lifecycle.backup_keys import BackupKeys
    from pbx_recorder.lifecycle.capacity import CapacityGuard
    from pbx_recorder.lifecycle.erasure import Eraser
    from pbx_recorder.lifecycle.migration import Migrator
    from pbx_recorder.lifecycle.retention_jobs import RetentionJob
    from pbx_recorder.lifecycle.tombstones import Tombstones


def backup_key_dir(config: Any) -> Path:
    """``encryption.backup_key_dir``, by default ``backup/`` beside the privacy HMAC key."""
    return Path(config.encryption.backup_key_dir or Path(config.privacy.hash_key_file).parent / "backup")


@dataclass
class Runtime:
    config: Any
    conn: sqlite3.Connection
    tiers: Mapping[str, Tier]
    actor: str
    role: str

    @classmethod
    def load(cls, config_path: str | Path | None, action: str, target: str = "") -> Runtime:
        """Load the config, open the catalog and authorize ``action`` (see ``cli.authz``)."""
        from pbx_recorder.cli.authz import authorize  # lazy: the cli package imports this module
        from pbx_recorder.config import load_config
        from storage.factory import build_tiers

        cfg = load_config(config_path)
        conn = open_catalog(cfg.catalog.target)
        try:
            who = authorize(cfg, conn, action, target)
        except Exception:
            conn.close()
            raise
        return cls(cfg, conn, build_tiers(cfg.storage), who.actor, who.role)

    @cached_property
    def classes(self) -> dict[str, policy.ClassPolicy]:
        from pbx_recorder.lifecycle import policy

        return policy.classes_from_config(self.config.retention.classes)

    @cached_property
    def hash_key(self) -> bytes:
        return read_hash_key(self.config.privacy.hash_key_file)

    def tier(self, name: str | None) -> Tier:
        name = name or self.config.storage.hot
        if name not in self.tiers:
            raise ConfigError(f"no tier named {name!r}", key="storage.tiers")
        return self.tiers[name]

    def migrator(self) -> Migrator:
        from pbx_recorder.lifecycle.migration import Migrator, Target

        st = self.config.storage
        regions = {r: Target(v.hot, v.cold) for r, v in st.regions.items()}
        return Migrator(
            self.conn,
            self.tiers,
            default=Target(st.hot, st.cold),
            regions=regions,
            classes=self.classes,
            batch_size=st.migration.batch_size,
        )

    def follow_transitions(self) -> list[str]:
        """Catalog classes brought up to date on tiers a bucket lifecycle rule moves (see transitions)."""
        from pbx_recorder.lifecycle import transitions

        return transitions.follow(self.conn, self.tiers)

    @cached_property
    def numbers(self) -> NumberProtection:
        """The catalog's number keys (``catalog.number_keys``): opens encrypted rows."""
        from pbx_recorder.catalog.number_keys import protection_for

        return protection_for(self.config)

    def holds(self) -> HoldManager:
        return HoldManager(self.conn, self.tiers, hash_key=self.hash_key, numbers=self.numbers)

    def retention(self) -> RetentionJob:
        from pbx_recorder.lifecycle.retention_jobs import RetentionJob

        return RetentionJob(self.conn, self.tiers, self.classes, self.holds(),
                            spool_root=self.config.spool.dir)  # its quarantined leftovers go too

    def eraser(self) -> Eraser:
        from pbx_recorder.lifecycle.erasure import Eraser

        return Eraser(self.conn, self.tiers, hash_key=self.hash_key, holds=self.holds(),
                      tombstones=self.tombstones(), shred_backups=self.shred_backups,
                      spool_root=self.config.spool.dir, numbers=self.numbers,
                      protected_classes=frozenset(n for n, c in self.classes.items() if c.protected))

    def tombstones(self) -> Tombstones:
        from pbx_recorder.lifecycle.tombstones import Tombstones, path_beside

        return Tombstones(path_beside(self.config.privacy.hash_key_file), self.hash_key)

    def restore_scrub(self) -> Callable[[sqlite3.Connection], int]:
        """What ``catalog restore`` applies to the restored catalog: the tombstone file of this host
        and every shared tombstone of the live catalog (an erasure made on another node)."""
        from pbx_recorder.lifecycle import shared_tombstones

        shared = shared_tombstones.restore_hashes(self.conn)
        tombstones = self.tombstones()
        return lambda conn: tombstones.apply(conn, extra=shared)

    def backup_keys(self) -> BackupKeys:
        from pbx_recorder.lifecycle.backup_keys import BackupKeys

        return BackupKeys(backup_key_dir(self.config))

    def backup_tier(self, name: str | None = None) -> Tier:
        return self.tier(name or self.config.storage.cold or self.config.storage.hot)

    def shred_backups(self, now: float, tier_name: str | None = None) -> dict[str, Any]:
        """After an erasure: a new backup-key epoch, a fresh backup under it (on ``tier_name``,
        default :meth:`backup_tier`'s), then every older backup key destroyed (older backups
        crypto-shredded wherever they are); plaintext backups from before encryption are deleted
        where the tier allows it."""
        from pbx_recorder.lifecycle import backup, backup_shred

        keys, tier = self.backup_keys(), self.backup_tier(tier_name)
        backup_shred.register(self.conn, self.config.node, now)  # (every later erasure waits for it)
        new = keys.new_epoch(now)
        info = backup.backup(self.config.catalog.target, tier, now, keys=keys,
                             work_near=self.config.catalog.path.parent)
        destroyed = keys.destroy_except(new)
        deleted, left = [], []
        for name, t in sorted(self.tiers.items()):
            for key in backup.legacy_backups(t):
                try:
                    t.delete(key)
                    t.delete(key + ".sha256")
                    deleted.append(f"{name}:{key}")
                except (PolicyRefusal, StorageError) as exc:
                    left.append(f"{name}:{key} ({exc})")
        return {"node": self.config.node, "fresh_backup": f"{info.tier}:{info.key}",
                "fresh_backup_sha256": info.sha256,
                "fresh_backup_size": info.size, "backup_key": new,
                "destroyed_backup_keys": destroyed, "plaintext_backups_deleted": deleted,
                "plaintext_backups_left": left}

    def capacity(self) -> CapacityGuard:
        from pbx_recorder.lifecycle.capacity import CapacityGuard

        st = self.config.storage
        alert = Path(self.config.catalog.path).parent / "capacity-alert.prom"
        return CapacityGuard(
            self.migrator(),
            self.tier(st.hot),
            high_water=st.capacity.high_water,
            low_water=st.capacity.low_water,
            alert_file=alert,
        )

    def audit(self, action: str, target: str, detail: Mapping[str, Any] | None = None) -> None:
        audit(
            self.conn,
            actor=self.actor,
            role=self.role,
            action=action,
            target=target,
            detail=detail or {},
            now=time.time(),
        )
        # every lifecycle command ends here: sign the ledger and audit heads it extended
        from pbx_recorder.recording.chain_head import checkpoint_if_possible

        checkpoint_if_possible(self.config, self.conn, time.time())
