"""``GET /`` and ``GET /calls``: the search page.

The filter is a GET form, so it lives in the URL and a search can be shared.  Rows come from
:func:`pbx_recorder.service.api_calls.scoped_search` (the actor's row scope, masking, the audit
and throttle of number searches: the same path as ``GET /api/calls``); the next page is the
query layer's keyset cursor (``after``), so page 200 costs what page 1 does.  Newest or oldest
first (``sort``): the query layer reads the same indexes forwards or backwards.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from pbx_recorder.catalog.queries import ORDERS, PRESETS, STATUSES
from pbx_recorder.service.api_calls import LIST_FIELDS, scoped_search, shown
from pbx_recorder.service.auth import actor_of, ctx_of
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.roles import may
from pbx_recorder.web import disposal_pages, qa_pages, saved_searches
from pbx_recorder.web.render import page

CONSENT_STATES = ("granted", "refused", "timeout", "invalid", "hangup", "notified")
FORM = ("preset", "from", "to", "status", "consent", "tag", "caller", "call_id", "agent", "queue",
        "keyword", "sort", "limit", "unmask")


def playable(ctx: ServiceContext, call_ids: list[str]) -> dict[str, str]:
    """{call id: recording id} of the calls' first call recording (the play link)."""
    if not call_ids:
        return {}
    marks = ", ".join("?" for _ in call_ids)
    rows = ctx.catalog.connection().execute(
        f"SELECT call_id, recording_id FROM recordings WHERE call_id IN ({marks}) AND kind <> 'consent' "
        "ORDER BY created_at DESC, recording_id DESC", call_ids).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}  # the oldest one wins (last written)


def form_values(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "") for k in FORM}


def search(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    if not may(actor.user.role, "calls.view") and may(actor.user.role, "health.read"):
        return RedirectResponse("/health", status_code=303)  # IT's start page: no calls to search
    result, unmask = scoped_search(request, ctx, actor, "/calls")
    rows: list[dict[str, Any]] = [shown(r, unmask, LIST_FIELDS) for r in result.rows]
    plays = playable(ctx, [str(r["call_id"]) for r in rows]) if may(actor.user.role, "calls.play") else {}
    held = disposal_pages.held_calls(ctx.catalog.connection(), [str(r["call_id"]) for r in rows])
    values = form_values(request)
    kept = [(k, v) for k, v in values.items() if v]
    next_url = f"/calls?{urlencode([*kept, ('after', result.next_cursor)])}" if result.next_cursor else ""
    return page(request, "search.html", actor, rows=rows, plays=plays, held=held, form=values,
                count=result.count,
                next_url=next_url, first_url=f"/calls?{urlencode(kept)}",
                paged=bool(request.query_params.get("after")),
                presets=PRESETS, statuses=STATUSES, sorts=ORDERS, consents=CONSENT_STATES,
                may_unmask=may(actor.user.role, "calls.unmask"), unmasked=unmask,
                saved=saved_searches.listed(ctx, actor.user.name), qa=qa_pages.search_block(ctx, actor))
