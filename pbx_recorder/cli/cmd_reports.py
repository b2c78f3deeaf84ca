"""``pbx-recorder reports run [--dry-run]``: produce every saved report schedule's due, complete
periods not yet produced into the console (``reports``), and mail them where ``web.reports.smtp``
is configured (:mod:`pbx_recorder.reports.scheduled`).  Idempotent: a period is produced once, so
the systemd timer may run it daily.  Root or the service user only (``cli/privilege.py``): it
writes the catalog, which no one else can open; a root front end acting for a named operator needs
``reports.run`` (admin).  ``--dry-run`` lists the schedules (owners, teams): it writes one
``reports.schedule.list`` row before printing, as the service's list of them does.
"""

from __future__ import annotations

import time

import click

from pbx_recorder import audit_trail
from pbx_recorder.cli import authz
from pbx_recorder.cli.privilege import require_privileged


@click.group(name="reports")
def reports_group() -> None:
    """Scheduled reports: produce the due weekly and monthly reports and mail them."""


@reports_group.command("run")
@click.option("--dry-run", is_flag=True, help="Print the schedules' due periods; produce nothing.")
@click.pass_context
def run_cmd(ctx: click.Context, dry_run: bool) -> None:
    """Produce every due, complete period of every schedule once (and mail it where configured)."""
    from zoneinfo import ZoneInfo

    from pbx_recorder.config import load_config
    from pbx_recorder.lifecycle.journal import open_catalog
    from pbx_recorder.reports import periods, scheduled, store
    from pbx_recorder.service import access_seal
    from pbx_recorder.web import i18n

    require_privileged("'pbx-recorder reports run'")
    config = load_config(ctx.obj["config_path"])
    who = authz.host_admin_or_authorize(config, None, "reports.run")
    tz, now = ZoneInfo(config.timezone), time.time()
    conn = open_catalog(config.catalog.target)
    try:
        if dry_run:
            schedules = store.schedules(conn)
            # the list's one row, as GET /api/report-schedules writes it, before anything is shown
            audit_trail.record(conn, actor=who.actor, role=who.role, action="reports.schedule.list",
                               target="", detail={"client": "cli", "dry_run": True,
                                                  "results": len(schedules)}, now=now)
            for s in schedules:
                due = periods.due(s.period, s.last_period, s.created_at, now, tz)
                click.echo(f"schedule {s.id} ({s.owner}, {s.team or 'overall'}): "
                           f"{', '.join(p.key for p in due) or 'nothing due'}")
            return
        outcomes = scheduled.run(conn, tz, now, config.web.reports.smtp, i18n.translator("en"),
                                 actor=who.actor, role=who.role, seal=access_seal.of_config(config))
    finally:
        conn.close()
    failed = 0
    for o in outcomes:
        if o.report_id is None:
            click.echo(f"schedule {o.schedule_id}: {o.period or '-'} not produced: {o.note}")
            continue
        mailed = f", mailed to {o.mailed}" if o.mailed else ""
        click.echo(f"schedule {o.schedule_id}: {o.period} produced as report {o.report_id}{mailed}"
                   + (f" ({o.note})" if o.note else ""))
        failed += bool(o.note)
    click.echo(f"{sum(o.report_id is not None for o in outcomes)} report(s) produced")
    if failed:
        from pbx_recorder.errors import ReportMailError

        raise ReportMailError(f"{failed} report(s) produced but not mailed (see above)")


def register(group: click.Group) -> None:
    group.add_command(reports_group)
