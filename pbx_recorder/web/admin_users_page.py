"""``GET /admin/users``: the admin page over the account API (:mod:`pbx_recorder.service.api_users`).

Server-rendered list of the accounts (never a hash or a secret) with forms for every change; the
forms post JSON through ``static/admin_users.js`` with the page's CSRF token.  Only a role with
``users.manage`` sees it (403, audited, for the others).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.service import user_admin
from pbx_recorder.service.auth import actor_of, ctx_of, require
from pbx_recorder.service.roles import ROLES
from pbx_recorder.web import render


def users_page(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "users.manage", "/admin/users", {"client": actor.client})
    return render.page(request, "admin_users.html", actor,
                       users=user_admin.user_rows(ctx.accounts(), ctx.clock()), roles=ROLES)


def routes(sync: Any) -> list[BaseRoute]:
    return [Route("/admin/users", sync(users_page), methods=["GET"])]
