"""A user's console preferences: their language (``users.lang``), and ``POST /api/me/lang``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.service.auth import ApiError, actor_of, audit, ctx_of
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.json_body import parse_object, read_capped
from pbx_recorder.web import i18n

MAX_BODY = 1024


def lang_of(ctx: ServiceContext, user: str) -> str:
    row = ctx.catalog.connection().execute("SELECT lang FROM users WHERE name = ?", (user,)).fetchone()
    return i18n.known(str(row[0]) if row and row[0] else None)


def set_lang(ctx: ServiceContext, user: str, lang: str) -> None:
    conn = ctx.catalog.connection()
    with Tx(conn):
        conn.execute("UPDATE users SET lang = ? WHERE name = ?", (lang, user))


async def save_lang(request: Request) -> Response:
    """JSON ``{"lang": "zh"}``; the session and its CSRF token are checked (``actor_of``) before
    the body is parsed (it is read first, at most :data:`MAX_BODY` bytes: 413 past them)."""
    body = await read_capped(request, MAX_BODY)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_save, request, body)


def _lang_in(content_type: str, body: bytes) -> str:
    lang = parse_object(content_type, body, MAX_BODY).get("lang")
    if lang not in i18n.LANGS:
        raise ApiError(400, f"lang: one of {', '.join(i18n.LANGS)}")
    return str(lang)


def _save(request: Request, body: bytes) -> Response:
    ctx = ctx_of(request)
    try:
        actor = actor_of(request)
        lang = _lang_in(request.headers.get("content-type", ""), body)
        set_lang(ctx, actor.user.name, lang)
        audit(ctx, actor.user.name, actor.user.role, "prefs.lang", actor.user.name,
              {"client": actor.client, "lang": lang})
        return JSONResponse({"lang": lang})
    finally:
        ctx.release()
