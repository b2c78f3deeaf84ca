"""Rendering a console page: the Jinja2 environment (autoescape on), the template globals
(``t``, ``actor``, ``csrf_token``, ``lang``) and the page's Content-Security-Policy.

A page allows scripts, styles and media from this origin only (no inline script or style), so a
caller name carrying markup is shown as text by autoescaping, and even a slip in a template
could not run script.  The JSON API keeps its stricter ``default-src 'none'``.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, Undefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from pbx_recorder.service import sessions
from pbx_recorder.service.auth import Actor, cookie_name, ctx_of
from pbx_recorder.service.roles import may
from pbx_recorder.web import i18n, preferences

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
            "frame-ancestors 'none'")


def _when(value: Any, tz: tzinfo | None = None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    # (Undefined: a key the evidence does not have, e.g. a consent that was never asked)
    if value is None or value == "" or isinstance(value, Undefined):
        return ""
    try:
        moment = datetime.fromtimestamp(float(value), tz) if tz else datetime.fromtimestamp(float(value))
    except (TypeError, ValueError, OverflowError, OSError):
        return str(value)
    return moment.strftime(fmt)


def _duration(value: Any) -> str:
    try:
        seconds = int(float(value))
    except (TypeError, ValueError):
        return ""
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


@cache
def environment() -> Environment:
    env = Environment(loader=PackageLoader("pbx_recorder.web", "templates"),
                      autoescape=select_autoescape(["html"], default_for_string=True, default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["duration"] = _duration
    env.globals["langs"] = i18n.LANG_NAMES
    env.globals["may"] = may
    return env


def csrf_token(request: Request) -> str:
    """The CSRF token of the session whose cookie came with ``request`` ('' without one)."""
    token = request.cookies.get(cookie_name(ctx_of(request)))
    return sessions.csrf_for(token) if token and len(token) <= sessions.MAX_TOKEN_CHARS else ""


def page(request: Request, template: str, actor: Actor | None, status: int = 200,
         **values: Any) -> HTMLResponse:
    """``template`` rendered for ``actor`` in their language, with the page CSP."""
    ctx = ctx_of(request)
    lang = (preferences.lang_of(ctx, actor.user.name) if actor
            else i18n.known(request.query_params.get("lang")))
    tz = ctx.tz

    def when(value: Any, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        return _when(value, tz, fmt)

    html = environment().get_template(template).render(
        t=i18n.translator(lang), actor=actor, csrf_token=csrf_token(request) if actor else "", lang=lang,
        when=when, **values)
    return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": PAGE_CSP,
                                                           "Cache-Control": "no-store"})
