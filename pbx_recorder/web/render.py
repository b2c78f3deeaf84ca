"""Rendering a console page (minimal stand-in with the interface of helper "pages"'s module:
``page(request, template, actor, status=200, **values)``; at merge that module replaces this one,
with its CSRF token derived from the session instead of the rotation below)."""

from __future__ import annotations

import secrets
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from pbx_recorder.lifecycle.journal import Tx
from pbx_recorder.service import sessions
from pbx_recorder.service.auth import Actor, ctx_of
from pbx_recorder.web import i18n

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
            "frame-ancestors 'none'")


@cache
def environment() -> Environment:
    env = Environment(loader=PackageLoader("pbx_recorder.web", "templates"),
                      autoescape=select_autoescape(["html"], default_for_string=True, default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.globals["langs"] = i18n.LANG_NAMES
    return env


def csrf_token(request: Request, actor: Actor) -> str:
    """A fresh CSRF token for the actor's session (its hash replaces the stored one)."""
    ctx = ctx_of(request)
    token = secrets.token_urlsafe(sessions.TOKEN_BYTES)
    with Tx(ctx.catalog.connection()) as conn:
        conn.execute("UPDATE sessions SET csrf_hash = ? WHERE id_hash = ?",
                     (sessions.digest(token), actor.session.id_hash))
    return token


def page(request: Request, template: str, actor: Actor | None, status: int = 200,
         **values: Any) -> HTMLResponse:
    ctx = ctx_of(request)
    row = ctx.catalog.connection().execute("SELECT lang FROM users WHERE name = ?",
                                           (actor.user.name,)).fetchone() if actor else None
    lang = i18n.known(str(row[0]) if row else None)
    html = environment().get_template(template).render(
        t=i18n.translator(lang), actor=actor, csrf_token=csrf_token(request, actor) if actor else "",
        lang=lang, **values)
    return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": PAGE_CSP,
                                                           "Cache-Control": "no-store"})
