"""``pbx-recorder catalog backup|restore|backups``."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click

from pbx_recorder.catalog import engine
from pbx_recorder.errors import CryptoError, IntegrityError
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
        report = protect(rt.conn, rt.numbers, batch=batch_size, force=force,
                         progress=lambda what, n: n % 10000 == 0 and click.echo(f"{what}: {n}", err=True))
    rt.audit("catalog.migrate", "", {"calls": report.calls, "manifests": report.manifests,
                                     "live_calls": report.live_calls, "errors": len(report.errors)})
    if report.skipped:
        click.echo(f"numbers already encrypted under key {rt.numbers.cipher.current_key_id}; nothing to do")
        _data_steps(rt, batch_size, force)
        return
    click.echo(f"encrypted the numbers of {report.calls} calls, {report.manifests} manifests, "
               f"{report.live_calls} live calls under key {rt.numbers.cipher.current_key_id}"
               + ("; file vacuumed" if report.vacuumed else ""))
    for line in report.errors:
        click.echo(f"  not encrypted: {line}", err=True)
    if report.errors:
        raise CryptoError(f"{len(report.errors)} rows could not be opened; run again once fixed")
    _data_steps(rt, batch_size, force)


def _data_steps(rt: Runtime, batch_size: int, force: bool) -> None:
    """The data steps after the numbers are sealed, in order (each skips itself once done; one
    that cannot finish raises, and the next run of ``catalog migrate`` goes on from it)."""
    _stored_filters(rt, batch_size, force)
    _query_holds_sealed(rt)
    _named_numbers(rt, batch_size, force)
    _manifest_numbers(rt)
    _manifest_named(rt, force)
    _shrink_manifests(rt, batch_size)
    _rule_tags(rt, batch_size, force)  # (after the shrink: every stored manifest is read back)


def _stored_filters(rt: Runtime, batch_size: int, force: bool) -> None:
    """Export jobs' and report schedules' stored filters, and stored reports' QA agents, written
    before every field was masked: masked as they are masked when written now, once."""
    from pbx_recorder.catalog import stored_filters_pass

    if not force and not stored_filters_pass.pending(rt.conn, rt.numbers):
        return
    with exclusive_job(rt.config, "catalog-migrate") as busy:
        if busy:
            click.echo(busy)
            return
        done = stored_filters_pass.run(rt.conn, batch=batch_size, force=force, numbers=rt.numbers,
                                       actor=rt.actor, role=rt.role,
                                       progress=lambda what, n: n % 10000 == 0 and click.echo(f"{what}: {n}",
                                                                                              err=True))
    rt.audit("catalog.migrate", "stored-filters", {"read": done.read, "masked": done.masked,
                                                   "done": done.done, "saved_searches_renamed": done.renamed,
                                                   "saved_search_names_unreadable": done.names_unreadable})
    click.echo("masked the stored filters and reports older versions kept in clear: "
               + ", ".join(f"{table} {done.masked.get(table, 0)} of {done.read.get(table, 0)}"
                           for table in ("export_jobs", "report_schedules", "reports"))
               + f"; saved searches sealed {done.masked.get('saved_searches', 0)} of "
                 f"{done.read.get('saved_searches', 0)}")
    for what, counts in (("renamed to their masked form", done.renamed),
                         ("left (the query does not open: delete them)", done.names_unreadable)):
        if counts:
            click.echo(f"saved searches whose name held a number, {what}: "
                       + ", ".join(f"{user} {n}" for user, n in sorted(counts.items())))


def _query_holds_sealed(rt: Runtime) -> None:
    """Query holds kept in clear by older versions sealed under the catalog key, each with its
    ``hold_rekeyed`` ledger entry (``catalog.query_holds_sealed_pass``), once."""
    from pbx_recorder.catalog import query_holds_sealed_pass as p

    if not p.pending(rt.conn, rt.numbers):
        return
    with exclusive_job(rt.config, "catalog-migrate") as busy:
        if busy:
            click.echo(busy)
            return
        done = p.run(rt.conn, rt.numbers)
    rt.audit("catalog.migrate", "query-holds", {"read": done.read, "sealed": done.sealed,
                                                "resealed": done.resealed, "left": done.left})
    click.echo(f"query holds sealed {done.sealed + done.resealed} of {done.read}"
               + "".join(f"\n  left as it is: {why}" for why in done.left))


def _named_numbers(rt: Runtime, batch_size: int, force: bool) -> None:
    """The index rows of the numbers older versions left out of ``call_numbers`` (a number inside
    a channel name or a dial string), re-derived from each call's sealed numbers, once."""
    from pbx_recorder.catalog import named_numbers_pass

    if not force and not named_numbers_pass.pending(rt.conn):
        return
    with exclusive_job(rt.config, "catalog-migrate") as busy:
        if busy:
            click.echo(busy)
            return
        done = named_numbers_pass.run(rt.conn, rt.numbers, batch=batch_size, force=force,
                                      progress=lambda what, n: n % 10000 == 0 and click.echo(f"{what}: {n}",
                                                                                             err=True))
    rt.audit("catalog.migrate", "call-numbers", {"calls": done.calls, "indexed": done.indexed,
                                                 "rows": done.rows, "failed": done.failed, "done": done.done})
    click.echo(f"re-derived the numbers of {done.calls} calls: {done.indexed} calls got {done.rows} index "
               "rows they lacked" + ("" if done.done else "; not finished"))
    for line in done.errors:
        click.echo(f"  not opened: {line}", err=True)
    if not done.done:
        raise CryptoError(f"{done.failed} calls could not be opened; fix them (see `pbx-recorder verify`) "
                          "and run `pbx-recorder catalog migrate` again")


