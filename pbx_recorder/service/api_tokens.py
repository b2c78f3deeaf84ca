"""API tokens over HTTP, for admins (verb ``tokens.manage``); the same operations as
``pbx-recorder users token create|list|revoke`` (:mod:`pbx_recorder.service.user_admin`).

    POST   /api/tokens        {"user", "role", "days", "label"} -> {"token", "id", ...} (token once)
    GET    /api/tokens        [{"id", "user", "role", "label", "expires_at", "last_used", "revoked"}]
                              (audited ``tokens.list``)
    DELETE /api/tokens/{id}   revoke (id: at least 12 hex digits of the listed id)

A request made with a token cannot create tokens (a leaked automation token must not mint
longer-lived ones); it may list and revoke if its role allows.  A token of an approver's account
(admin, auditor) other than one's own is made on the host (409, audited): a token is a
credential, and no console account knows an approver's (``service.provisioning``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pbx_recorder.errors import AccessDenied, ConfigError, NotFound
from pbx_recorder.service import list_audit, user_admin
from pbx_recorder.service.auth import Actor, ApiError, actor_of, audit, ctx_of, require
from pbx_recorder.service.context import ServiceContext
from pbx_recorder.service.json_body import read_json


async def create(request: Request) -> Response:
    data = await read_json(request)
    from starlette.concurrency import run_in_threadpool

    def run() -> Response:
        try:
            return _create(request, data)
        finally:
            ctx_of(request).release()

    return await run_in_threadpool(run)


def _create(request: Request, data: dict[str, Any]) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    require(ctx, actor, "tokens.manage", "tokens", {"client": actor.client})
    if actor.via == "token":
        audit(ctx, actor.user.name, actor.user.role, "denied:tokens.create", "tokens",
              {"client": actor.client, "reason": "bearer"})
        raise ApiError(403, "an API token cannot create tokens")
    user, role, days, label = data.get("user"), data.get("role"), data.get("days"), data.get("label", "")
    if not (isinstance(user, str) and isinstance(role, str) and isinstance(days, int)
            and isinstance(label, str)):
        raise ApiError(400, 'takes {"user": str, "role": str, "days": int, "label": str}')
    try:
        token, record = user_admin.create_token(ctx.accounts(), user, role, days, label,
                                                max_days=ctx.web.token_max_days, actor=actor.user.name,
                                                actor_role=actor.user.role, now=ctx.clock())
    except NotFound as exc:
        raise ApiError(404, str(exc)) from exc
    except (ConfigError, AccessDenied) as exc:
        audit(ctx, actor.user.name, actor.user.role, "denied:tokens.create", user[:64],
              {"client": actor.client, "reason": str(exc)})
        raise ApiError(409 if isinstance(exc, AccessDenied) else 400, str(exc)) from exc
    return JSONResponse({"token": token, "id": record.id_hash[:16], "user": user, "role": role,
                         "expires_at": record.expires_at, "label": label}, status_code=201)


def tokens_read(ctx: ServiceContext, actor: Actor, page: str = "") -> list[dict[str, Any]]:
    """Every account's tokens (``tokens.manage``; a refusal audited ``denied:tokens.manage``) and
    the read's one ``tokens.list`` audit row (the API and the ``/admin/tokens`` page)."""
    require(ctx, actor, "tokens.manage", "tokens", {"client": actor.client})
    rows = user_admin.token_rows(ctx.accounts())
    list_audit.listed(ctx, actor, list_audit.TOKENS, "", len(rows), {"page": page} if page else None)
    return rows


def listing(request: Request) -> Response:
    return JSONResponse({"tokens": tokens_read(ctx_of(request), actor_of(request))})


def revoke(request: Request) -> Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    token_id = request.path_params["token_id"]
    require(ctx, actor, "tokens.manage", token_id[:64], {"client": actor.client})
    try:
        user_admin.revoke_token(ctx.accounts(), token_id, actor=actor.user.name, actor_role=actor.user.role,
                                now=ctx.clock())
    except NotFound as exc:
        raise ApiError(404, str(exc)) from exc
    return JSONResponse({"ok": True})


def routes(sync: Any) -> list[Route]:
    return [Route("/api/tokens", create, methods=["POST"]),
            Route("/api/tokens", sync(listing), methods=["GET"]),
            Route("/api/tokens/{token_id}", sync(revoke), methods=["DELETE"])]
