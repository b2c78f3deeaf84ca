"""``pbx-recorder reports run``: every saved schedule's due, complete periods not yet produced,
computed, stored into ``reports`` (once per period: :func:`store.produce`) and mailed where
``web.reports.smtp`` is configured and the schedule names ``mail_to``.

The owner's rights are checked again at each run: a schedule whose owner was disabled or lost the
right to that team's report (a lead moved to another team) produces nothing, and says why.  A mail
that fails leaves the report produced (the console lists it) and is reported; it is not retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from pbx_recorder import audit_trail
from pbx_recorder.config.reports import SmtpConfig
from pbx_recorder.errors import ReportMailError
from pbx_recorder.reports import access, mail, periods, queries, store, xlsx
from pbx_recorder.service.accounts import Accounts

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    schedule_id: int
    period: str
    report_id: int | None  #: None: not produced (see note)
    mailed: str = ""  #: the address it went to
    note: str = ""


def run(conn: Any, tz: tzinfo, now: float, smtp: SmtpConfig | None, t: Callable[[str], str], *,
        actor: str, role: str, sender: Callable[[SmtpConfig, Any], None] = mail.send,
        seal: Any = None) -> list[Outcome]:
    """``seal``: the access rows' seal (``service.access_seal``) when the service has one."""
    out: list[Outcome] = []
    accounts = Accounts(conn, seal=seal)
    for schedule in store.schedules(conn):
        owner = accounts.get(schedule.owner)
        if owner is None or owner.disabled or not access.may_read(owner.role, owner.teams, schedule.team):
            out.append(Outcome(schedule.id, "", None,
                               note=f"owner {schedule.owner} may no longer read this report"))
            continue
        before = schedule.last_period
        for period in periods.due(schedule.period, before, schedule.created_at, now, tz):
            fig = queries.figures(conn, period, schedule.team, now, seal)
            report_id = store.produce(conn, schedule, before, fig, now)
            if report_id is None:
                out.append(Outcome(schedule.id, period.key, None, note="already produced by another run"))
                break
            before = period.key
            audit_trail.record(conn, actor=actor, role=role, action="reports.produce", target=str(report_id),
                               detail={"schedule": schedule.id, "period": period.key, "team": schedule.team,
                                       "owner": schedule.owner}, now=now)
            out.append(_mail(conn, schedule, fig, report_id, smtp, t, sender, actor, role, now))
    return out


def _mail(conn: Any, schedule: store.Schedule, fig: Any, report_id: int, smtp: SmtpConfig | None,
          t: Callable[[str], str], sender: Callable[[SmtpConfig, Any], None], actor: str, role: str,
          now: float) -> Outcome:
    if not schedule.mail_to or smtp is None:
        return Outcome(schedule.id, fig.period, report_id)
    msg = mail.message(smtp, schedule.mail_to, fig, schedule.name, xlsx.workbook(fig, t), t)
    try:
        sender(smtp, msg)
    except ReportMailError as exc:
        log.error("report %s of schedule %s: %s", report_id, schedule.id, exc)
        return Outcome(schedule.id, fig.period, report_id, note=str(exc))
    audit_trail.record(conn, actor=actor, role=role, action="reports.mail", target=str(report_id),
                       detail={"schedule": schedule.id, "to": schedule.mail_to}, now=now)
    return Outcome(schedule.id, fig.period, report_id, mailed=schedule.mail_to)