def _manifest_numbers(rt: Runtime) -> None:
    """Schema 12's data step: the numbers of manifests stored under schema 11 before it, read back
    from storage (each verified first) and sealed, so ``keys rotate-index`` re-indexes them."""
    from pbx_recorder.catalog import manifest_numbers
    from pbx_recorder.cli.crypto_setup import keyring_of
    from pbx_recorder.recording.signing import load_public_key, public_key_path

    if not manifest_numbers.pending(rt.conn):
        return
    key_file = rt.config.signing.key_file
    if not (public_key_path(key_file).is_file() or key_file.is_file()):
        click.echo("numbers of manifests stored under schema 11 not read back: no signing key to check "
                   "them with (`keys rotate-index` waits for this step)")
        return
    with exclusive_job(rt.config, "catalog-migrate") as busy:
        if busy:
            click.echo(busy)
            return
        done = manifest_numbers.run(rt.conn, rt.numbers, rt.tiers, keyring_of(rt.config, required=False),
                                    load_public_key(key_file))
    rt.audit("catalog.migrate", "manifest-numbers", {"read": done.read, "sealed": done.sealed,
                                                     "unread": len(done.unread), "done": done.done})
    click.echo(f"read back {done.read} signed manifests stored under schema 11: {done.sealed} calls got "
               "sealed numbers their row does not hold" + ("" if done.done else "; not finished"))
    for line in done.unread[:50]:
        click.echo(f"  not read: {line}", err=True)
    if not done.done:
        raise IntegrityError(f"{len(done.unread)} signed manifests could not be read back or verified "
                             "(restore archived ones, fix the others: see `pbx-recorder verify`), then run "
                             "`pbx-recorder catalog migrate` again; `keys rotate-index` waits for this step")


def _manifest_named(rt: Runtime, force: bool) -> None:
    """The numbers only a signed manifest names, re-derived from the manifests of the calls that
    keep extra numbers (read back from storage, each verified first), once."""
    from pbx_recorder.catalog import manifest_named_pass
    from pbx_recorder.cli.crypto_setup import keyring_of
    from pbx_recorder.recording.signing import load_public_key, public_key_path

    if not force and not manifest_named_pass.pending(rt.conn):
        return
    key_file = rt.config.signing.key_file
    if not (public_key_path(key_file).is_file() or key_file.is_file()):
        click.echo("numbers only a signed manifest names not re-derived: no signing key to check the "
                   "manifests with")
        return
    with exclusive_job(rt.config, "catalog-migrate") as busy:
        if busy:
            click.echo(busy)
            return
        done = manifest_named_pass.run(rt.conn, rt.numbers, rt.tiers, keyring_of(rt.config, required=False),
                                       load_public_key(key_file), force=force)
    rt.audit("catalog.migrate", "manifest-named-numbers", {"calls": done.calls, "read": done.read,
                                                           "indexed": done.indexed, "rows": done.rows,
                                                           "unread": done.unread, "failed": done.failed,
                                                           "done": done.done})
    click.echo(f"read back {done.read} signed manifests of {done.calls} calls that keep extra numbers: "
               f"{done.indexed} calls got {done.rows} index rows they lacked"
               + ("" if done.done else "; not finished"))
    for line in done.errors:
        click.echo(f"  not read: {line}", err=True)
    if not done.done:
        raise IntegrityError(f"{done.unread} signed manifests could not be read back or verified and "
                             f"{done.failed} calls could not be opened (restore archived ones, fix the "
                             "others: see `pbx-recorder verify`), then run `pbx-recorder catalog migrate` "
                             "again")


