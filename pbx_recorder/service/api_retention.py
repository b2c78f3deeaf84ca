"""Retention over HTTP (:class:`pbx_recorder.lifecycle.retention_jobs.RetentionJob`, the CLI's
``retention report`` / ``apply``):

    GET  /api/retention/report?page=N&limit=L   one page of the disposal report: what would be
                                                disposed of now and why, what is refused and why
                                                (``retention.read``)
    POST /api/retention/apply                   {"confirm": true}: dispose (``retention.apply``),
                                                one run at a time (the CLI's job lease)

Bounded: the report streams the recordings in keyset batches (``RetentionJob.iter_report``) and
stops once the page is full, so memory holds one batch and one page, never the catalog; page N
reads the report up to its end (a deep page costs time, not memory).
"""

from __future__ import annotations

from dataclasses import asdict
from itertools import islice
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pbx_recorder.lifecycle.job_lease import exclusive_job
from pbx_recorder.service.api_disposal_support import checkpoint, runtime_of, with_body
from pbx_recorder.service.auth import Actor, ApiError, actor_of, audit, ctx_of, require

MAX_LIMIT = 200
MAX_PAGE = 10_000
SHOWN_REFUSED = 200


def _int(request: Request, name: str, default: int, top: int) -> int:
    raw = request.query_params.get(name) or str(default)
    if not raw.isdigit() or not 0 < int(raw) <= top:
        raise ApiError(400, f"{name}: a number from 1 to {top}")
    return int(raw)


def report_page(request: Request, actor: Actor) -> dict[str, Any]:
    """The page the query string asks for (``page`` from 1, ``limit`` items)."""
    ctx = ctx_of(request)
    page, limit = _int(request, "page", 1, MAX_PAGE), _int(request, "limit", 50, MAX_LIMIT)
    job = runtime_of(ctx, actor).retention()
    start = (page - 1) * limit
    items = [asdict(d) for d in islice(job.iter_report(ctx.clock()), start, start + limit + 1)]
    more = len(items) > limit
    return {"page": page, "limit": limit, "items": items[:limit], "more": more}


def report(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "retention.read", "", {"what": "retention.report"})
    out = report_page(request, actor)
    audit(ctx, actor.user.name, actor.user.role, "retention.report", "",
          {"client": actor.client, "page": out["page"], "items": len(out["items"])})
    return JSONResponse(out)


def _apply(request: Request, actor: Actor, data: dict[str, Any]) -> Response:
    ctx = ctx_of(request)
    require(ctx, actor, "retention.apply", "", {"what": "retention.apply"})
    if data.get("confirm") is not True:
        raise ApiError(400, 'takes {"confirm": true}: disposal is permanent')
    rt = runtime_of(ctx, actor)
    with exclusive_job(rt.config, "retention-apply") as busy:
        if busy:
            audit(ctx, actor.user.name, actor.user.role, "denied:retention.apply", "",
                  {"client": actor.client, "reason": busy})
            raise ApiError(409, busy)
        res = rt.retention().apply(ctx.clock(), actor.user.name)
    audit(ctx, actor.user.name, actor.user.role, "retention.apply", res.run_id,
          {"client": actor.client, "disposed": len(res.disposed), "refused": len(res.refused),
           "failed": len(res.failed), "exports_withdrawn": res.exports_withdrawn})
    checkpoint(ctx)
    return JSONResponse({"run_id": res.run_id, "disposed": res.disposed, "failed": res.failed,
                         "refused": [asdict(d) for d in res.refused[:SHOWN_REFUSED]],
                         "refused_total": len(res.refused), "exports_withdrawn": len(res.exports_withdrawn)})


def routes(sync: Any) -> list[Route]:
    return [Route("/api/retention/report", sync(report), methods=["GET"]),
            Route("/api/retention/apply", with_body(_apply), methods=["POST"])]
