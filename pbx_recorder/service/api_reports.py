"""Reports over HTTP (:mod:`pbx_recorder.reports`); the pages are :mod:`pbx_recorder.web.reports_page`.

    GET  /api/reports/figures?period=2026-W48&team=red   the figures as JSON (reports.read)
    GET  /api/report-schedules                           the actor's schedules (admin: all;
                                                         audited ``reports.schedule.list``)
    POST /api/report-schedules  {name, period: week|month, team, mail_to}   (reports.schedule)
    POST /api/report-schedules/{schedule_id}/delete      the owner's own (admin: any)

Who reads what (:mod:`pbx_recorder.reports.access`): admin and auditor any team or the overall
report; a supervisor only their own teams, never the overall one.  A refusal answers 403 and is
audited (``denied:reports.read`` with the team asked for); every read and every change is audited.
A schedule is checked and saved in one worker thread, so the row of a schedule made with an API
token names the token like every other row (:mod:`pbx_recorder.service.request_tag`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.config.reports import is_address
from pbx_recorder.reports import access, periods, queries, store
from pbx_recorder.reports.figures import Figures
from pbx_recorder.service import list_audit
from pbx_recorder.service.auth import Actor, ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.json_body import parse_object
from pbx_recorder.service.roles import may
from pbx_recorder.service.scoped_endpoint import with_body


@dataclass(frozen=True, slots=True)
class Asked:
    period: periods.Period
    team: str


def tz_of(ctx: ServiceContext) -> Any:
    from datetime import UTC

    return ctx.tz or UTC


def asked(request: Request, ctx: ServiceContext, actor: Actor) -> Asked:
    """The period (default: the last complete week) and team (default: overall for admin and
    auditor, the first own team for a lead) of the query; 400 for a malformed period."""
    tz = tz_of(ctx)
    key = request.query_params.get("period", "").strip()[:16]
    try:
        period = periods.parse(periods.kind_of(key), key, tz) if key \
            else periods.last_complete("week", ctx.clock(), tz)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from exc
    if "team" in request.query_params:
        team = request.query_params["team"].strip()[:64]
    else:
        choices = access.readable_teams(actor.user.role, actor.user.teams, [])
        team = choices[0] if choices else ""
    return Asked(period, team)


def check_read(ctx: ServiceContext, actor: Actor, team: str, target: str) -> None:
    """403 (audited) unless the actor may read ``team``'s report ('' = overall)."""
    require(ctx, actor, "reports.read", target, {"team": team})
    if not access.may_read(actor.user.role, actor.user.teams, team):
        audit(ctx, actor.user.name, actor.user.role, "denied:reports.read", target,
              {"client": actor.client, "team": team, "reason": "team" if team else "overall"})
        raise ApiError(403, "you may not read this team's report" if team else "only admin and auditor read "
                       "the overall report")


def figures_for(request: Request, target: str, action: str) -> tuple[ServiceContext, Actor, Figures]:
    """The checked, audited figures the request asks for (pages, JSON and downloads alike)."""
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "reports.read", target)
    want = asked(request, ctx, actor)
    check_read(ctx, actor, want.team, target)
    fig = queries.figures(ctx.catalog.connection(), want.period, want.team, ctx.clock(), ctx.access_seal)
    audit(ctx, actor.user.name, actor.user.role, action, target,
          {"client": actor.client, "period": want.period.key, "team": want.team})
    return ctx, actor, fig


def figures_json(request: Request) -> Response:
    _, _, fig = figures_for(request, "/api/reports/figures", "reports.read")
    return JSONResponse(fig.to_dict())


def schedule_list(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "reports.schedule", "/api/report-schedules")
    owner = None if access.sees_every_produced(actor.user.role) else actor.user.name
    rows = store.schedules(ctx.catalog.connection(), owner)
    # owners and mail addresses: the read's one reports.schedule.list row
    list_audit.listed(ctx, actor, list_audit.SCHEDULES, "", len(rows),
                      None if owner is None else {"owner": owner})
    return JSONResponse({"schedules": [{"id": s.id, "owner": s.owner, "name": s.name, "period": s.period,
                                        "team": s.team, "mail_to": s.mail_to, "last_period": s.last_period}
                                       for s in rows]})


def _schedule_add(request: Request, raw: bytes) -> Response:
    """Session, CSRF and verb checked before the body is parsed (an outsider learns nothing from
    it), in the worker thread that then writes the schedule and its audit row: the API token's
    label, set by ``actor_of`` in this thread's context, reaches the row."""
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "reports.schedule", "/api/report-schedules")
    return _add(request, actor, parse_object(request.headers.get("content-type", ""), raw))


schedule_add = with_body(_schedule_add)  # the body read at most its route's limit, then one thread


def _add(request: Request, actor: Actor, data: dict[str, Any]) -> Response:
    ctx = ctx_of(request)
    name, kind, team, mail_to = (data.get(k, "") for k in ("name", "period", "team", "mail_to"))
    if not all(isinstance(v, str) for v in (name, kind, team, mail_to)):
        raise ApiError(400, 'takes {"name", "period": "week"|"month", "team", "mail_to"} (strings)')
    name, team, mail_to = name.strip(), team.strip(), mail_to.strip()
    if not name or len(name) > store.MAX_NAME or not name.isprintable():
        raise ApiError(400, f"name: 1-{store.MAX_NAME} printable characters")
    if kind not in periods.KINDS:
        raise ApiError(400, "period: week or month")
    if mail_to and not is_address(mail_to):
        raise ApiError(400, "mail_to: one plain mail address")
    check_read(ctx, actor, team, "/api/report-schedules")
    conn = ctx.catalog.connection()
    if store.count_schedules(conn, actor.user.name) >= store.MAX_SCHEDULES_PER_OWNER:
        raise ApiError(409, f"at most {store.MAX_SCHEDULES_PER_OWNER} schedules per user")
    schedule_id = store.add_schedule(conn, actor.user.name, name, kind, team, mail_to, ctx.clock())
    audit(ctx, actor.user.name, actor.user.role, "reports.schedule", str(schedule_id),
          {"client": actor.client, "name": name, "period": kind, "team": team, "mail_to": mail_to})
    return JSONResponse({"id": schedule_id}, status_code=201)


def schedule_delete(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    raw = request.path_params["schedule_id"][:24]
    require(ctx, actor, "reports.schedule", raw)
    owner = None if may(actor.user.role, "users.manage") else actor.user.name
    if not raw.isdigit() or not store.delete_schedule(ctx.catalog.connection(), int(raw), owner):
        audit(ctx, actor.user.name, actor.user.role, "denied:reports.unschedule", raw,
              {"client": actor.client, "reason": "not_own_or_absent"})
        raise ApiError(404, "no such schedule")
    audit(ctx, actor.user.name, actor.user.role, "reports.unschedule", raw, {"client": actor.client})
    return JSONResponse({"ok": True})


def routes(sync: Any) -> list[BaseRoute]:
    return [Route("/api/reports/figures", sync(figures_json), methods=["GET"]),
            Route("/api/report-schedules", sync(schedule_list), methods=["GET"]),
            Route("/api/report-schedules", schedule_add, methods=["POST"]),
            Route("/api/report-schedules/{schedule_id}/delete", sync(schedule_delete), methods=["POST"])]
