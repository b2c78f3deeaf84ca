"""``pbx-recorder erase --caller N | --call-id ID [--request-id R] [--include-protected]`` and
``erase status``."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import click

from pbx_recorder.errors import PolicyRefusal
from pbx_recorder.lifecycle.runtime import Runtime
from pbx_recorder.progress import reporter


@click.group(invoke_without_command=True)
@click.option("--caller", help="Erase every call of this number (as caller or callee).")
@click.option("--call-id", "call_id", help="Erase one call.")
@click.option("--request-id", "request_id", help="The data subject's request id (default: generated; "
              "an open request of the same subject is completed).")
@click.option("--progress", "show_progress", is_flag=True, help="Progress on stderr (also when piped).")
@click.option("--shred-backups-now", "shred_now", is_flag=True,
              help="Take the fresh catalog backup that shreds the older ones inside this command (a copy "
                   "of the whole catalog: its size in free space). Default: the next `catalog backup` "
                   "does it, once for every erasure since the last.")
@click.option("--include-protected", "include_protected", is_flag=True,
              help="Also erase recordings of protected retention classes (kept by default: a legal "
                   "obligation to keep them outweighs erasure, GDPR art. 17(3)(b)); the host admin's "
                   "one-person override, audited (in the console a second person approves it).")
@click.pass_context
def erase(ctx: click.Context, caller: str | None, call_id: str | None, request_id: str | None,
          show_progress: bool, shred_now: bool, include_protected: bool) -> None:
    """Right to erasure: delete everywhere and print a proof receipt (JSON).  The catalog backups
    taken before it are shredded by the next `catalog backup` (see `erase status`)."""
    if ctx.invoked_subcommand is not None:
        return
    if bool(caller) == bool(call_id):
        raise PolicyRefusal("give exactly one of --caller or --call-id")
    rt = Runtime.load(ctx.obj["config_path"], "erase.request", call_id or "")
    eraser = rt.eraser()
    eraser.shred_now = shred_now
    eraser.include_protected = include_protected
    bar = reporter("erase: catalog rows read", force=show_progress)
    eraser.tick = bar.advance
    try:
        receipt = eraser.erase(caller=caller, call_id=call_id, request_id=request_id, actor=rt.actor,
                               now=time.time())
    finally:
        bar.close()
    rt.audit(
        "erase",
        receipt["request_id"],
        {
            "subject": receipt["subject"],
            "status": receipt["status"],
            "recordings_erased": receipt["recordings_erased"],
            "include_protected": include_protected,
        },
    )
    click.echo(json.dumps(receipt, indent=2, sort_keys=True))


@erase.command("status")
@click.pass_context
def status_cmd(ctx: click.Context) -> None:
    """Open erasure requests against their 15-day deadline (overdue first)."""
    rt = Runtime.load(ctx.obj["config_path"], "erase.status")
    items = rt.eraser().status(time.time())
    partial = [r for r in items if r["status"] == "refused_partial"]
    done = [r for r in items if r["status"] == "done"]
    items = [r for r in items if r["status"] != "done"]
    rt.audit("erase.status", "", {"open": len(items) - len(partial), "partial": len(partial)})
    for r in done:
        if r["backup_shred_since"] is not None:
            asked = datetime.fromtimestamp(r["backup_shred_since"], UTC).strftime("%Y-%m-%d %H:%M UTC")
            flag = "OVERDUE" if r["overdue"] else f"{r['days_left']} day(s) left"
            by = (f"the next `pbx-recorder catalog backup` on node(s) {', '.join(r['backup_shred_nodes'])} "
                  "shreds them (their own backup keys)" if r["backup_shred_nodes"]
                  else "the next `pbx-recorder catalog backup` shreds them")
            click.echo(f"{r['request_id']}  done  older catalog backups not shredded yet (since {asked}, "
                       f"{flag}): {by}")
        if not r["late_copies"]:
            continue
        # a call live during the erasure: its copies were destroyed when they arrived
        click.echo(f"{r['request_id']}  done  {len(r['late_copies'])} late cop(ies) destroyed on arrival")
        for c in r["late_copies"]:
            what = f"{c['copy']} {c['recording_id']}" if c["recording_id"] else c["copy"]
            click.echo(f"    call {c['call_id']}: {what} {c['action']}")
    for r in items:
        due = datetime.fromtimestamp(r["deadline"], UTC).strftime("%Y-%m-%d %H:%M UTC")
        if r["status"] == "refused_partial":
            click.echo(f"{r['request_id']}  due {due}  PARTIAL: {len(r['withheld'])} recording(s) withheld")
            for w in r["withheld"]:
                kind = "kept" if str(w["hold_id"]).startswith("retention:") else "legal hold"
                click.echo(f"    {w['recording_id']} (call {w['call_id']}): {kind} "
                           f"{w['hold_id'] or '-'}: {w['reason']}")
            if r["saved_searches_unreadable"]:
                click.echo(f"    {r['saved_searches_unreadable']} saved search(es) could not be opened: "
                           "not checked")
            for key, why in (("held_by_query_holds", "names the subject: kept"),
                             ("query_holds_unreadable", "could not be opened: not checked")):
                for hold_id in r[key]:
                    click.echo(f"    query hold {hold_id} {why}")
            if r["backup_shred_since"] is not None:
                click.echo("    older catalog backups not shredded yet: the next `pbx-recorder catalog "
                           "backup` shreds them" + (" (OVERDUE)" if r["overdue"] else ""))
            continue
        flag = "OVERDUE" if r["overdue"] else f"{r['days_left']} day(s) left"
        click.echo(f"{r['request_id']}  due {due}  {flag}")
    waiting = [r for r in done if r["backup_shred_since"] is not None]
    click.echo(f"{len(items) - len(partial)} open, {sum(r['overdue'] for r in items + waiting)} overdue, "
               f"{len(partial)} partial, {len(waiting)} waiting for a backup shred")


def register(group: click.Group) -> None:
    group.add_command(erase)
