"""Saved searches, by name, per user (table ``saved_searches``): the search page's query string
kept under a name the user chose (a full ``caller`` is dropped from it; a last-4 filter is kept).
Only the owner lists, opens or deletes them; a saved query is only ever used as the query string
of ``/calls`` (the search runs through the same scoped, audited path as any other).

A number typed into ``keyword`` or a remote agent's dial string in ``agent`` must be kept, or the
search would find other calls when run again: the query is stored encrypted under the catalog key
(``catalog.saved_search_rows``), opened for its owner here; a catalog without number keys refuses
to save a query naming a number.  Erasure by number deletes the saved searches naming it.

The name is the row's key and is kept in clear, so a name with a number-like run (5+ digits, in
groups or not: ``complaint 4915112345678``, also a date ``2026-12-05``) is refused with a 400: a
number there would outlive the erasure's reach into the sealed query.

    GET    /api/searches          [{"name", "query", "created_at"}] of the caller
    POST   /api/searches          JSON {"name", "query"} (CSRF): saved, or replaced under that name
    DELETE /api/searches/{name}   (CSRF)
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pbx_recorder.catalog import saved_search_rows
from pbx_recorder.catalog.protected_rows import NumberProtection
from pbx_recorder.errors import CryptoError, PolicyRefusal
from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.service.auth import ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.json_body import parse_object, read_capped

log = logging.getLogger(__name__)

MAX_NAME = 80
MAX_QUERY = 2048
MAX_PER_USER = 200
MAX_BODY = 4096
#: the search form's fields: nothing else is kept in a saved query (no cursor, no unmask)
KEPT = ("preset", "from", "to", "status", "consent", "tag", "caller", "call_id", "agent", "queue", "keyword",
        "sort")


def clean_query(query: str) -> str:
    """``query`` reduced to the search form's fields, empty ones dropped."""
    pairs = [(k, v) for k, v in parse_qsl(query.lstrip("?"), keep_blank_values=False) if k in KEPT and v]
    # a full number is not kept in clear in the catalog: only a last-4 search is saved
    return urlencode([(k, v) for k, v in pairs if k != "caller" or sum(c.isdigit() for c in v) <= 4])


def _numbers(ctx: ServiceContext) -> NumberProtection | None:
    """The catalog's number protection (None: a catalog without number keys)."""
    return ctx.catalog.numbers


def _opened(ctx: ServiceContext, user: str, name: str, stored: str) -> str:
    """The owner's query in clear; '' (logged, no value) when its token cannot be opened."""
    try:
        return saved_search_rows.opened(_numbers(ctx), user, name, stored)
    except CryptoError as exc:
        log.error("saved search %r of %s cannot be opened: %s", name, user, exc)
        return ""


def listed(ctx: ServiceContext, user: str) -> list[dict[str, Any]]:
    rows = ctx.catalog.connection().execute(
        "SELECT name, query, created_at FROM saved_searches WHERE user_name = ? ORDER BY name",
        (user,)).fetchall()
    return [{"name": str(r[0]), "query": _opened(ctx, user, str(r[0]), str(r[1])), "created_at": float(r[2])}
            for r in rows]


def query_of(ctx: ServiceContext, user: str, name: str) -> str | None:
    """The query of ``user``'s saved search ``name`` in clear (None: they have none of that name)."""
    row = ctx.catalog.connection().execute(
        "SELECT query FROM saved_searches WHERE user_name = ? AND name = ?", (user, name)).fetchone()
    return None if row is None else _opened(ctx, user, name, str(row[0]))


def list_searches(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "calls.view", "/api/searches")
    return JSONResponse({"searches": listed(ctx, actor.user.name)})


async def save_search(request: Request) -> Response:
    """JSON ``{"name", "query"}`` (413 past :data:`MAX_BODY`, never read to the end first); the
    session and its CSRF token are checked before it is parsed."""
    body = await read_capped(request, MAX_BODY)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_save, request, body)


def _search_in(content_type: str, body: bytes) -> tuple[str, str]:
    data = parse_object(content_type, body, MAX_BODY)
    name, query = data.get("name"), data.get("query")
    if not isinstance(name, str) or not isinstance(query, str):
        raise ApiError(400, 'takes {"name": ..., "query": ...}')
    name = name.strip()
    if not name or len(name) > MAX_NAME or any(ord(c) < 0x20 for c in name):
        raise ApiError(400, f"name: 1-{MAX_NAME} printable characters")
    if saved_search_rows.name_names_a_number(name):
        raise ApiError(400, "name: no phone number or other run of 5 or more digits (a date such as "
                            "2026-12-05 counts too): the name is stored in clear; put the number in the "
                            "search itself, where it is kept encrypted")
    if len(query) > MAX_QUERY:
        raise ApiError(400, "query: too long")
    return name, clean_query(query)


def _save(request: Request, body: bytes) -> Response:
    ctx = ctx_of(request)
    try:
        actor = actor_of(request)
        require(ctx, actor, "calls.view", "/api/searches")
        name, query = _search_in(request.headers.get("content-type", ""), body)
        try:
            stored = saved_search_rows.sealed(_numbers(ctx), actor.user.name, name, query)
        except PolicyRefusal as exc:
            raise ApiError(400, str(exc)) from exc
        conn = ctx.catalog.connection()
        with Tx(conn):
            count = conn.execute("SELECT COUNT(*) FROM saved_searches WHERE user_name = ? "
                                 "AND name <> ?", (actor.user.name, name)).fetchone()[0]
            if int(count) >= MAX_PER_USER:
                raise ApiError(400, f"at most {MAX_PER_USER} saved searches")
            conn.execute("INSERT INTO saved_searches (user_name, name, query, created_at) "
                         "VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (user_name, name) DO UPDATE SET query = excluded.query, "
                         "created_at = excluded.created_at", (actor.user.name, name, stored, ctx.clock()))
        audit(ctx, actor.user.name, actor.user.role, "searches.save", name, {"client": actor.client})
        return JSONResponse({"name": name, "query": query})
    finally:
        ctx.release()


def delete_search(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "calls.view", "/api/searches")
    name = request.path_params["name"]
    conn = ctx.catalog.connection()
    with Tx(conn):
        gone = conn.execute("DELETE FROM saved_searches WHERE user_name = ? AND name = ?",
                            (actor.user.name, name)).rowcount
    if not gone:
        raise ApiError(404, "no such saved search")
    audit(ctx, actor.user.name, actor.user.role, "searches.delete", name, {"client": actor.client})
    return JSONResponse({"deleted": name})
