"""The console's disposal pages (the JSON API and the rules are in ``service/api_disposal.py``,
``api_erasure.py``, ``api_holds.py``, ``api_retention.py``):

* ``/deletions`` (``calls.delete`` or ``calls.delete_approve``): ask for a deletion (call ids, from
  the call page's link or typed; a reason), and the requests with approve / refuse buttons for an
  approver who is not the requester;
* ``/erasure`` (``erasure.read``): the requests against their 15-day deadline, late ones
  highlighted, receipts; with ``erasure.manage`` a number typed, previewed, opened and erased;
* ``/holds`` (``holds.read``): the holds; with ``holds.manage`` add (call, caller, saved search)
  and release with a reason;
* ``/retention`` (``retention.read``): one page of the disposal report; with ``retention.apply``
  the apply button and its result.

Buttons post through ``static/disposal.js`` with the page's CSRF token; the service decides.  Each
page's read is audited as its API's (``deletion.list``, ``erase.status``, ``hold.list``,
``retention.report``), one row per page."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.service import api_disposal, api_erasure, api_holds, api_retention, typed_reasons
from pbx_recorder.service.auth import ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.roles import may
from pbx_recorder.web import render, saved_searches


def deletions_page(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    if not may(actor.user.role, "calls.delete_approve"):
        require(ctx, actor, "calls.delete", "/deletions")
    prefill = "\n".join(c for c in request.query_params.get("calls", "").split(",") if c)[:4000]
    unmask = typed_reasons.unmask_asked(request, actor.user.role)
    return render.page(request, "deletions.html", actor,
                       requests=api_disposal.listed(ctx, actor, page="/deletions", unmask=unmask),  # audited
                       may_unmask=may(actor.user.role, "calls.unmask"), unmasked=unmask,
                       prefill=prefill, may_ask=may(actor.user.role, "calls.delete"),
                       approver=may(actor.user.role, "calls.delete_approve"))


def erasure_page(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "erasure.read", "/erasure")
    now = ctx.clock()
    cur = ctx.catalog.connection().execute(f"SELECT {api_erasure.COLUMNS} FROM erasure_requests"
                                           " ORDER BY received_at DESC LIMIT 500")
    names = [d[0] for d in cur.description]
    items = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    api_erasure.with_shreds(ctx.catalog.connection(), items, now)
    audit(ctx, actor.user.name, actor.user.role, "erase.status", "/erasure",
          {"client": actor.client, "count": len(items)})
    return render.page(request, "erasure.html", actor, requests=items, now=now,
                       may_manage=may(actor.user.role, "erasure.manage") and ctx.config is not None)


def holds_page(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "holds.read", "/holds")
    include = request.query_params.get("all") in ("1", "true")
    items = [api_holds.shown(h) for h in api_holds.listed(ctx, actor, include)]  # (query holds opened)
    audit(ctx, actor.user.name, actor.user.role, "hold.list", "/holds",
          {"client": actor.client, "count": len(items)})
    return render.page(request, "holds.html", actor, holds=items, include_released=include,
                       may_manage=may(actor.user.role, "holds.manage") and ctx.config is not None,
                       saved=saved_searches.listed(ctx, actor.user.name),
                       call=request.query_params.get("call", "")[:128])


def retention_page(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "retention.read", "/retention")
    data: dict[str, Any] | None
    try:
        data = api_retention.report_page(request, actor)
    except ApiError as exc:
        if exc.status != 503:
            raise
        data = None  # started without the recorder's config
    if data is not None:
        audit(ctx, actor.user.name, actor.user.role, "retention.report", "/retention",
              {"client": actor.client, "page": data["page"], "items": len(data["items"])})
    return render.page(request, "retention.html", actor, report=data,
                       may_apply=may(actor.user.role, "retention.apply") and data is not None)


def held_calls(conn: Any, call_ids: list[str]) -> set[str]:
    """Which of ``call_ids`` a legal hold covers now (a recording flagged held, or an active
    hold on the call itself): the badge on search results."""
    if not call_ids:
        return set()
    marks = ",".join("?" * len(call_ids))
    found = conn.execute("SELECT DISTINCT call_id FROM recordings WHERE legal_hold = 1"
                         f" AND call_id IN ({marks})", call_ids).fetchall()
    direct = conn.execute("SELECT value FROM holds WHERE released_at IS NULL AND scope = 'call'"
                          f" AND value IN ({marks})", call_ids).fetchall()
    return {str(r[0]) for r in found} | {str(r[0]) for r in direct}


def routes(sync: Any) -> list[BaseRoute]:
    return [Route("/deletions", sync(deletions_page), methods=["GET"]),
            Route("/erasure", sync(erasure_page), methods=["GET"]),
            Route("/holds", sync(holds_page), methods=["GET"]),
            Route("/retention", sync(retention_page), methods=["GET"])]
