"""The audit log over HTTP (verb ``audit.read``: admin, auditor).

    GET /api/audit              rows newest first, filtered (``service/audit_query.py``), paged by id;
                                audited as ``audit.list``
    GET /api/audit/export.csv   every matching row, oldest first, streamed as CSV; audited as
                                ``audit.export`` before the first byte
    GET /api/audit/chain        the chain check of ``audit verify`` (``pbx_recorder.audit_status``):
                                a full pass every 5 min, the new rows in between
                                (``audit_chain_watch.py``); ``?full=1`` forces a full pass

Numbers in details stay masked (:func:`pbx_recorder.audit_trail.scrub`).  A CSV cell that a
spreadsheet would run as a formula (``= + - @``, tab, CR, also after leading blanks) is prefixed
with ``'``: actors, targets and details can carry hostile text.  The guard is the calls export's
(:func:`pbx_recorder.exports.columns.neutralise`), so both exports refuse the same cells.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from pbx_recorder.exports.columns import neutralise
from pbx_recorder.service import audit_query
from pbx_recorder.service.api_calls import _time
from pbx_recorder.service.audit_chain_watch import watch_of
from pbx_recorder.service.auth import Actor, ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.context import ServiceContext

VERB = "audit.read"
CSV_COLUMNS = ("id", "at", "time_utc", "actor", "role", "action", "target", "detail")


def filters(request: Request, ctx: ServiceContext) -> audit_query.AuditFilters:
    try:
        return audit_query.parse(request.query_params, lambda text, name: _time(text, ctx, name))
    except ValueError as exc:
        raise ApiError(400, str(exc)) from exc


def allowed(request: Request, target: str) -> tuple[ServiceContext, Actor]:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, VERB, target)
    return ctx, actor


def listing(request: Request) -> Response:
    ctx, actor = allowed(request, "/api/audit")
    f = filters(request, ctx)
    rows, before = audit_query.page(ctx.catalog.connection(), f)
    audit(ctx, actor.user.name, actor.user.role, "audit.list", "",
          {"client": actor.client, **f.shown(), "results": len(rows)})
    return JSONResponse({"entries": rows, "next_before": before})


def cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return neutralise(text)


def _csv_lines(ctx: ServiceContext, f: audit_query.AuditFilters) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for n, row in enumerate(audit_query.walk(ctx.catalog.connection, f, release=ctx.release), start=1):
        when = datetime.fromtimestamp(row["at"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        writer.writerow([row["id"], repr(row["at"]), when, *(cell(row[k]) for k in CSV_COLUMNS[3:])])
        if n % 200 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def export(request: Request) -> Response:
    ctx, actor = allowed(request, "/api/audit/export.csv")
    f = filters(request, ctx)
    audit(ctx, actor.user.name, actor.user.role, "audit.export", "", {"client": actor.client, **f.shown()})
    stamp = datetime.fromtimestamp(ctx.clock(), UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(_csv_lines(ctx, f), media_type="text/csv; charset=utf-8",
                             headers={"content-disposition": f'attachment; filename="audit_{stamp}.csv"'})


def chain(request: Request) -> Response:
    ctx, _ = allowed(request, "/api/audit/chain")
    full = request.query_params.get("full") in ("1", "true")  # force every row now
    status = watch_of(request.app).status(ctx.catalog.connection(), ctx.config, ctx.clock(), force_full=full)
    return JSONResponse({"ok": status.ok, "rows": status.rows, "problems": list(status.problems),
                         "notes": list(status.notes), "signed_head_checked": status.head_checked,
                         "full_pass": status.full})


def routes(wrap: Any) -> list[BaseRoute]:
    return [Route("/api/audit", wrap(listing), methods=["GET"]),
            Route("/api/audit/export.csv", wrap(export), methods=["GET"]),
            Route("/api/audit/chain", wrap(chain), methods=["GET"])]
