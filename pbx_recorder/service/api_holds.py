"""Legal holds over HTTP (:class:`pbx_recorder.lifecycle.holds.HoldManager`, the CLI's ``hold``):

    GET  /api/holds                  active holds (``?all=1``: released ones too); ``holds.read``
    POST /api/holds                  {"scope": "call"|"caller"|"query"|"saved_search", "value", "reason"}
                                     ``holds.manage``; a call outside the row scope answers 404
    POST /api/holds/{hold_id}/release   {"reason"} (required); ``holds.manage``

A caller hold is stored as the number's blind index (never in clear; the audit row masks it); a
query hold as one token under the catalog key (``query_hold_rows.sealed``), opened for the list and
shown masked (``agent`` as a dial string, the rest as free text), or ``"unreadable": true`` with
the value ``UNREADABLE: holds everything`` when it does not open.  A
``saved_search`` hold takes the name of one of the user's saved searches and holds what its filters
match, as ``hold add --query`` does (a relative preset or a keyword cannot be a hold: 400).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pbx_recorder.catalog import saved_search_rows
from pbx_recorder.core.masking import mask_number
from pbx_recorder.errors import CryptoError, NotFound, PolicyRefusal
from pbx_recorder.lifecycle import query_hold_rows
from pbx_recorder.lifecycle.holds import HoldManager
from pbx_recorder.service.api_disposal_support import call_in_scope, checkpoint, runtime_of, text, with_body
from pbx_recorder.service.auth import Actor, ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.context import ServiceContext

MAX_REASON = 500
#: saved-search field -> hold query filter (``lifecycle.policy.QUERY_KEYS``)
SEARCH_TO_QUERY = {"status": "status", "consent": "consent", "tag": "tag", "caller": "number",
                   "call_id": "call_id", "agent": "agent", "queue": "queue"}
IGNORED = ("sort",)


def shown(hold: dict[str, Any]) -> dict[str, Any]:
    """A hold as the API and the console show it (``query_hold_rows.displayed``, as ``hold list``
    does): a query's filters masked (never unmasked, whatever the role), a caller hold's value (a
    blind index) left out, ``unreadable`` for a hold that holds everything."""
    return query_hold_rows.displayed(hold)


def listed(ctx: ServiceContext, actor: Actor, include_released: bool) -> list[dict[str, Any]]:
    """The holds (``HoldManager.list``), query holds opened with the number keys that sealed them:
    the recorder's (its config), as ``hold add`` here used; else the catalog's (the caller masks)."""
    if ctx.config is not None:
        return runtime_of(ctx, actor).holds().list(include_released)
    return HoldManager(ctx.catalog.connection(), ctx.tiers, hash_key=b"",
                       numbers=ctx.catalog.numbers).list(include_released)


def listing(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "holds.read", "", {"what": "holds.list"})
    rows = listed(ctx, actor, request.query_params.get("all") in ("1", "true"))
    audit(ctx, actor.user.name, actor.user.role, "hold.list", "",
          {"client": actor.client, "count": len(rows)})
    return JSONResponse({"holds": [shown(h) for h in rows]})


def query_of_saved(ctx: ServiceContext, actor: Actor, name: str) -> str:
    """The hold query (JSON) of the user's saved search ``name`` (404 when they have none)."""
    row = ctx.catalog.connection().execute(
        "SELECT query FROM saved_searches WHERE user_name = ? AND name = ?",
        (actor.user.name, name)).fetchone()
    if row is None:
        raise ApiError(404, "no saved search of that name")
    try:  # stored encrypted under the catalog key (catalog.saved_search_rows)
        query = saved_search_rows.opened(ctx.catalog.numbers, actor.user.name, name, str(row[0]))
    except CryptoError as exc:
        raise ApiError(400, f"saved search {name!r} cannot be opened: {exc}") from exc
    q: dict[str, Any] = {}
    for key, value in parse_qsl(query):
        if key in SEARCH_TO_QUERY:
            q[SEARCH_TO_QUERY[key]] = value
        elif key in ("from", "to"):
            q["start" if key == "from" else "end"] = _moment(ctx, value, key)
        elif key not in IGNORED:
            raise ApiError(400, f"saved search {name!r}: the filter {key!r} cannot define a hold")
    return json.dumps(q, sort_keys=True)


def _moment(ctx: ServiceContext, value: str, key: str) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ApiError(400, f"saved search: {key} is not a time") from exc
    return (when if when.tzinfo else when.replace(tzinfo=ctx.tz)).timestamp()


def _add(request: Request, actor: Actor, data: dict[str, Any]) -> Response:
    ctx = ctx_of(request)
    require(ctx, actor, "holds.manage", "", {"what": "hold.add"})
    scope = data.get("scope")
    if scope not in ("call", "caller", "query", "saved_search"):
        raise ApiError(400, "scope: call, caller, query or saved_search")
    value = text(data, "value", 2048)
    reason = text(data, "reason", MAX_REASON)
    if scope == "call":
        call_in_scope(ctx, actor, value, "hold.add")
    shown_value = mask_number(value) if scope == "caller" else value
    if scope == "saved_search":
        scope, value = "query", query_of_saved(ctx, actor, value)
    try:
        hold = runtime_of(ctx, actor).holds().add(str(scope), value, reason, actor.user.name, now=ctx.clock())
    except NotFound as exc:
        raise ApiError(404, "no such call") from exc
    except PolicyRefusal as exc:
        raise ApiError(400, str(exc)) from exc
    audit(ctx, actor.user.name, actor.user.role, "hold.add", hold["hold_id"],
          {"client": actor.client, "scope": scope, "value": shown_value if scope != "query" else
           hold["shown"], "reason": reason[:200],  # (the stored query is a token: its shown form)
           "recordings": len(hold["recordings"])})
    checkpoint(ctx)
    return JSONResponse({"hold_id": hold["hold_id"], "scope": scope, "recordings": hold["recordings"]},
                        status_code=201)


def _release(request: Request, actor: Actor, data: dict[str, Any]) -> Response:
    ctx = ctx_of(request)
    hold_id = request.path_params["hold_id"][:64]
    require(ctx, actor, "holds.manage", hold_id, {"what": "hold.remove"})
    reason = text(data, "reason", MAX_REASON)
    conn = ctx.catalog.connection()
    if conn.execute("SELECT 1 FROM holds WHERE hold_id = ?", (hold_id,)).fetchone() is None:
        raise ApiError(404, "no such hold")
    try:
        out = runtime_of(ctx, actor).holds().remove(hold_id, actor.user.name, now=ctx.clock())
    except PolicyRefusal as exc:
        raise ApiError(409, str(exc)) from exc
    audit(ctx, actor.user.name, actor.user.role, "hold.remove", hold_id,
          {"client": actor.client, "reason": reason[:200], "released": len(out["released"])})
    checkpoint(ctx)
    return JSONResponse({"hold_id": hold_id, "released": out["released"], "reason": reason})


def routes(sync: Any) -> list[Route]:
    return [Route("/api/holds", sync(listing), methods=["GET"]),
            Route("/api/holds", with_body(_add), methods=["POST"]),
            Route("/api/holds/{hold_id}/release", with_body(_release), methods=["POST"])]
