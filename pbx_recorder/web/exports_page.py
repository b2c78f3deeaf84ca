"""``GET /exports``: export the current search result (CSV, XLSX or the recordings) and follow the
user's export jobs.

The search page links here with its filter in the query string, or with the calls ticked on it
(``?calls=a,b``: the recordings of those calls only, each checked against the row scope by the
API when the export is asked for); the form carries that query string
unchanged to ``POST /api/exports`` (:mod:`pbx_recorder.service.api_exports` reads it with the
search's own parser).  ``static/exports.js`` sends the form, then polls
``GET /api/exports?progress=1`` for the progress bars while a job runs (states and counts only:
no audit row per poll); a finished job shows its download link (owner only).  The page's own
list of jobs is audited once per visit (``exports.list`` with ``page``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.exports import columns, runner
from pbx_recorder.exports.audio_job import MAX_CALLS
from pbx_recorder.exports.stored_filter import FILTER_KEYS
from pbx_recorder.service.api_exports import MIN_PASSWORD, filter_doc, own_jobs
from pbx_recorder.service.auth import actor_of, ctx_of, require
from pbx_recorder.service.roles import may
from pbx_recorder.web import render


def exports_page(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "calls.export", "/exports", {"client": actor.client})
    enabled = runner.folder_of(ctx) is not None
    if enabled:
        runner.sweep(ctx)
    query = urlencode([(k, v) for k in FILTER_KEYS if (v := request.query_params.get(k))])
    selected = selected_calls(request.query_params.get("calls", ""))
    listed = [j.public() for j in own_jobs(ctx, actor, "/exports")] if enabled else []  # audited
    return render.page(request, "exports.html", actor, enabled=enabled, query=query,
                       shown=filter_doc(request),
                       fields=columns.FIELDS, picked=columns.DEFAULT_FIELDS, min_password=MIN_PASSWORD,
                       may_unmask=may(actor.user.role, "calls.unmask"), jobs=listed, max_calls=MAX_CALLS,
                       selected=selected)


def selected_calls(raw: str) -> list[str]:
    """The call ids ticked on the search page (``a,b,c``): distinct, each at most 128 characters,
    at most the audio export's limit; anything else in the list is dropped."""
    ids = [c.strip() for c in raw[:MAX_CALLS * 130].split(",")]
    return list(dict.fromkeys(c for c in ids if 0 < len(c) <= 128))[:MAX_CALLS]


def routes(sync: Any) -> list[BaseRoute]:
    return [Route("/exports", sync(exports_page), methods=["GET"])]
