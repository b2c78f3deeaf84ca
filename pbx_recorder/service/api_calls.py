"""``GET /api/calls`` (search) and ``GET /api/calls/{call_id}`` (one call), scoped and masked.

Filters are those of ``calls search`` (from, to, preset, status, caller, callee, call_id, agent,
queue, tag, consent, limit, after), ``keyword`` (in the marks' labels and notes) and ``sort``
(newest, oldest), read from the query string.  Rows come only from the actor's row scope (the
query layer adds it).  Numbers are masked unless ``unmask=1`` is asked for by a role holding
``calls.unmask`` (audited); asking without that verb is a 403.  Every search writes one audit row
(``calls.search[.unmask]``: actor, filter with numbers masked, rows returned); a number-valued one
also writes its throttle row first (``calls.search.number``/``.last4``: the throttle counts those
before the search runs), and a role without unmask is throttled
(:mod:`pbx_recorder.service.throttle`).  A call outside the scope answers 404 exactly like an
absent one; the audit row tells the two apart.  A call's
consent evidence names the calls a transfer joined it with (``consent.transfer``); only those in
the actor's scope are listed (:func:`linked_in_scope`), so the links reveal no other call's id.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pbx_recorder.catalog.queries import COUNT_READ_CAP, ORDERS, PRESETS, STATUSES, CallFilters
from pbx_recorder.catalog.repository import SearchPage
from pbx_recorder.core.masking import mask_channel, mask_field, present_call
from pbx_recorder.errors import CatalogError
from pbx_recorder.service import api_replay, list_audit, throttle
from pbx_recorder.service.auth import Actor, ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.roles import may

MAX_PAGE = 500
LIST_FIELDS = ("call_id", "started_at", "answered_at", "ended_at", "duration", "billsec", "direction",
               "caller_num", "callee_num", "caller_name", "agent", "queue", "status", "tags",
               "consent_decision", "record_decision", "retention_class")
DETAIL_FIELDS = LIST_FIELDS + ("did", "region", "disposition", "rule", "consent", "cdr", "flags")
RECORDING_FIELDS = ("recording_id", "kind", "mode", "state", "format", "duration_s", "size", "sha256",
                    "tier", "encrypted", "retention_class", "retain_until", "legal_hold", "restore_state")
_TEXT_FILTERS = ("status", "caller", "callee", "call_id", "agent", "queue", "tag", "consent", "after",
                 "preset", "keyword")


def _time(text: str | None, ctx: ServiceContext, name: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        try:
            when = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ApiError(400, f"{name}: use YYYY-MM-DD[THH:MM[:SS]] or epoch seconds") from exc
        return (when if when.tzinfo else when.replace(tzinfo=ctx.tz)).timestamp()
    if not math.isfinite(value):
        raise ApiError(400, f"{name}: not a time")
    return value


def filters_of(request: Request, ctx: ServiceContext) -> CallFilters:
    q = request.query_params
    texts: dict[str, Any] = {}
    for name in _TEXT_FILTERS:
        value = q.get(name)
        if value is not None and len(value) > 256:
            raise ApiError(400, f"{name}: too long")
        texts[name] = value or None
    if texts["preset"] and texts["preset"] not in PRESETS:
        raise ApiError(400, f"preset: one of {', '.join(PRESETS)}")
    if texts["status"] and texts["status"] not in STATUSES:
        raise ApiError(400, f"status: one of {', '.join(STATUSES)}")
    try:
        limit = int(q.get("limit") or "50")
    except ValueError as exc:
        raise ApiError(400, "limit: a number") from exc
    order = q.get("sort") or "newest"
    if order not in ORDERS:
        raise ApiError(400, f"sort: one of {', '.join(ORDERS)}")
    return CallFilters(start=_time(q.get("from"), ctx, "from"), end=_time(q.get("to"), ctx, "to"),
                       limit=max(1, min(limit, MAX_PAGE)), order=order, **texts)


def _unmask(request: Request, ctx: ServiceContext, actor: Actor, target: str) -> bool:
    if request.query_params.get("unmask") not in ("1", "true"):
        return False
    require(ctx, actor, "calls.unmask", target)
    return True


def _shown(row: dict[str, Any], unmask: bool, fields: tuple[str, ...]) -> dict[str, Any]:
    out = present_call({k: row.get(k) for k in fields}, unmask)
    return {k: out.get(k) for k in fields}


def _number_search(ctx: ServiceContext, actor: Actor, f: CallFilters, unmasked_role: bool) -> None:
    """Audit a number-valued search; throttle full-number searches of roles without unmask."""
    kind = throttle.number_kind(f)
    if kind is None:
        return
    detail = {"client": actor.client, "caller": mask_field(f.caller or ""),
              "callee": mask_field(f.callee or "")}
    if f.agent:
        detail["agent"] = mask_channel(f.agent)
    if f.keyword:
        detail["keyword"] = mask_field(f.keyword)
    retry = throttle.admit(ctx.catalog.connection(), actor=actor.user.name, role=actor.user.role, kind=kind,
                           detail=detail, now=ctx.clock(), limit=ctx.web.number_searches,
                           window_s=ctx.web.number_search_window_s, exempt=unmasked_role)
    if retry:
        raise ApiError(429, "too many searches by number: try again later",
                       headers={"Retry-After": str(retry)})


def scoped_search(request: Request, ctx: ServiceContext, actor: Actor,
                  target: str) -> tuple[SearchPage, bool]:
    """The page of calls the query string asks for, from the actor's scope only; whether numbers
    are unmasked.  Checks the verbs, audits and throttles number searches, and writes the search's
    one list row (``calls.search`` or ``calls.search.unmask``: :mod:`list_audit`); the API and the
    console's search page both come through here."""
    require(ctx, actor, "calls.view", target)
    f = filters_of(request, ctx)
    unmask = _unmask(request, ctx, actor, target)
    _number_search(ctx, actor, f, may(actor.user.role, "calls.unmask"))
    try:
        page = ctx.catalog.search_page(f, tz=ctx.tz, scope=actor.scope, count_read_cap=COUNT_READ_CAP)
    except CatalogError as exc:
        raise ApiError(400, str(exc)) from exc
    shown = list_audit.search_filter(f)
    if page.count is not None:
        shown["matched"] = page.count.value
    if not target.startswith("/api/"):
        shown["page"] = target  # the console's search page (as audit.list marks the /audit page)
    list_audit.listed(ctx, actor, list_audit.CALLS_UNMASKED if unmask else list_audit.CALLS, "",
                      len(page.rows), shown)
    return page, unmask


