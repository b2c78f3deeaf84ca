"""``GET /me``: the user's own account: name, role, teams, language, and the second factor
(enrolled or not; enrol on the page when the service has a sealing key).  Enrolment goes through
the API (``POST /api/me/totp/enrol`` shows the secret once, ``/confirm`` activates it) from
``static/account.js``; an enrolled factor is replaced only after an admin's ``reset-totp``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.service.auth import actor_of, ctx_of
from pbx_recorder.service.totp import TotpStore
from pbx_recorder.web import render


def account(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    totp = "unavailable"
    if ctx.secret_box is not None and actor.via == "session":
        totp = TotpStore(ctx.catalog.connection(), ctx.secret_box).state(actor.user.name)
    return render.page(request, "account.html", actor, totp=totp,
                       required=actor.user.role in ctx.web.totp_required_roles)


def routes(sync: Any) -> list[BaseRoute]:
    """``sync``: app._releasing (gives the worker thread's catalog connection back)."""
    return [Route("/me", sync(account), methods=["GET"])]
