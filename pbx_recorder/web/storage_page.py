"""The storage page (``storage.read``: admin, it): bytes per tier per month from the catalog (one
aggregate query, :func:`pbx_recorder.reports.queries.stored_by_month`) beside the ``plan``
forecast (:mod:`pbx_recorder.reports.storage_view` over :mod:`pbx_recorder.core.planner`).  No call
data: sums and counts only.  Every view is audited (``storage.view``), a refusal too.

    GET /storage
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.core import planner
from pbx_recorder.reports import periods, queries, storage_view
from pbx_recorder.reports.svg import bar_chart
from pbx_recorder.service import api_reports
from pbx_recorder.service.auth import actor_of, audit, ctx_of, require
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.web import i18n, preferences, render

MONTHS_BACK = 12
MONTHS_AHEAD = 12
RATE_DAYS = 30
DEFAULT_CLASSES = {"standard": (180, 30)}  # the config's default when ctx.config is absent (tests)


def _classes(ctx: ServiceContext) -> tuple[dict[str, tuple[int, int | None]], str]:
    config = ctx.config
    if config is None:
        return dict(DEFAULT_CLASSES), "standard"
    cold = config.storage.cold
    classes = config.retention.classes
    return ({name: (c.days, c.cold_after_days if cold else None) for name, c in classes.items()},
            config.retention.default_class)


def figures(ctx: ServiceContext) -> dict[str, Any]:
    conn, tz, now = ctx.catalog.connection(), api_reports.tz_of(ctx), ctx.clock()
    months = list(reversed(periods.recent("month", now, tz, MONTHS_BACK)))
    rows = queries.stored_by_month(conn, [(m.key, m.start, m.end) for m in months])
    before = queries.storage_before(conn, months[0].start)
    tiers, stock = storage_view.months([m.key for m in months], rows, before)
    per_day, minutes, fmt = queries.recent_rate(conn, now - RATE_DAYS * 86400, now + 1)
    classes, default = _classes(ctx)
    inputs = storage_view.ForecastInputs(per_day, minutes, fmt, storage_view.shares(
        queries.class_counts(conn, now - RATE_DAYS * 86400, now + 1), classes, default))
    return {"tiers": tiers, "stock": stock, "inputs": inputs,
            "forecast": storage_view.forecast(inputs, MONTHS_AHEAD)}


def page(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "storage.read", "/storage")
    data = figures(ctx)
    audit(ctx, actor.user.name, actor.user.role, "storage.view", "/storage", {"client": actor.client})
    t = i18n.translator(preferences.lang_of(ctx, actor.user.name))
    chart = bar_chart("chart-storage", t("storage.chart"),
                      [(s.month, s.all_total) for s in data["stock"]], planner.human)
    forecast = bar_chart("chart-forecast", t("storage.forecast_chart"),
                         [(f"+{r.month}", r.total) for r in data["forecast"]], planner.human)
    return render.page(request, "storage.html", actor, human=planner.human, chart=chart,
                       forecast_chart=forecast, **data)


def routes(sync: Any) -> list[BaseRoute]:
    return [Route("/storage", sync(page), methods=["GET"])]