def scoped_call(request: Request, ctx: ServiceContext, actor: Actor, call_id: str,
                audit_view: bool = True) -> tuple[dict[str, Any], bool]:
    """The call's row when it lies in the actor's scope (else a 404 like an absent call, the
    audit row telling the two apart); whether numbers are unmasked.  The view is audited here,
    unless ``audit_view`` is False: then the caller writes it with :func:`audit_call_view` once it
    knows what else the answer shows (the call page: the caller's other calls)."""
    require(ctx, actor, "calls.view", call_id)
    unmask = _unmask(request, ctx, actor, call_id)
    row = ctx.catalog.get_call(call_id, scope=actor.scope)
    if row is None:
        reason = "absent" if ctx.catalog.get_call(call_id) is None else "out_of_scope"
        audit(ctx, actor.user.name, actor.user.role, "denied:calls.view" if reason == "out_of_scope"
              else "calls.view.absent", call_id, {"client": actor.client, "reason": reason})
        raise ApiError(404, "no such call")
    if audit_view:
        audit_call_view(ctx, actor, call_id, unmask)
    return row, unmask


def audit_call_view(ctx: ServiceContext, actor: Actor, call_id: str, unmask: bool,
                    others: list[str] | None = None) -> None:
    """The one audit row of a call read (``calls.view[.unmask]``); ``others``: the ids of the other
    calls the answer lists with it (the call page's same-caller calls), so the row names every
    call whose metadata the request showed."""
    detail: dict[str, Any] = {"client": actor.client}
    if others is not None:
        detail["others"] = others
    audit(ctx, actor.user.name, actor.user.role, "calls.view.unmask" if unmask else "calls.view", call_id,
          detail)


def shown(row: dict[str, Any], unmask: bool, fields: tuple[str, ...]) -> dict[str, Any]:
    """``row`` reduced to ``fields``, numbers masked unless ``unmask``."""
    return _shown(row, unmask, fields)


def linked_in_scope(ctx: ServiceContext, actor: Actor, consent: Any) -> Any:
    """``consent`` with its ``transfer`` links reduced to the calls ``actor`` may see."""
    if not isinstance(consent, dict) or not isinstance(consent.get("transfer"), list):
        return consent
    if actor.scope.kind == "all":
        return consent
    kept = [link for link in consent["transfer"] if isinstance(link, dict)
            and isinstance(link.get("call_id"), str) and link["call_id"]
            and ctx.catalog.get_call(link["call_id"], scope=actor.scope) is not None]
    return {**consent, "transfer": kept}


def search(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    page, unmask = scoped_search(request, ctx, actor, "/api/calls")
    count = ({"value": page.count.value, "exact": page.count.exact, "complete": page.count.complete}
             if page.count else None)
    return JSONResponse({"calls": [_shown(r, unmask, LIST_FIELDS) for r in page.rows],
                         "next": page.next_cursor, "count": count})


def show(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    call_id = request.path_params["call_id"]
    row, unmask = scoped_call(request, ctx, actor, call_id)
    out = _shown(row, unmask, DETAIL_FIELDS)
    out["consent"] = linked_in_scope(ctx, actor, out.get("consent"))
    listed = api_replay.bound_recordings(ctx, ctx.catalog.recordings_for_call(call_id))
    out["recordings"] = [{k: r.get(k) for k in RECORDING_FIELDS} for r in listed]
    return JSONResponse(out)
