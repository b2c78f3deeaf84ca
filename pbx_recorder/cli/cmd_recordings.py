"""``pbx-recorder recordings get|restore|migrate|capacity``.

Each command is authorized through ``Runtime.load`` (``cli.authz``); ``get`` reads audio only
through ``audio_access.open_plaintext``, which checks the role again and audits the read.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from pbx_recorder import output_path
from pbx_recorder.errors import StorageError
from pbx_recorder.lifecycle import access
from pbx_recorder.lifecycle.job_lease import exclusive_job
from pbx_recorder.lifecycle.runtime import Runtime


def _rt(ctx: click.Context, action: str, target: str = "") -> Runtime:
    return Runtime.load(ctx.obj["config_path"], action, target)


def _keyring(rt: Runtime) -> Any:
    enc = rt.config.encryption
    if not enc.enabled or not enc.master_key_file:
        return None
    from storage.keyring import KeyRing

    return KeyRing.from_config_path(enc.master_key_file)


@click.group()
def recordings() -> None:
    """Fetch, restore and move stored recordings."""


@recordings.command("get")
@click.argument("recording_id")
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False), help="Where to write the audio."
)
@click.pass_context
def get_cmd(ctx: click.Context, recording_id: str, out: str) -> None:
    """Download a recording (decrypted when encrypted), hash-checked; role-checked and audited.

    OUT must be a new file in a directory of the caller's own (or in access.download_dir); it is
    written owner-only (pbx_recorder.output_path)."""
    rt = _rt(ctx, "recordings.read_audio", recording_id)
    target = output_path.check(out, actor=rt.actor, download_dir=rt.config.access.download_dir)
    rec = access.recording(rt.conn, recording_id)
    digest = output_path.write_new(target, lambda tmp: access.download(
        rt.conn, rec, rt.tiers, tmp, keyring=_keyring(rt), actor=rt.actor, role=rt.role, now=time.time()))
    rt.audit("recordings.get", recording_id, {"call_id": rec["call_id"], "sha256": digest})
    click.echo(f"wrote {out} (sha256:{digest})")


@recordings.command("restore")
@click.argument("recording_id")
@click.option("--days", type=click.IntRange(1, 365), default=7, show_default=True)
@click.pass_context
def restore_cmd(ctx: click.Context, recording_id: str, days: int) -> None:
    """Start (or check) the restore of an archive-class recording."""
    rt = _rt(ctx, "recordings.restore", recording_id)
    rec = access.recording(rt.conn, recording_id)
    state = access.restore(rt.conn, rec, rt.tiers, days)
    rt.audit("recordings.restore", recording_id, {"state": state, "days": days})
    hint = {
        "in_progress": "restore running; run this again later",
        "done": "readable now: use `recordings get`",
    }
    if not state:
        hint[""] = f"the object is in {access.object_class(rec, rt.tiers)}, readable: use `recordings get`"
    click.echo(
        f"{recording_id}: restore {state or 'not needed'}" + (f" ({hint[state]})" if state in hint else "")
    )


@recordings.command("migrate")
@click.option("--dry-run", is_flag=True, help="List what is due, move nothing.")
@click.option("--limit", type=click.IntRange(1), default=None)
@click.option("--progress", "show_progress", is_flag=True, help="Progress on stderr (also when piped).")
@click.pass_context
def migrate_cmd(ctx: click.Context, dry_run: bool, limit: int | None, show_progress: bool) -> None:
    """Move recordings past their class's cold_after_days to the cold tier (per region)."""
    rt = _rt(ctx, "recordings.migrate")
    m = rt.migrator()
    now = time.time()
    if dry_run:  # streamed: printed as found, memory O(batch) at any catalog size
        from pbx_recorder.progress import reporter

        # audited before the first recording id is printed (a row that cannot be written prints
        # nothing); the count is on the last line
        rt.audit("recordings.migrate", "", {"dry_run": True, "started": True, "at": now, "limit": limit})
        bar, due = reporter("migrate --dry-run", force=show_progress), 0
        for chunk in m.iter_candidates(now, progress=bar.advance):
            for r in chunk[: None if limit is None else limit - due]:
                click.echo(
                    f"{r['recording_id']}  {r['tier']} -> {m.target_for(r).cold}  ({r['retention_class']})"
                )
                due += 1
            if limit is not None and due >= limit:
                break
        bar.close()
        click.echo(f"{due} recording(s) due")
        return
    with exclusive_job(rt.config, "migrate") as busy:
        if busy:
            click.echo(busy)
            return
        prog = m.run(now, limit=limit, progress=lambda p: click.echo(p.line()))
        followed = rt.follow_transitions()
    for err in prog.errors:
        click.echo(f"failed: {err}", err=True)
    for kept in prog.kept_sources:
        click.echo(f"source kept: {kept}", err=True)
    for change in followed:
        click.echo(f"class followed: {change}")
    click.echo(f"done: {prog.line()}")
    rt.audit("recordings.migrate", "", {"done": prog.done, "failed": prog.failed, "bytes": prog.bytes,
                                        "sources_kept": len(prog.kept_sources),
                                        "classes_followed": len(followed)})
    if prog.failed:
        raise StorageError(f"{prog.failed} recording(s) failed to migrate; their source copies are kept")


@recordings.command("capacity")
@click.option("--dry-run", is_flag=True, help="Say what would move, move nothing.")
@click.pass_context
def capacity_cmd(ctx: click.Context, dry_run: bool) -> None:
    """Relieve hot-tier pressure: migrate lowest-ranked recordings until below low water."""
    rt = _rt(ctx, "recordings.capacity")
    with exclusive_job(rt.config, "migrate") as busy:  # both move recordings: never two at once
        if busy:
            click.echo(busy)
            return
        res = rt.capacity().check(time.time(), dry_run=dry_run)

    def pct(used: int) -> str:
        return f"{100.0 * used / res.total:.1f}%" if res.total else "-"

    click.echo(
        json.dumps(
            {
                "used_before": pct(res.used_before),
                "used_after": pct(res.used_after),
                "migrated": res.migrated,
                "alert": res.alert,
                "reason": res.reason,
            }
        )
    )
    rt.audit("recordings.capacity", "", {"dry_run": dry_run, "migrated": res.migrated, "alert": res.alert})
    if res.alert:
        raise StorageError(f"hot tier still above low water: {res.reason}")


def register(group: click.Group) -> None:
    group.add_command(recordings)
