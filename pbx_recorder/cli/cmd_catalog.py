"""``pbx-recorder catalog backup|restore|backups``."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click

from pbx_recorder.catalog import engine
from pbx_recorder.cli.catalog_migrate_steps import data_steps, progress
from pbx_recorder.errors import CryptoError
from pbx_recorder.lifecycle import backup, backup_shred
from pbx_recorder.lifecycle.job_lease import exclusive_job, node_lock
from pbx_recorder.lifecycle.runtime import Runtime


@click.group()
def catalog() -> None:
    """Catalog backups (SQLite online backup or PostgreSQL pg_dump, encrypted under the backup
    key, hashed, stored on a tier) and schema migration (``migrate``)."""


@catalog.command("backup")
@click.option("--tier", "tier_name", help="Tier to store the backup on (default: storage.cold or hot).")
@click.pass_context
def backup_cmd(ctx: click.Context, tier_name: str | None) -> None:
    """Consistent backup of the catalog (SQLite backup API, or pg_dump), hashed, stored on a tier.

    After an erasure (``erase``, the console's): this backup is the fresh one of a new backup-key
    epoch and every older backup key is destroyed, shredding the backups that still hold the
    erased calls; the requests it covered get that in their receipts (``backup_shred``)."""
    rt = Runtime.load(ctx.obj["config_path"], "catalog.backup")
    tier = rt.backup_tier(tier_name)
    node = rt.config.node
    if rt.backup_keys().ids():  # a node with backup keys from before it was listed (an upgrade)
        backup_shred.register(rt.conn, node, time.time())
    # this node's part of the erasures another node took the fresh backup for: also when another
    # node holds the lease (the fresh backup exists; this node's backups under older keys must go)
    _shred_share(rt, node)
    with exclusive_job(rt.config, "catalog-backup") as busy, node_lock(rt.backup_keys().key_dir) as keys_busy:
        if busy or keys_busy:
            click.echo(busy or keys_busy)
            return
        backup_shred.register(rt.conn, node, time.time())  # before its first key is made
        shredded = backup_shred.backup_then_shred(
            rt.conn, lambda now: rt.shred_backups(now, tier_name), time.time(), node)
        if shredded is not None:
            report, covered, completed = shredded
            tier_of, key = str(report["fresh_backup"]).split(":", 1)
            rt.audit("catalog.backup", key, {"tier": tier_of, "sha256": report["fresh_backup_sha256"],
                                             "size": report["fresh_backup_size"],
                                             "backup_key": report["backup_key"], "erasures": len(covered)})
            rt.audit("erase.backups_shredded", ",".join(covered)[:500],
                     {"node": node, "requests": covered, "completed": completed,
                      "fresh_backup": report["fresh_backup"], "backup_key": report["backup_key"],
                      "destroyed_backup_keys": report["destroyed_backup_keys"]})
            click.echo(f"{report['fresh_backup']} sha256:{report['fresh_backup_sha256']} "
                       f"({report['fresh_backup_size']} bytes; backup key {report['backup_key']}): older "
                       f"backup keys destroyed ({len(report['destroyed_backup_keys'])}) for "
                       f"{len(covered)} erasure request(s): {', '.join(covered)}")
            _still_waiting(rt, covered, completed)
            return
        info = backup.backup(rt.config.catalog.target, tier, time.time(), keys=rt.backup_keys(),
                             work_near=rt.config.catalog.path.parent)
    rt.audit("catalog.backup", info.key, {"tier": info.tier, "sha256": info.sha256, "size": info.size,
                                          "backup_key": info.key_id, "engine": info.engine})
    click.echo(f"{info.tier}:{info.key} sha256:{info.sha256} ({info.size} bytes)")


def _shred_share(rt: Runtime, node: str) -> None:
    """This node's part of the waiting erasures (``backup_shred.share``), audited and shown."""
    now = time.time()
    keys = rt.backup_keys()
    with node_lock(keys.key_dir) as busy:  # not while a backup of this node runs under these keys
        if busy:
            click.echo(f"node {node}: {busy} (its part of the waiting erasures: at the next run)")
            return
        owed = backup_shred.share(rt.conn, node, keys.destroy_all, now)
    if not owed:
        return
    completed = backup_shred.complete_ready(rt.conn, now)
    rt.audit("erase.backups_shredded", ",".join(owed)[:500],
             {"node": node, "requests": owed, "completed": completed, "fresh_backup": None})
    click.echo(f"node {node}: every backup key of this node destroyed for {len(owed)} erasure "
               f"request(s) another node took the fresh backup for: {', '.join(owed)}")
    _still_waiting(rt, owed, completed)


def _still_waiting(rt: Runtime, covered: list[str], completed: list[str]) -> None:
    waiting = backup_shred.waiting_nodes(rt.conn)
    for request_id in covered:
        if request_id not in completed and waiting.get(request_id):
            click.echo(f"{request_id}: still waiting for the backup keys of node(s) "
                       f"{', '.join(waiting[request_id])} (their next `pbx-recorder catalog backup`; "
                       "`catalog backup-nodes --forget NODE` for a node taken out of service)")


@catalog.command("backup-nodes")
@click.option("--forget", "forget", metavar="NODE",
              help="Strike NODE off (taken out of service, its backup keys destroyed there): erasures "
                   "no longer wait for it.")
@click.pass_context
def backup_nodes_cmd(ctx: click.Context, forget: str | None) -> None:
    """The nodes that take catalog backups under keys of their own, and the erasures waiting for
    their backup keys to be destroyed."""
    # striking a node off lets erasures complete without it: key management, the admin's
    rt = Runtime.load(ctx.obj["config_path"], "keys.manage" if forget is not None else "catalog.backup",
                      forget or "")
    if forget is not None:
        if not backup_shred.forget_node(rt.conn, forget):
            raise click.ClickException(f"node {forget!r} is not listed as taking catalog backups")
        completed = backup_shred.complete_ready(rt.conn, time.time())
        rt.audit("catalog.backup_node_forgotten", forget, {"completed": completed})
        click.echo(f"node {forget} struck off; erasure request(s) completed now: "
                   f"{', '.join(completed) or 'none'}")
        return
    rt.audit("catalog.backup_nodes", "", {})
    waiting = backup_shred.waiting_nodes(rt.conn)
    for node, since in sorted(backup_shred.nodes(rt.conn).items()):
        owed = sorted(r for r, left in waiting.items() if node in left)
        first = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M UTC")
        owes = f"owes the destruction of its backup keys for: {', '.join(owed)}" if owed else "nothing owed"
        click.echo(f"{node}  backups since {first}  {owes}")


@catalog.command("restore")
@click.option("--from", "key", required=True, help="Backup key, e.g. catalog-backups/20270101T000000Z.db")
@click.option("--to", "to_path", required=True,
              help="A new SQLite file, or for a .pgdump.pbxr backup the postgresql:// URL of an empty "
                   "schema (password: catalog.password_file when it is the catalog's server)")
@click.option("--tier", "tier_name", help="Tier holding the backup (default: storage.cold or hot).")
@click.option("--sha256", help="Expected hash (default: the .sha256 sidecar stored with it).")
@click.option("--legacy-plaintext", is_flag=True,
              help="Accept an unauthenticated plaintext .db backup (needs --sha256 obtained elsewhere).")
@click.pass_context
def restore_cmd(
    ctx: click.Context, key: str, to_path: str, tier_name: str | None, sha256: str | None,
    legacy_plaintext: bool,
) -> None:
    """Fetch a backup, verify, decrypt, re-apply erasures, write it to a new PATH (never over a file)."""
    rt = Runtime.load(ctx.obj["config_path"], "catalog.restore", key)
    tier = rt.backup_tier(tier_name)
    if engine.is_url(to_path) and rt.config.catalog.url and _same_server(to_path, rt.config.catalog.url):
        engine.configure(to_path, password=engine.password_of(rt.config.catalog.url))
    digest, removed = backup.restore(tier, key, to_path, keys=rt.backup_keys(), sha256=sha256,
                                     scrub=rt.restore_scrub(), work_near=rt.config.catalog.path.parent,
                                     legacy_plaintext=legacy_plaintext)
    shown = engine.describe(to_path)
    rt.audit("catalog.restore", key, {"to": shown, "sha256": digest, "erased_calls_removed": removed})
    click.echo(f"restored {key} -> {shown} (sha256:{digest} verified; {removed} erased call(s) "
               "removed again)")


def _same_server(url: str, catalog_url: str) -> bool:
    """The catalog's password goes only to the catalog's own server and user."""
    from urllib.parse import urlsplit

    a, b = urlsplit(url), urlsplit(catalog_url)
    return (a.hostname, a.port, a.username) == (b.hostname, b.port, b.username)


@catalog.command("backups")
@click.option("--tier", "tier_name")
@click.pass_context
def list_cmd(ctx: click.Context, tier_name: str | None) -> None:
    """Catalog backups stored on a tier (key, size, hash)."""
    rt = Runtime.load(ctx.obj["config_path"], "catalog.backup")
    keys = backup.list_backups(rt.backup_tier(tier_name))
    rt.audit("catalog.backups", "", {"count": len(keys)})
    for key in keys:
        click.echo(f"{key}  (UNAUTHENTICATED plaintext: restore needs --legacy-plaintext --sha256)"
                   if backup.is_unauthenticated(key) else key)


@catalog.command("migrate")
@click.option("--batch", "batch_size", default=500, show_default=True, type=click.IntRange(1, 100000))
@click.option("--force", is_flag=True, help="Walk every row even if a full pass already finished.")
@click.pass_context
def migrate_cmd(ctx: click.Context, batch_size: int, force: bool) -> None:
    """Bring the catalog to the newest schema, encrypt the numbers stored before schema 6, and keep
    only the copy and hash of the signed manifests stored before schema 11 (each checked first); read
    back and seal the numbers of the manifests stored under schema 11 (schema 12, each verified first);
    index the numbers older versions left out of a call's number index, also those only a signed
    manifest names (read back from storage for the calls that keep extra numbers); mask the export
    and report filters and stored reports older versions kept in clear (each once).

    Resumable: batches commit one by one and a new run skips what is done.  Ends with VACUUM so
    no page of the file keeps a clear number (the daemon does the same at start)."""
    from pbx_recorder.catalog.number_migration import protect

    rt = Runtime.load(ctx.obj["config_path"], "catalog.restore")  # an admin's act, like a restore
    with exclusive_job(rt.config, "catalog-migrate") as busy:
        if busy:
            click.echo(busy)
            return
        report = protect(rt.conn, rt.numbers, batch=batch_size, force=force, progress=progress)
    rt.audit("catalog.migrate", "", {"calls": report.calls, "manifests": report.manifests,
                                     "live_calls": report.live_calls, "errors": len(report.errors)})
    if report.skipped:
        click.echo(f"numbers already encrypted under key {rt.numbers.cipher.current_key_id}; nothing to do")
        data_steps(rt, batch_size, force)
        return
    click.echo(f"encrypted the numbers of {report.calls} calls, {report.manifests} manifests, "
               f"{report.live_calls} live calls under key {rt.numbers.cipher.current_key_id}"
               + ("; file vacuumed" if report.vacuumed else ""))
    for line in report.errors:
        click.echo(f"  not encrypted: {line}", err=True)
    if report.errors:
        raise CryptoError(f"{len(report.errors)} rows could not be opened; run again once fixed")
    data_steps(rt, batch_size, force)


def register(group: click.Group) -> None:
    group.add_command(catalog)
