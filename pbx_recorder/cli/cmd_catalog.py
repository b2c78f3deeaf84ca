"""``pbx-recorder catalog backup|restore|backups``."""

from __future__ import annotations

import time

import click

from pbx_recorder.lifecycle import backup
from pbx_recorder.lifecycle.job_lease import exclusive_job
from pbx_recorder.lifecycle.runtime import Runtime


@click.group()
def catalog() -> None:
    """Catalog backups (SQLite online backup, encrypted under the backup key, hashed, stored on a tier)."""


@catalog.command("backup")
@click.option("--tier", "tier_name", help="Tier to store the backup on (default: storage.cold or hot).")
@click.pass_context
def backup_cmd(ctx: click.Context, tier_name: str | None) -> None:
    """Online backup of the catalog (SQLite backup API), hashed, stored on a tier."""
    rt = Runtime.load(ctx.obj["config_path"], "catalog.backup")
    tier = rt.backup_tier(tier_name)
    with exclusive_job(rt.config, "catalog-backup") as busy:
        if busy:
            click.echo(busy)
            return
        info = backup.backup(rt.config.catalog.path, tier, time.time(), keys=rt.backup_keys())
    rt.audit("catalog.backup", info.key, {"tier": info.tier, "sha256": info.sha256, "size": info.size,
                                          "backup_key": info.key_id})
    click.echo(f"{info.tier}:{info.key} sha256:{info.sha256} ({info.size} bytes)")


@catalog.command("restore")
@click.option("--from", "key", required=True, help="Backup key, e.g. catalog-backups/20270101T000000Z.db")
@click.option("--to", "to_path", required=True, type=click.Path(dir_okay=False))
@click.option("--tier", "tier_name", help="Tier holding the backup (default: storage.cold or hot).")
@click.option("--sha256", help="Expected hash (default: the .sha256 sidecar stored with it).")
@click.pass_context
def restore_cmd(
    ctx: click.Context, key: str, to_path: str, tier_name: str | None, sha256: str | None
) -> None:
    """Fetch a backup, verify, decrypt, re-apply erasures, write it to a new PATH (never over a file)."""
    rt = Runtime.load(ctx.obj["config_path"], "catalog.restore", key)
    tier = rt.backup_tier(tier_name)
    digest, removed = backup.restore(tier, key, to_path, keys=rt.backup_keys(), sha256=sha256,
                                     scrub=rt.tombstones().apply)
    rt.audit("catalog.restore", key, {"to": to_path, "sha256": digest, "erased_calls_removed": removed})
    click.echo(f"restored {key} -> {to_path} (sha256:{digest} verified; {removed} erased call(s) "
               "removed again)")


@catalog.command("backups")
@click.option("--tier", "tier_name")
@click.pass_context
def list_cmd(ctx: click.Context, tier_name: str | None) -> None:
    """Catalog backups stored on a tier (key, size, hash)."""
    rt = Runtime.load(ctx.obj["config_path"], "catalog.backup")
    keys = backup.list_backups(rt.backup_tier(tier_name))
    rt.audit("catalog.backups", "", {"count": len(keys)})
    for key in keys:
        click.echo(key)


def register(group: click.Group) -> None:
    group.add_command(catalog)
