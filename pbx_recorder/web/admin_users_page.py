"""``GET /admin/users``: the admin page over the account API (:mod:`pbx_recorder.service.api_users`).

Server-rendered list of the accounts (never a hash or a secret) with forms for every change; the
forms post JSON through ``static/admin_users.js`` with the page's CSRF token.  Only a role with
``users.manage`` sees it (403, audited, for the others); each view writes one ``users.list`` row.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.service import api_users
from pbx_recorder.service.auth import actor_of, ctx_of
from pbx_recorder.service.roles import ROLES
from pbx_recorder.web import render


def users_page(request: Request) -> Response:
    actor = actor_of(request)
    users = api_users.accounts_read(ctx_of(request), actor, "/admin/users", "/admin/users")  # audited
    return render.page(request, "admin_users.html", actor, users=users, roles=ROLES)


def routes(sync: Any) -> list[BaseRoute]:
    return [Route("/admin/users", sync(users_page), methods=["GET"])]
