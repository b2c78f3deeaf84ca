"""``pbx-recorder audit list|verify``: read and check the audit log (``pbx_recorder.audit_trail``).

``audit.read`` (admin, auditor).  ``list`` filters by actor, action (exact or ``prefix*``),
target and time; numbers are never stored in clear, and a role that may not unmask sees every
number-bearing field masked on top of that.  Reading the audit log is itself audited.
``verify`` recomputes the chain and holds it to its signed head (``pbx_recorder.recording.chain_head``):
exit 4 on any problem.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

import click

from pbx_recorder import audit_trail
from pbx_recorder.cli.authz import authorize
from pbx_recorder.cli.cmd_calls import _open, _parse_time
from pbx_recorder.core import access_policy
from pbx_recorder.core.masking import present_record, sanitize
from pbx_recorder.errors import IntegrityError
from pbx_recorder.lifecycle.journal import open_catalog


@click.group(name="audit")
def audit_group() -> None:
    """The audit log: who did what, chained and signed."""


@audit_group.command("list")
@click.option("--actor")
@click.option("--action", help="Exact action, or a prefix ending in * (e.g. 'denied:*').")
@click.option("--target")
@click.option("--from", "from_", metavar="TIME", help="Start (YYYY-MM-DD[THH:MM], local time, or epoch).")
@click.option("--to", "to", metavar="TIME", help="End, exclusive.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_cmd(ctx: click.Context, actor: str | None, action: str | None, target: str | None, from_: str | None,
             to: str | None, limit: int, as_json: bool) -> None:
    """Audit rows, newest first."""
    catalog, tz, config = _open(ctx)
    catalog.close()
    conn = open_catalog(config.catalog.target)
    try:
        who = authorize(config, conn, "audit.read")
        rows = audit_trail.entries(conn, actor=actor, action=action, target=target,
                                   since=_parse_time(from_, tz, "--from"), until=_parse_time(to, tz, "--to"),
                                   limit=limit)
        filters = {k: v for k, v in (("actor", actor), ("action", action), ("target", target)) if v}
        audit_trail.record(conn, actor=who.actor, role=who.role, action="audit.list", target="",
                           detail={**filters, "results": len(rows)}, now=time.time())
    finally:
        conn.close()
    unmask = access_policy.check(who.role, "calls.unmask")
    shown = [present_record(r, unmask) for r in rows]
    if as_json:
        click.echo(json.dumps(shown, indent=2, sort_keys=True, default=str))
        return
    for r in shown:
        when = datetime.fromtimestamp(float(r["at"]), tz).strftime("%Y-%m-%d %H:%M:%S")
        detail = sanitize(json.dumps(r["detail"], sort_keys=True, default=str), 200)
        click.echo(f"{r['id']:>6}  {when}  {sanitize(r['actor'], 20):<12} {sanitize(r['role'], 10):<10} "
                   f"{sanitize(r['action'], 40):<24} {sanitize(r['target'], 64)}  {detail}")
    click.echo(f"{len(shown)} audit row(s)")


@audit_group.command("verify")
@click.pass_context
def verify_cmd(ctx: click.Context) -> None:
    """Recompute the audit chain and hold it to its signed head."""
    from pbx_recorder import audit_status  # the check the console's audit page runs too

    catalog, _, config = _open(ctx)
    catalog.close()
    conn = open_catalog(config.catalog.target)
    try:
        authorize(config, conn, "audit.read")
        status = audit_status.check(conn, config)
    finally:
        conn.close()
    lines, notes, count = list(status.problems), list(status.notes), status.rows
    for note in notes:
        click.echo(f"note: {note}")
    for line in lines:
        click.echo(f"BROKEN {line}")
    click.echo(f"{count} audit rows, {len(lines)} problems")
    if lines:
        raise IntegrityError(f"audit log check failed: {lines[0]}")


def register(group: click.Group) -> None:
    group.add_command(audit_group)
