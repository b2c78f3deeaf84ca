"""Rendering the audit and health pages: one Jinja2 environment (autoescape on for .html, so a
hostile actor, target or detail is shown as text), the template globals of ``base.html``
(``t``, ``actor``, ``csrf_token``, ``lang``) and the console's Content-Security-Policy."""

from __future__ import annotations

import functools
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

from pbx_recorder.web import i18n

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


@functools.cache
def environment() -> Environment:
    return Environment(loader=PackageLoader("pbx_recorder.web", "templates"),
                       autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def language_of(conn: Any, user: str) -> str:
    """The user's language (``users.lang``); English when unset or unknown."""
    row = conn.execute("SELECT lang FROM users WHERE name = ?", (user,)).fetchone()
    lang = str(row[0]) if row and row[0] else "en"
    return lang if lang in i18n.LANGUAGES else "en"


def render(template: str, *, actor: Any, lang: str, status: int = 200, **context: Any) -> HTMLResponse:
    page = environment().get_template(template)
    html = page.render(t=functools.partial(i18n.translate, lang), actor=actor, csrf_token="", lang=lang,
                       **context)
    return HTMLResponse(html, status_code=status, headers={"content-security-policy": CSP})
