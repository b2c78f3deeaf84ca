"""Account management over HTTP, for admins (verb ``users.manage``); the same operations as
``pbx-recorder users`` (:mod:`pbx_recorder.service.user_admin`), each audited as an admin change.

    GET  /api/users                         the accounts (never a hash or a secret; audited
                                            ``users.list``)
    GET  /api/teams                         every team: its accounts and its agents (audited
                                            ``teams.list``)
    POST /api/users                         {"name", "role", "password", "teams"}
    POST /api/users/{name}/disable
    POST /api/users/{name}/password         {"password"}  (unlocks, ends the user's sessions)
    POST /api/users/{name}/role             {"role"}      (ends the user's sessions)
    POST /api/users/{name}/teams            {"teams": [...]}
    POST /api/users/{name}/reset-totp
    POST /api/teams/{team}/agents           {"agents": [...]}
    POST /api/qa-assignments                {"call_id", "reviewer"}

Refusals: 400 (invalid value), 404 (no such user), 409 (the name exists; the last enabled admin
cannot be disabled or demoted; the refusal is audited), 403 for an API token asking to add an
account or to change a password, a role or a second factor (``PERSONAL_ONLY``; audited, reason
``bearer``): those a person makes, logged in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pbx_recorder.errors import AccessDenied, ConfigError, NotFound
from pbx_recorder.service import list_audit, user_admin
from pbx_recorder.service.auth import Actor, ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.json_body import read_json

Change = Callable[[Any, Actor, dict[str, Any], dict[str, str]], None]

#: changes only a person logged in (with their second factor) makes: an API token doing them would
#: outlive its own revocation (an admin account it made, a password it set) or take over an admin
PERSONAL_ONLY = frozenset({"users.add", "users.reset_password", "users.set_role", "users.reset_totp"})


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ApiError(400, f"{key!r} must be a string")
    return value


def _names(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > 1000:
        raise ApiError(400, f"{key!r} must be a list of strings")
    return value


def accounts_read(ctx: ServiceContext, actor: Actor, target: str, page: str = "") -> list[dict[str, Any]]:
    """Every account's row (``users.manage``; a refusal audited ``denied:users.manage``) and the
    read's one ``users.list`` audit row: names, roles, teams and lock states are staff data."""
    require(ctx, actor, "users.manage", target, {"client": actor.client})
    rows = user_admin.user_rows(ctx.accounts(), ctx.clock())
    list_audit.listed(ctx, actor, list_audit.USERS, "", len(rows), {"page": page} if page else None)
    return rows


def teams_read(ctx: ServiceContext, actor: Actor, target: str, page: str = "") -> list[dict[str, Any]]:
    """Every team's row (``users.manage``, refused and audited as :func:`accounts_read`) and the
    read's one ``teams.list`` audit row: who leads a team and whose calls it sees is staff data."""
    require(ctx, actor, "users.manage", target, {"client": actor.client})
    rows = user_admin.team_rows(ctx.accounts())
    list_audit.listed(ctx, actor, list_audit.TEAMS, "", len(rows), {"page": page} if page else None)
    return rows


def team_listing(request: Request) -> Response:
    return JSONResponse({"teams": teams_read(ctx_of(request), actor_of(request), "teams")})


def listing(request: Request) -> Response:
    return JSONResponse({"users": accounts_read(ctx_of(request), actor_of(request), "users")})


def _change(action: str, apply: Change) -> Callable[[Request], Any]:
    """An endpoint: JSON body read, ``users.manage`` required, ``apply(accounts, actor, body,
    path params)`` run in a worker thread, its refusals mapped to 400/404/409 (409 audited)."""

    async def endpoint(request: Request) -> Response:
        has_body = request.headers.get("content-type", "").startswith("application/json")
        data = await read_json(request) if has_body else {}

        def run() -> Response:
            ctx = ctx_of(request)
            try:
                actor = actor_of(request)
                target = str(next(iter(request.path_params.values()), "") or data.get("name", ""))[:64]
                require(ctx, actor, "users.manage", target, {"client": actor.client, "change": action})
                if actor.via == "token" and action in PERSONAL_ONLY:
                    audit(ctx, actor.user.name, actor.user.role, f"denied:{action}", target,
                          {"client": actor.client, "reason": "bearer"})
                    raise ApiError(403, "an API token cannot create accounts or change a password, "
                                        "a role or a second factor")
                kw = {"actor": actor.user.name, "actor_role": actor.user.role, "now": ctx.clock()}
                try:
                    apply(ctx.accounts(), actor, data, {**request.path_params, **kw})
                except NotFound as exc:
                    raise ApiError(404, str(exc)) from exc
                except AccessDenied as exc:
                    audit(ctx, actor.user.name, actor.user.role, f"denied:{action}", target,
                          {"client": actor.client, "reason": str(exc)})
                    raise ApiError(409, str(exc)) from exc
                except ConfigError as exc:
                    raise ApiError(400, str(exc)) from exc
                return JSONResponse({"ok": True})
            finally:
                ctx.release()

        return await run_in_threadpool(run)

    return endpoint


def _kw(p: dict[str, Any]) -> dict[str, Any]:
    return {"actor": p["actor"], "actor_role": p["actor_role"], "now": p.get("now", time.time())}


def _add(acc: Any, actor: Actor, d: dict[str, Any], p: dict[str, Any]) -> None:
    name = _str(d, "name")
    if acc.get(name) is not None:
        raise AccessDenied(f"user {name!r} exists")
    user_admin.add(acc, name, _str(d, "role"), _str(d, "password"), _names(d, "teams"), **_kw(p))


ROUTES: tuple[tuple[str, str, Change], ...] = (
    ("/api/users", "users.add", _add),
    ("/api/users/{name}/disable", "users.disable",
     lambda acc, a, d, p: user_admin.disable(acc, p["name"], **_kw(p))),
    ("/api/users/{name}/password", "users.reset_password",
     lambda acc, a, d, p: user_admin.reset_password(acc, p["name"], _str(d, "password"), **_kw(p))),
    ("/api/users/{name}/role", "users.set_role",
     lambda acc, a, d, p: user_admin.set_role(acc, p["name"], _str(d, "role"), **_kw(p))),
    ("/api/users/{name}/teams", "users.set_teams",
     lambda acc, a, d, p: user_admin.set_teams(acc, p["name"], _names(d, "teams"), **_kw(p))),
    ("/api/users/{name}/reset-totp", "users.reset_totp",
     lambda acc, a, d, p: user_admin.reset_totp(acc, p["name"], **_kw(p))),
    ("/api/teams/{team}/agents", "teams.set_agents",
     lambda acc, a, d, p: user_admin.set_team_agents(acc, p["team"], _names(d, "agents"), **_kw(p))),
    ("/api/qa-assignments", "qa.assign",
     lambda acc, a, d, p: user_admin.assign_review(acc, _str(d, "call_id"), _str(d, "reviewer"), **_kw(p))),
)


def routes(sync: Any) -> list[Route]:
    return [Route("/api/users", sync(listing), methods=["GET"]),
            Route("/api/teams", sync(team_listing), methods=["GET"])] + [
        Route(path, _change(action, apply), methods=["POST"]) for path, action, apply in ROUTES]
