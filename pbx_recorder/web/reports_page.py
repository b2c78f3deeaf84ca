"""The reports page (``reports.read``): pick a period and a team, read the figures as SVG charts
drawn server-side (:mod:`pbx_recorder.reports.charts`) and tables, download them as XLSX with a
native chart or as PDF (:mod:`pbx_recorder.reports.pdf`, when the CJK font is installed); save a
schedule (``reports.schedule``, through ``static/reports.js``); list the produced reports of one's
schedules (admin: everyone's).

    GET /reports                                   ?period=2026-W48|2026-11&team=red
    GET /reports/download.xlsx, /reports/download.pdf   the same query
    GET /reports/produced/{report_id}              a produced report (its owner, or admin)
    GET /reports/produced/{report_id}/download.xlsx, .../download.pdf

Every view and download is audited (``reports.view`` / ``reports.download``), every refusal too.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.reports import access, charts, figures, pdf, periods, queries, store, xlsx
from pbx_recorder.service import api_reports
from pbx_recorder.service.auth import Actor, ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.roles import may
from pbx_recorder.web import i18n, preferences, render

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PDF = "application/pdf"
PICKER_PERIODS = 12


def _t(ctx: ServiceContext, actor: Actor) -> Any:
    return i18n.translator(preferences.lang_of(ctx, actor.user.name))


def _lists(ctx: ServiceContext, actor: Actor) -> dict[str, Any]:
    conn = ctx.catalog.connection()
    owner = None if access.sees_every_produced(actor.user.role) else actor.user.name
    tz, now = api_reports.tz_of(ctx), ctx.clock()
    return {"produced": store.produced(conn, owner),
            "schedules": store.schedules(conn, owner) if may(actor.user.role, "reports.schedule") else [],
            "weeks": [p.key for p in periods.recent("week", now, tz, PICKER_PERIODS)],
            "months": [p.key for p in periods.recent("month", now, tz, PICKER_PERIODS)],
            "teams": access.readable_teams(actor.user.role, actor.user.teams, queries.teams(conn)),
            "pdf": pdf.available()}


def page(request: Request) -> Response:
    ctx, actor, fig = api_reports.figures_for(request, "/reports", "reports.view")
    return render.page(request, "reports.html", actor, fig=fig, charts=charts.charts(fig, _t(ctx, actor)),
                       produced_view=None, **_lists(ctx, actor))


def _xlsx_response(fig: figures.Figures, t: Any) -> Response:
    name = figures.file_name(fig, "xlsx")
    return Response(xlsx.workbook(fig, t), media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _pdf_response(fig: figures.Figures, t: Any) -> Response:
    if not pdf.available():
        raise ApiError(404, "PDF reports need the font of Debian's fonts-noto-cjk; the XLSX is there")
    name = figures.file_name(fig, "pdf")
    return Response(pdf.document(fig, t), media_type=PDF,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def download(request: Request) -> Response:
    ctx, actor, fig = api_reports.figures_for(request, "/reports/download.xlsx", "reports.download")
    return _xlsx_response(fig, _t(ctx, actor))


def download_pdf(request: Request) -> Response:
    ctx, actor, fig = api_reports.figures_for(request, "/reports/download.pdf", "reports.download")
    return _pdf_response(fig, _t(ctx, actor))


def _produced(request: Request, action: str) -> tuple[ServiceContext, Actor, store.Produced, figures.Figures]:
    ctx = ctx_of(request)
    actor = actor_of(request)
    raw = request.path_params["report_id"][:24]
    require(ctx, actor, "reports.read", raw)
    found = store.produced_one(ctx.catalog.connection(), int(raw)) if raw.isdigit() else None
    # its owner (while they may still read that team: a lead moved off it may not), or admin
    role, teams = actor.user.role, actor.user.teams
    mine = found is not None and (access.sees_every_produced(role) or (
        found[0].owner == actor.user.name and access.may_read(role, teams, found[0].team)))
    if found is None or not mine:
        audit(ctx, actor.user.name, actor.user.role, f"denied:{action}", raw,
              {"client": actor.client, "reason": "not_own_or_absent"})
        raise ApiError(404, "no such report")
    audit(ctx, actor.user.name, actor.user.role, action, raw,
          {"client": actor.client, "period": found[0].period_key, "team": found[0].team})
    return ctx, actor, found[0], figures.from_dict(found[1])


def produced_page(request: Request) -> Response:
    ctx, actor, row, fig = _produced(request, "reports.view")
    return render.page(request, "reports.html", actor, fig=fig, charts=charts.charts(fig, _t(ctx, actor)),
                       produced_view=row, **_lists(ctx, actor))


def produced_download(request: Request) -> Response:
    ctx, actor, _, fig = _produced(request, "reports.download")
    return _xlsx_response(fig, _t(ctx, actor))


def produced_pdf(request: Request) -> Response:
    ctx, actor, _, fig = _produced(request, "reports.download")
    return _pdf_response(fig, _t(ctx, actor))


def routes(sync: Any) -> list[BaseRoute]:
    return [Route("/reports", sync(page), methods=["GET"]),
            Route("/reports/download.xlsx", sync(download), methods=["GET"]),
            Route("/reports/produced/{report_id}", sync(produced_page), methods=["GET"]),
            Route("/reports/download.pdf", sync(download_pdf), methods=["GET"]),
            Route("/reports/produced/{report_id}/download.xlsx", sync(produced_download), methods=["GET"]),
            Route("/reports/produced/{report_id}/download.pdf", sync(produced_pdf), methods=["GET"])]
