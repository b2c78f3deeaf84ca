"""``pbx-recorder hold add|remove|list``: legal holds by call, caller or search query."""

from __future__ import annotations

import json
import time

import click

from pbx_recorder.core.masking import mask_number
from pbx_recorder.errors import PolicyRefusal
from pbx_recorder.lifecycle import query_hold_rows
from pbx_recorder.lifecycle.runtime import Runtime
from pbx_recorder.progress import reporter


@click.group()
def hold() -> None:
    """Legal holds: override retention and erasure until released."""


@hold.command("add")
@click.option("--call", "call_id", help="Hold one call.")
@click.option("--caller", help="Hold every call of this number (stored as a keyed hash).")
@click.option("--query", help='Search filters as JSON, e.g. \'{"queue": "sales", "start": 1767225600}\'.')
@click.option("--reason", required=True)
@click.option("--progress", "show_progress", is_flag=True, help="Progress on stderr (also when piped).")
@click.pass_context
def add_cmd(
    ctx: click.Context, call_id: str | None, caller: str | None, query: str | None, reason: str,
    show_progress: bool,
) -> None:
    """Place a legal hold (one of --call, --caller, --query); sets S3 Object Lock legal hold
    where the bucket has it."""
    given = [(s, v) for s, v in (("call", call_id), ("caller", caller), ("query", query)) if v]
    if len(given) != 1:
        raise PolicyRefusal("give exactly one of --call, --caller, --query")
    scope, value = given[0]
    rt = Runtime.load(ctx.obj["config_path"], "hold.add")
    holds = rt.holds()
    bar = reporter("hold add: calls read", force=show_progress)
    holds.tick = bar.advance
    try:
        h = holds.add(scope, value, reason, rt.actor, now=time.time())
    finally:
        bar.close()
    # (a query: every filter masked, ``query_hold_rows.shown``; its audit row keeps that form, as
    # the API's does, not the stored token)
    shown = mask_number(value) if scope == "caller" else h.get("shown") or value
    rt.audit(
        "hold.add",
        h["hold_id"],
        {"scope": scope, "value": shown if scope == "query" else h["value"], "reason": reason,
         "recordings": len(h["recordings"])},
    )
    click.echo(f"{h['hold_id']}: {scope} {shown}, {len(h['recordings'])} recording(s) held")


@hold.command("remove")
@click.argument("hold_id")
@click.pass_context
def remove_cmd(ctx: click.Context, hold_id: str) -> None:
    """Release a hold; retention and erasure apply again to what it covered."""
    rt = Runtime.load(ctx.obj["config_path"], "hold.remove", hold_id)
    out = rt.holds().remove(hold_id, rt.actor, now=time.time())
    rt.audit("hold.remove", hold_id, {"released": len(out["released"])})
    click.echo(f"{hold_id}: released, {len(out['released'])} recording(s) no longer held")


@hold.command("list")
@click.option("--all", "include_released", is_flag=True, help="Include released holds.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_cmd(ctx: click.Context, include_released: bool, as_json: bool) -> None:
    """Active holds (with --all, released ones too) and how many recordings each covers; a query
    masked, a hold that cannot be read marked UNREADABLE (it holds every recording)."""
    rt = Runtime.load(ctx.obj["config_path"], "hold.list")
    items = [query_hold_rows.displayed(h) for h in rt.holds().list(include_released)]
    rt.audit("hold.list", "", {"count": len(items)})
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    for h in items:
        state = "released" if h["released_at"] else "active"
        click.echo(
            f"{h['hold_id']}  {state:8} {h['scope']:6} {h['recordings']:5} rec  by {h['created_by']}: "
            f"{h['reason']}" + (f"  [{query_hold_rows.UNREADABLE}]" if h["unreadable"] else "")
        )
    click.echo(f"{len(items)} hold(s)")


def register(group: click.Group) -> None:
    group.add_command(hold)
