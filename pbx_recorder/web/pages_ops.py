"""The pages ``/audit`` (verb ``audit.read``) and ``/health`` (``health.read``), server-rendered
from the same functions as their APIs (``service/api_audit.py``, ``service/api_health.py``), with
no script: the audit filters are a GET form, so a filtered view is a URL that can be shared."""

from __future__ import annotations

import json
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.service import api_audit, api_health, audit_query
from pbx_recorder.service.audit_chain_watch import watch_of
from pbx_recorder.service.auth import actor_of, audit, ctx_of, require
from pbx_recorder.web.render import page as render

FILTER_NAMES = ("actor", "action", "target", "from", "to", "limit")


def _when(at: float | None, tz: tzinfo | None) -> str:
    return datetime.fromtimestamp(at, tz or UTC).strftime("%Y-%m-%d %H:%M:%S") if at else ""


def audit_page(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, api_audit.VERB, "/audit")
    f = api_audit.filters(request, ctx)
    conn = ctx.catalog.connection()
    rows, before = audit_query.page(conn, f)
    audit(ctx, actor.user.name, actor.user.role, "audit.list", "",
          {"client": actor.client, **f.shown(), "results": len(rows), "page": "/audit"})
    raw = {k: v for k, v in request.query_params.items() if k in FILTER_NAMES and v}
    entries = [{**r, "time": _when(r["at"], ctx.tz),
                "detail_text": json.dumps(r["detail"], sort_keys=True, ensure_ascii=False, default=str)}
               for r in rows]
    return render(request, "audit.html", actor, entries=entries,
                  filters=f, raw=raw, query=urlencode(raw),
                  next_query=urlencode({**raw, "before": before}) if before else "",
                  chain=watch_of(request.app).status(conn, ctx.config, ctx.clock()))


def health_page(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, api_health.VERB, "/health")
    h: dict[str, Any] = api_health.gather(ctx)
    for job in h["jobs"]:
        job["last_time"] = _when(job["last_at"], ctx.tz)
    return render(request, "health.html", actor, h=h)


def routes(wrap: Any) -> list[BaseRoute]:
    return [Route("/audit", wrap(audit_page), methods=["GET"]),
            Route("/health", wrap(health_page), methods=["GET"])]