def _shrink_manifests(rt: Runtime, batch_size: int) -> None:
    """Schema 11's data step: rows written before keep only the copy and hash of their manifest."""
    from pbx_recorder.catalog.manifest_shrink import shrink
    from pbx_recorder.recording.signing import load_public_key, public_key_path

    key_file = rt.config.signing.key_file
    if not (public_key_path(key_file).is_file() or key_file.is_file()):
        click.echo("manifest copies of older rows kept whole: no signing key to check them with")
        return
    with exclusive_job(rt.config, "catalog-migrate") as busy:
        if busy:
            click.echo(busy)
            return
        done = shrink(rt.conn, rt.numbers, load_public_key(key_file), batch=batch_size)
    rt.audit("catalog.migrate", "manifests", {"shrunk": done.shrunk, "kept_whole": len(done.kept)})
    click.echo(f"kept the copy and hash of {done.shrunk} older rows' signed manifests"
               + ("; file vacuumed" if done.vacuumed else ""))
    for line in done.kept:
        click.echo(f"  kept whole: {line}", err=True)
    if done.kept:
        raise IntegrityError(f"{len(done.kept)} manifest copies do not verify against their signature: "
                             "kept whole, see `pbx-recorder verify`")


def _rule_tags(rt: Runtime, batch_size: int, force: bool) -> None:
    """The tags older calls' recording rules set, read back from their signed manifests (each
    verified first), recorded in ``calls.rule_tags`` and sealed (v2), once."""
    from pbx_recorder.catalog import rule_tags_pass
    from pbx_recorder.cli.crypto_setup import keyring_of
    from pbx_recorder.recording.call_seal import CallSealer
    from pbx_recorder.recording.signing import load_public_key, load_signing_key

    if not force and not rule_tags_pass.pending(rt.conn):
        return
    key_file = rt.config.signing.key_file
    if key_file is None or not key_file.is_file():
        click.echo("rule tags of older calls not recorded: no signing key to check their manifests and "
                   "seal their rows with (four-eyes replay follows today's rules for them)")
        return
    with exclusive_job(rt.config, "catalog-migrate") as busy:
        if busy:
            click.echo(busy)
            return
        key = load_signing_key(key_file)
        sealer = CallSealer(key, reveal=rt.numbers.open_call)  # as the daemon seals (app.py)
        done = rule_tags_pass.run(rt.conn, rt.numbers, sealer, rt.tiers,
                                  keyring_of(rt.config, required=False), load_public_key(key),
                                  batch=batch_size, force=force)
    rt.audit("catalog.migrate", "rule-tags", {"calls": done.calls, "read": done.read,
                                              "recorded": done.recorded, "bare": done.bare,
                                              "unread": done.unread, "broken": done.broken,
                                              "changed": done.changed, "done": done.done})
    click.echo(f"recorded the rule tags of {done.recorded} of {done.calls} older calls from {done.read} "
               f"signed manifests ({done.bare} without a stored recording left as they are)"
               + ("" if done.done else "; not finished"))
    for line in done.errors:
        click.echo(f"  not recorded: {line}", err=True)
    if not done.done:
        raise IntegrityError(f"{done.unread} calls' manifests could not be read back or verified, "
                             f"{done.broken} calls' seals do not verify and {done.changed} changed during "
                             "the walk (restore archived ones, fix the others: see `pbx-recorder verify`), "
                             "then run `pbx-recorder catalog migrate` again; until then four-eyes replay "
                             "follows today's rules for them")


def register(group: click.Group) -> None:
    group.add_command(catalog)
