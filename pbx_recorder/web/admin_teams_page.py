"""``GET /admin/teams``: every team, the accounts in it and the PBX agents it covers (whose calls
its supervisors see), over the account API (:mod:`pbx_recorder.service.api_users`).

Server-rendered from ``GET /api/teams``'s rows; each team has a form that replaces its agents and
one more form names a new team's agents.  They post ``POST /api/teams/{team}/agents`` through
``static/admin_users.js`` (the users page's script: same forms) with the page's CSRF token.  Only
a role with ``users.manage`` sees it (403, audited, for the others); each view writes one
``teams.list`` row.  Which teams a person leads is set on ``/admin/users``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pbx_recorder.service import api_users
from pbx_recorder.service.auth import actor_of, ctx_of
from pbx_recorder.web import render


def teams_page(request: Request) -> Response:
    actor = actor_of(request)
    teams = api_users.teams_read(ctx_of(request), actor, "/admin/teams", "/admin/teams")  # audited
    return render.page(request, "admin_teams.html", actor, teams=teams)


def routes(sync: Any) -> list[BaseRoute]:
    return [Route("/admin/teams", sync(teams_page), methods=["GET"])]
