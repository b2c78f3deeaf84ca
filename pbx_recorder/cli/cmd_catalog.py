"""``pbx-recorder catalog backup|restore|backups``."""

from __future__ import annotations

import time

import click

from pbx_recorder.lifecycle import backup
from pbx_recorder.lifecycle.job_lease import exclusive_job
from pbx_recorder.lifecycle.runtime import Runtime


@click.group()
def catalog() -> None:
    """Catalog backups (SQLite online backup, hashed, stored on a tier)."""


@catalog.command("backup")
@click.option("--tier", "tier_name", help="Tier to store the backup on (default: storage.cold or hot).")
@click.pass_context
def backup_cmd(ctx: click.Context, tier_name: str | None) -> None:
    """Online backup of the catalog (SQLite backup API), hashed, stored on a tier."""
    rt = Runtime.load(ctx.obj["config_path"], "catalog.backup")
    tier = rt.tier(tier_name or rt.config.storage.cold or rt.config.storage.hot)
    with exclusive_job(rt.config, "catalog-backup") as busy:
        if busy:
            click.echo(busy)
            return
        info = backup.backup(rt.config.catalog.path, tier, time.time())
    rt.audit("catalog.backup", info.key, {"tier": info.tier, "sha256": info.sha256, "size": info.size})
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
    """Fetch a backup, verify its hash and integrity, write it to PATH (never over the live catalog)."""
    rt = Runtime.load(ctx.obj["config_path"], "catalog.restore", key)
    tier = rt.tier(tier_name or rt.config.storage.cold or rt.config.storage.hot)
    digest = backup.restore(tier, key, to_path, sha256=sha256)
    rt.audit("catalog.restore", key, {"to": to_path, "sha256": digest})
    click.echo(f"restored {key} -> {to_path} (sha256:{digest} verified)")


@catalog.command("backups")
@click.option("--tier", "tier_name")
@click.pass_context
def list_cmd(ctx: click.Context, tier_name: str | None) -> None:
    """Catalog backups stored on a tier (key, size, hash)."""
    rt = Runtime.load(ctx.obj["config_path"], "catalog.backup")
    keys = backup.list_backups(rt.tier(tier_name or rt.config.storage.cold or rt.config.storage.hot))
    rt.audit("catalog.backups", "", {"count": len(keys)})
    for key in keys:
        click.echo(key)


def register(group: click.Group) -> None:
    group.add_command(catalog)
